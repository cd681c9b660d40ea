"""synthesize end to end against the stub server: outputs, resume, retries, dead servers."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter

from mind_nemo.core.styles import CONVERSATION_STYLES
from tests.helpers import REPO, read_rows, run_stage, write_corpus

SHARD = "shard-00000-of-00001"


def synth(stub, corpus, out, *extra, check=True):
    return run_stage(
        "synthesize",
        *stub.overrides(),
        "corpus=files",
        f"corpus.path={corpus}",
        "corpus.id_field=id",
        f"output_dir={out}",
        "engine.backoff_initial_s=0.01",
        "engine.backoff_max_s=0.05",
        *extra,
        check=check,
        timeout=300,
    )


def test_all_styles_outputs_manifest_and_prefix_order(stub_server, tmp_path):
    stub = stub_server("--latency", "0,0.005")
    corpus = write_corpus(tmp_path / "c.jsonl", 6)
    out = tmp_path / "run"
    result = synth(stub, corpus, out, "+style=all", "engine.max_concurrent_requests=4")
    rows = read_rows(out / "conversations" / f"{SHARD}.jsonl")
    contexts = read_rows(out / "contexts" / f"{SHARD}.jsonl")
    assert len(contexts) >= 6
    assert len(rows) == len(contexts) * 7
    keys = [(r["document_id"], r["context_index"], r["conversational_style"], r["sample"])
            for r in rows]  # fmt: skip
    assert len(set(keys)) == len(keys)
    assert Counter(r["conversational_style"] for r in rows) == {
        s: len(contexts) for s in CONVERSATION_STYLES
    }
    row = rows[0]
    for field in ("text", "conversational_style", "document_id", "context_index", "model",
                  "sampling", "prompt_hash", "prompt_tokens", "completion_tokens",
                  "cached_tokens", "finish_reason", "created"):  # fmt: skip
        assert field in row
    assert row["sampling"]["temperature"] == 1.0 and row["sampling"]["top_p"] == 0.9
    assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0
    # Prefix-aware order: with 4 workers, a context's 7 requests are issued back to back,
    # so rows of one context land close together in the output.
    positions: dict[tuple, list[int]] = {}
    for i, r in enumerate(rows):
        positions.setdefault((r["document_id"], r["context_index"]), []).append(i)
    spreads = [max(p) - min(p) for p in positions.values()]
    assert max(spreads) < 7 + 4 * 2
    # The stub reports prefix-cache hits like vLLM: back-to-back styles of one context share it.
    assert sum(r["cached_tokens"] > 0 for r in rows) > len(rows) / 2
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["conversations"] == len(rows)
    assert manifest["session"]["cached_tokens"] == sum(r["cached_tokens"] for r in rows) > 0
    assert manifest["contexts"] == len(contexts)
    assert manifest["session"]["completion_tokens"] == sum(r["completion_tokens"] for r in rows)
    assert manifest["projection"]["gpu_hours"] > 0
    assert "projection:" in result.stdout and "output tok/s" in result.stdout
    assert (out / "config.yaml").is_file()


def test_rerun_requests_nothing_and_limit_extends(stub_server, tmp_path):
    stub = stub_server()
    corpus = write_corpus(tmp_path / "c.jsonl", 5)
    out = tmp_path / "run"
    synth(stub, corpus, out, "+style=debate", "limit=3")
    first = (out / "conversations" / f"{SHARD}.jsonl").read_text()
    synth(stub, corpus, out, "+style=debate", "limit=3")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["session"]["requests"] == 0
    assert (out / "conversations" / f"{SHARD}.jsonl").read_text() == first
    synth(stub, corpus, out, "+style=debate", "limit=5")
    rows = read_rows(out / "conversations" / f"{SHARD}.jsonl")
    assert len(rows) == 5
    assert json.loads((out / "manifest.json").read_text())["session"]["requests"] == 2


def test_changed_settings_refuse_to_mix_datasets(stub_server, tmp_path):
    stub = stub_server()
    corpus = write_corpus(tmp_path / "c.jsonl", 2)
    out = tmp_path / "run"
    synth(stub, corpus, out, "+style=debate", "limit=1")
    result = synth(stub, corpus, out, "+style=debate", "limit=1", "sampling.temperature=0.5",
                   check=False)  # fmt: skip
    assert result.returncode == 2
    assert "different sampling" in result.stderr


def test_failures_are_recorded_then_retried(stub_server, tmp_path):
    corpus = write_corpus(tmp_path / "c.jsonl", 4)
    out = tmp_path / "run"
    broken = stub_server("--fault-rate", "1.0", "--faults", "500")
    synth(broken, corpus, out, "+style=two_students", "engine.max_retries=1")
    failures = read_rows(out / "failures" / f"{SHARD}.jsonl")
    assert failures and {f["reason"] for f in failures} == {"http_500"}
    assert all(f["attempts"] == 2 for f in failures)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["failure_reasons"] == {"http_500": len(failures)}
    # A normal rerun does not hammer known failures...
    synth(broken, corpus, out, "+style=two_students", "engine.max_retries=1")
    assert json.loads((out / "manifest.json").read_text())["session"]["requests"] == 0
    # ...+retry_failed=true retries exactly those, against a healthy server.
    healthy = stub_server()
    synth(healthy, corpus, out, "+style=two_students", "+retry_failed=true")
    rows = read_rows(out / "conversations" / f"{SHARD}.jsonl")
    assert len(rows) == len(failures)
    assert read_rows(out / "failures" / f"{SHARD}.jsonl") == []


def test_completions_api_sends_templated_text(stub_server, tmp_path):
    stub = stub_server()
    corpus = write_corpus(tmp_path / "c.jsonl", 1)
    out = tmp_path / "run"
    synth(stub, corpus, out, "+style=interview", "server.api=completions", "limit=1")
    row = read_rows(out / "conversations" / f"{SHARD}.jsonl")[0]
    assert row["text"].startswith("Student:")
    assert row["prompt_tokens"] > 50  # the stub counts the words of the templated prompt


def test_dead_server_ends_cleanly_and_resume_finishes(stub_server, tmp_path):
    corpus = write_corpus(tmp_path / "c.jsonl", 40)
    out = tmp_path / "run"
    stub = stub_server("--latency", "0.05,0.1")
    cmd = [sys.executable, "-m", "mind_nemo.synthesize", *stub.overrides(), "corpus=files",
           f"corpus.path={corpus}", "corpus.id_field=id", f"output_dir={out}", "+style=all",
           "engine.max_concurrent_requests=8", "engine.server_dead_after_s=3",
           "engine.backoff_initial_s=0.2", "progress=false"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.PIPE, text=True)
    conversations = out / "conversations" / f"{SHARD}.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (
        not conversations.exists() or conversations.stat().st_size < 2000
    ):
        time.sleep(0.05)
    stub.proc.send_signal(signal.SIGKILL)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert "the server died" in stderr and "rerun" in stderr
    done = read_rows(conversations)
    assert 0 < len(done) < 40 * 7
    assert json.loads((out / "manifest.json").read_text())["status"] == "server_dead"
    fresh = stub_server()
    synth(fresh, corpus, out, "+style=all")
    rows = read_rows(conversations)
    keys = {(r["document_id"], r["context_index"], r["conversational_style"]) for r in rows}
    assert len(keys) == len(rows)
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"
