"""The run report renders (markdown + self-contained HTML with five PNG plots) and its numbers,
recounted from the data files, equal the manifests; a disagreement is flagged."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from mind_nemo.report.render import ReportConfig, write_report
from tests.filter.helpers import build_rich_run, filter_run
from tests.helpers import run_stage

PNG = b"\x89PNG\r\n\x1a\n"


def tables(markdown: str) -> dict[str, list[dict[str, str]]]:
    """``## heading`` -> rows of the pipe table under it."""
    found: dict[str, list[dict[str, str]]] = {}
    for section in re.split(r"^## ", markdown, flags=re.M)[1:]:
        title, *lines = section.splitlines()
        rows = [
            [c.strip() for c in line.strip("|").split("|")]
            for line in lines
            if line.startswith("|")
        ]
        if rows:
            found[title] = [dict(zip(rows[0], r, strict=True)) for r in rows[2:]]
    return found


@pytest.fixture(scope="module")
def filtered(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    run = build_rich_run(root / "run")
    filter_run(run, root / "out")
    return run, root / "out"


def test_report_renders_markdown_and_self_contained_html(filtered):
    _, out = filtered
    paths = write_report(ReportConfig(run_dir=str(out)))
    assert paths["all_match"]
    markdown = (out / "report.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\((report_plots/[\w]+\.png)\)", markdown)
    assert len(links) == 5
    for link in links:
        assert (out / link).read_bytes().startswith(PNG)
    page = (out / "report.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 5
    assert all(base64.b64decode(i).startswith(PNG) for i in images)
    assert "report_plots/" not in page  # nothing outside the file
    for title in (
        "length distribution",
        "Prompt vs completion",
        "Turns per conversation",
        "Filter reasons",
        "Throughput",
    ):
        assert title in markdown and title in page


def test_report_numbers_equal_the_manifest(filtered):
    _, out = filtered
    write_report(ReportConfig(run_dir=str(out)))
    manifest = json.loads((out / "manifest.json").read_text())
    found = tables((out / "report.md").read_text())
    styles = {row["style"]: row for row in found["Counts and tokens per style"]}
    assert set(styles) == set(manifest["by_style"])
    for style, expected in manifest["by_style"].items():
        for column in ("input", "kept", "rejected", "tokens"):
            assert int(styles[style][column]) == expected[column], (style, column)
        assert styles[style]["matches manifest"] == "yes"
    variants = {row["variant"]: row for row in found["Counts and tokens per variant"]}
    assert set(variants) == {"longest", "all", "concat", "raw"}
    for name, expected in manifest["variants"].items():
        assert int(variants[name]["rows"]) == expected["rows"]
        assert int(variants[name]["tokens"]) == expected["tokens"]
    assert "All numbers in the tables below match the manifest." in (out / "report.md").read_text()


def test_a_manifest_that_disagrees_with_the_files_is_flagged(filtered, tmp_path):
    _, out = filtered
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["by_style"]["debate"]["kept"] += 1
    manifest["variants"]["all"]["tokens"] -= 5
    copy = tmp_path / "copy"
    for path in out.rglob("*.jsonl"):
        target = copy / path.relative_to(out)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    (copy / "manifest.json").write_text(json.dumps(manifest))
    paths = write_report(ReportConfig(run_dir=str(copy)))
    assert not paths["all_match"]
    found = tables((copy / "report.md").read_text())
    flags = {r["style"]: r["matches manifest"] for r in found["Counts and tokens per style"]}
    assert flags["debate"] == "NO" and flags["teacher_student"] == "yes"
    variants = {r["variant"]: r["matches manifest"] for r in found["Counts and tokens per variant"]}
    assert variants["all"] == "NO" and variants["raw"] == "yes"
    assert "do NOT match" in (copy / "report.md").read_text()


def test_report_of_a_synthesize_run_matches_its_shard_manifests(filtered, tmp_path):
    run, _ = filtered
    write_report(ReportConfig(run_dir=str(run), output_dir=str(tmp_path)))
    found = tables((tmp_path / "report.md").read_text())
    rows = {r["style"]: r for r in found["Counts and tokens per style"]}
    sums: dict[str, dict[str, int]] = {}
    for path in (run / "manifests").glob("*.json"):
        for style, t in json.loads(path.read_text())["by_style"].items():
            for column in ("conversations", "prompt_tokens", "completion_tokens"):
                sums.setdefault(style, {}).setdefault(column, 0)
                sums[style][column] += t[column]
    assert {s: {c: int(r[c]) for c in sums[s]} for s, r in rows.items()} == sums
    assert all(r["matches manifest"] == "yes" for r in rows.values())


def test_cli_takes_the_run_folder_as_a_positional_argument(filtered, tmp_path):
    _, out = filtered
    result = run_stage("report", str(out), f"output_dir={tmp_path}", timeout=120)
    assert "report.md" in result.stdout
    assert (tmp_path / "report.html").is_file()
    missing = run_stage("report", str(tmp_path / "nope"), check=False, timeout=120)
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"error: run folder not found: {tmp_path / 'nope'}"
    assert not Path(tmp_path / "nope").exists()
