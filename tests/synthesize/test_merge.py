"""merge: a re-merge replaces the whole export, an empty run merges, changed contexts are refused,
and a run_dir that does not exist is one line (and stays absent).

Runs are written by the real shard store, as the synthesize stage writes them, so each test
reads exactly the files and manifests a finished job array leaves behind.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from omegaconf import OmegaConf

from mind_nemo.core.errors import UserError
from mind_nemo.core.records import Context, Conversation
from mind_nemo.synthesize.config import ExportConfig, MergeConfig
from mind_nemo.synthesize.merge import merge_run, run_merge
from mind_nemo.synthesize.shard_store import ShardStore
from tests.helpers import run_stage

STYLES = ("debate", "interview")


def make_run(
    root: Path, docs_per_shard: list[int], model: str = "", styles: tuple[str, ...] = STYLES
) -> Path:
    """A finished synthesize run: per shard, ``n`` documents x one context x each style."""
    num_shards = len(docs_per_shard)
    root.mkdir(parents=True, exist_ok=True)
    (root / "run_identity.json").write_text(json.dumps({"num_shards": num_shards}))
    for shard_id, docs in enumerate(docs_per_shard):
        store = ShardStore(root, shard_id, num_shards)
        store.load()
        store.open()
        for d in range(docs):
            doc = f"doc-{shard_id}-{d}"
            store.add_context(Context(doc, 0, f"context {doc}", 0, 5, 0, 20))
            for style in styles:
                store.commit(Conversation(f"A: {doc}\nB: {style}", style, doc, 0, model=model,
                                          sampling={"temperature": 1.0, "top_p": 0.9},
                                          completion_tokens=7))  # fmt: skip
        store.close()
        store.write_manifest("complete", store.totals(), {})
    return root


def parts(run: Path) -> list[str]:
    return sorted(str(p.relative_to(run)) for p in (run / "export").glob("*/*.parquet"))


def test_remerge_with_other_rows_per_file_leaves_no_old_parts(tmp_path):
    run = make_run(tmp_path / "run", [5])
    merge_run(MergeConfig(run_dir=str(run), export=ExportConfig(rows_per_file=2)))
    assert len(parts(run)) == 2 * 3  # 5 rows per style in files of 2
    manifest = merge_run(MergeConfig(run_dir=str(run), export=ExportConfig(rows_per_file=100)))
    assert parts(run) == [f"export/{s}/part-00000.parquet" for s in STYLES]
    assert sorted(manifest["export"]) == ["export/README.md", *parts(run)]
    rows = sum(pq.read_table(run / p).num_rows for p in parts(run))
    assert rows == manifest["conversations"] == 10
    assert not list(run.glob("export.*"))  # no staging or retired folder left behind


def test_a_run_of_zero_conversations_merges(tmp_path, capsys):
    run = make_run(tmp_path / "run", [0, 0])
    manifest = run_merge(OmegaConf.structured(MergeConfig(run_dir=str(run))))
    assert manifest["status"] == "complete" and manifest["conversations"] == 0
    assert manifest["num_shards"] == 2 and list(manifest["export"]) == ["export/README.md"]
    assert "0 rows in all" in (run / "export" / "README.md").read_text()
    assert "merged 2 shards" in capsys.readouterr().out


def test_contexts_changed_after_the_shard_completed_are_refused(tmp_path):
    run = make_run(tmp_path / "run", [2, 2])
    merge_run(MergeConfig(run_dir=str(run)))
    with open(run / "contexts" / "shard-00001-of-00002.jsonl", "a") as f:
        f.write(json.dumps({"document_id": "x", "index": 0, "text": "late"}) + "\n")
    with pytest.raises(UserError, match="shard-00001-of-00002 changed after it completed"):
        merge_run(MergeConfig(run_dir=str(run)))


def test_a_missing_run_dir_is_one_line_and_is_not_created(tmp_path):
    missing = tmp_path / "no" / "such-run"
    result = run_stage("merge", f"run_dir={missing}", check=False, timeout=120)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [f"error: run folder not found: {missing}"]
    assert not (tmp_path / "no").exists()
