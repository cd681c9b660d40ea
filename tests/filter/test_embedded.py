"""The whole filter stage, then the report, on a real synthesize run of the packaged model.

SmolLM2-135M on two CPU cores writes loops, meta talk and half-finished dialogues, and it
samples at temperature 1, so we cannot know which rows survive; we check what must hold for
any output: every row accounted for once, the rejects agree with the manifest, what is kept
obeys the thresholds, the variants match their manifest entries and the report agrees.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from mind_nemo.report.render import ReportConfig, write_report
from tests.filter.helpers import filter_run, read_jsonl, read_parts

pytestmark = pytest.mark.slow


def source_rows(run_dir):
    return [r for p in sorted((run_dir / "conversations").glob("*.jsonl")) for r in read_jsonl(p)]


@pytest.mark.parametrize(
    "overrides", [[], ["filter.length.drop_truncated=false"]], ids=["default", "keep-truncated"]
)
def test_filter_stage_on_real_model_output(embedded_run_dir, tmp_path, overrides):
    out = tmp_path / "filtered"
    manifest = filter_run(embedded_run_dir, out, *overrides)
    source = source_rows(embedded_run_dir)
    assert manifest["conversations"]["input"] == len(source) == 7
    by_style = Counter(r["conversational_style"] for r in source)
    assert {s: t["input"] for s, t in manifest["by_style"].items()} == dict(by_style)
    for t in manifest["by_style"].values():
        assert t["input"] == t["kept"] + t["rejected"] == t["kept"] + sum(t["reasons"].values())

    kept = [r for p in sorted((out / "conversations").glob("*.jsonl")) for r in read_jsonl(p)]
    rejects = [r for p in sorted((out / "rejects").glob("*.jsonl")) for r in read_jsonl(p)]
    assert len(kept) + len(rejects) == len(source)
    assert Counter(r["reject_reason"] for r in rejects) == Counter(manifest["reasons"])
    assert {
        (r["document_id"], r["context_index"], r["conversational_style"]) for r in kept + rejects
    } == {(r["document_id"], r["context_index"], r["conversational_style"]) for r in source}
    for row in kept:
        assert row["tokens"] >= 50
        assert len(row["speakers"]) >= 2 and row["turns"] >= 3
        if not overrides:
            assert row["finish_reason"] != "length"
    contexts = len(read_jsonl(next((embedded_run_dir / "contexts").glob("*.jsonl"))))
    assert manifest["variants"]["raw"]["rows"] == contexts == 1
    assert manifest["variants"]["all"]["rows"] == len(kept)
    assert manifest["variants"]["longest"]["rows"] == len(
        {(r["document_id"], r["context_index"]) for r in kept}
    )
    for name, entry in manifest["variants"].items():
        rows = read_parts(out / "variants" / name)
        assert (len(rows), sum(r["tokens"] for r in rows)) == (entry["rows"], entry["tokens"])

    paths = write_report(ReportConfig(run_dir=str(out)))
    assert paths["all_match"]
    assert (out / "report.html").stat().st_size > 10_000
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"
