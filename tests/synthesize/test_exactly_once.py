"""Exactly-once under SIGKILL, soft failure under injected faults, and shards == one run."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mind_nemo.synthesize.export import export_columns
from tests.helpers import REPO, read_rows, run_stage, write_corpus


def synth_cmd(stub, corpus: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "mind_nemo.synthesize", *stub.overrides(), "corpus=files",
        f"corpus.path={corpus}", "corpus.id_field=id", f"output_dir={out}", "progress=false",
        "engine.backoff_initial_s=0.01", "engine.backoff_max_s=0.05", *extra,
    ]  # fmt: skip


def keyed(rows: list[dict]) -> dict[tuple, str]:
    out = {}
    for r in rows:
        key = (r["document_id"], r["context_index"], r["conversational_style"], r["sample"])
        assert key not in out, f"duplicate {key}"
        out[key] = r["text"]
    return out


def conversations(out: Path) -> list[dict]:
    rows = []
    for path in sorted((out / "conversations").glob("*.jsonl")):
        rows += read_rows(path)  # strict: a torn or invalid line fails here
    return rows


@pytest.mark.slow
def test_sigkill_at_20_random_moments_loses_and_duplicates_nothing(stub_server, tmp_path):
    stub = stub_server("--latency", "0.02,0.08")
    corpus = write_corpus(tmp_path / "c.jsonl", 120)
    reference = tmp_path / "reference"
    subprocess.run(synth_cmd(stub, corpus, reference, "+style=all"), cwd=REPO, check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    expected = keyed(conversations(reference))
    assert len(expected) > 120 * 7 * 0.9

    out = tmp_path / "killed"
    target = out / "conversations" / "shard-00000-of-00001.jsonl"
    rng = random.Random(1234)
    kills = 0
    for _ in range(40):
        proc = subprocess.Popen(synth_cmd(stub, corpus, out, "+style=all",
                                          "engine.max_concurrent_requests=8"),
                                cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        start_size = target.stat().st_size if target.exists() else 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if target.exists() and target.stat().st_size > start_size:
                break  # generation is under way: now pick a random moment
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.3))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        if kills >= 20:
            break
    assert kills >= 20
    # Let the last run finish, then compare with the uninterrupted run.
    subprocess.run(synth_cmd(stub, corpus, out, "+style=all"), cwd=REPO, check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    got = keyed(conversations(out))
    assert got.keys() == expected.keys()
    assert got == expected  # the stub is deterministic, so texts match too
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"


def test_injected_faults_every_row_completed_or_failed_with_reason(stub_server, tmp_path):
    stub = stub_server("--latency", "0,0.01", "--fault-rate", "0.2", "--stall", "3")
    corpus = write_corpus(tmp_path / "c.jsonl", 25)
    out = tmp_path / "run"
    proc = subprocess.run(
        synth_cmd(stub, corpus, out, "+style=all", "engine.max_retries=1",
                  "engine.request_timeout_s=1", "engine.max_concurrent_requests=8"),
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    done = keyed(conversations(out))
    failures = read_rows(out / "failures" / "shard-00000-of-00001.jsonl")
    failed_keys = {(f["document_id"], f["context_index"], f["conversational_style"], f["sample"])
                   for f in failures}  # fmt: skip
    contexts = read_rows(out / "contexts" / "shard-00000-of-00001.jsonl")
    planned = {(c["document_id"], c["index"], s, 0) for c in contexts
               for s in ("two_students", "teacher_student", "two_professors", "debate",
                         "problem_solving", "layman_knowall", "interview")}  # fmt: skip
    assert not (failed_keys & done.keys())
    assert failed_keys | done.keys() == planned  # nothing lost, counts add up
    assert failures, "with 20% faults and one retry some requests must fail"
    reasons = {f["reason"] for f in failures}
    assert reasons <= {"http_429", "http_500", "http_503", "timeout", "connection_error",
                       "malformed_body"}  # fmt: skip
    assert len(reasons) >= 3
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["conversations"] + manifest["failures"] == len(planned)
    assert sum(manifest["failure_reasons"].values()) == len(failures)


def test_shards_merged_equal_one_unsharded_run(stub_server, tmp_path):
    stub = stub_server()
    corpus = write_corpus(tmp_path / "c.jsonl", 30)
    whole = tmp_path / "whole"
    subprocess.run(synth_cmd(stub, corpus, whole, "+style=all"), cwd=REPO, check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    sharded = tmp_path / "sharded"
    # shard 0 and 2 via arguments, shard 1 via the SLURM array variables
    for shard_id in (0, 2):
        subprocess.run(synth_cmd(stub, corpus, sharded, "+style=all", "num_shards=3",
                                 f"shard_id={shard_id}"),
                       cwd=REPO, check=True, capture_output=True, timeout=300)  # fmt: skip
    early = run_stage("merge", f"run_dir={sharded}", check=False)
    assert early.returncode == 2 and "shard-00001-of-00003 has not run" in early.stderr
    env = {"SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_MIN": "0"}
    import os

    subprocess.run(synth_cmd(stub, corpus, sharded, "+style=all"), cwd=REPO, check=True,
                   capture_output=True, timeout=300, env={**os.environ, **env})  # fmt: skip
    sizes = [len(read_rows(p)) for p in sorted((sharded / "conversations").glob("*.jsonl"))]
    assert len(sizes) == 3 and all(sizes)
    result = run_stage("merge", f"run_dir={sharded}")
    assert "merged 3 shards" in result.stdout
    assert keyed(conversations(sharded)) == keyed(conversations(whole))
    manifest = json.loads((sharded / "manifest.json").read_text())
    assert manifest["conversations"] == len(keyed(conversations(whole)))
    # Parquet export, one folder per style: the released fields first, then provenance
    tables = [pq.read_table(p) for p in sorted((sharded / "export").glob("*/*.parquet"))]
    assert len(tables) == 7
    expected = [c.name for c in export_columns("mind_nemo")]
    assert expected[:3] == ["text", "conversational_style", "document_id"]
    assert all(t.column_names == expected for t in tables)
    assert sum(t.num_rows for t in tables) == manifest["conversations"]
    # A shard modified after it completed is refused.
    with open(sharded / "conversations" / "shard-00000-of-00003.jsonl", "a") as f:
        f.write("{}\n")
    tampered = run_stage("merge", f"run_dir={sharded}", check=False)
    assert tampered.returncode == 2 and "checksum mismatch" in tampered.stderr
