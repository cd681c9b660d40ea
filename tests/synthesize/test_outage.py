"""A server outage is not the rows' fault: requests wait on the circuit breaker, never fail.

The stub server is SIGKILLed mid-run (in-flight connections reset, new ones refused), as a
crashed or restarted inference server would be. Retries are made tiny (three tries within
~0.1s) so that, without the breaker, every row in flight or planned during the outage would be
written to failures/ as ``connection_error``.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mind_nemo.core.styles import CONVERSATION_STYLES
from mind_nemo.servers.client import OpenAICompatibleClient, RequestFailed
from tests.helpers import REPO, read_rows, write_corpus

SHARD = "shard-00000-of-00001"


def synth_cmd(stub, corpus: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "mind_nemo.synthesize", *stub.overrides(), "corpus=files",
        f"corpus.path={corpus}", "corpus.id_field=id", f"output_dir={out}", "+style=all",
        "progress=false", "engine.max_retries=2", "engine.backoff_initial_s=0.01",
        "engine.backoff_max_s=0.05", "engine.max_concurrent_requests=8", *extra,
    ]  # fmt: skip


def committed(out: Path) -> list[dict]:
    path = out / "conversations" / f"{SHARD}.jsonl"
    return read_rows(path) if path.exists() else []


def failures(out: Path) -> list[dict]:
    path = out / "failures" / f"{SHARD}.jsonl"
    return read_rows(path) if path.exists() else []


def planned_keys(out: Path) -> set[tuple]:
    contexts = read_rows(out / "contexts" / f"{SHARD}.jsonl")
    return {(c["document_id"], c["index"], s, 0) for c in contexts for s in CONVERSATION_STYLES}


def unique_keys(rows: list[dict]) -> set[tuple]:
    keys = [(r["document_id"], r["context_index"], r["conversational_style"], r["sample"])
            for r in rows]  # fmt: skip
    assert len(keys) == len(set(keys)), "a conversation was written twice"
    return set(keys)


def start_and_kill_mid_run(stub, cmd: list[str], out: Path, log: Path) -> subprocess.Popen:
    """Start the stage, SIGKILL the stub once some (not all) rows are committed."""
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and len(committed(out)) < 10:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before the outage began"
    stub.kill()
    return proc


def test_server_killed_and_restarted_within_dead_timeout_loses_no_row(stub_server, tmp_path):
    stub = stub_server("--latency", "0.02,0.06")
    corpus = write_corpus(tmp_path / "c.jsonl", 24)
    out, log = tmp_path / "run", tmp_path / "stderr.log"
    proc = start_and_kill_mid_run(
        stub, synth_cmd(stub, corpus, out, "engine.server_dead_after_s=60"), out, log
    )
    at_kill = len(committed(out))
    time.sleep(2.0)  # ~20x the whole retry budget of a row
    assert proc.poll() is None, "the outage ended the run"
    stub.restart()
    assert proc.wait(timeout=180) == 0, log.read_text()[-3000:]
    assert failures(out) == []
    keys = unique_keys(committed(out))
    assert at_kill < len(keys)
    assert keys == planned_keys(out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["failures"] == 0
    assert "server unreachable" in (out / "stage.log").read_text()  # the breaker did open


def test_server_killed_for_good_leaves_rows_planned_and_rerun_finishes(stub_server, tmp_path):
    stub = stub_server("--latency", "0.02,0.06")
    corpus = write_corpus(tmp_path / "c.jsonl", 24)
    out, log = tmp_path / "run", tmp_path / "stderr.log"
    proc = start_and_kill_mid_run(
        stub, synth_cmd(stub, corpus, out, "engine.server_dead_after_s=3"), out, log
    )
    assert proc.wait(timeout=120) == 2
    stderr = log.read_text()
    assert "the server died" in stderr and "rerun the same command to resume" in stderr
    assert [f for f in failures(out) if f["reason"] == "connection_error"] == []
    before = unique_keys(committed(out))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "server_dead" and "unreachable" in manifest["detail"]
    # A plain rerun (no +retry_failed) against a new server does every remaining row once.
    fresh = stub_server()
    subprocess.run(synth_cmd(fresh, corpus, out), cwd=REPO, check=True, capture_output=True,
                   timeout=180)  # fmt: skip
    keys = unique_keys(committed(out))
    assert before < keys and keys == planned_keys(out)
    assert failures(out) == []
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"


def breaker_complete(url: str, **kwargs):
    async def go():
        async with OpenAICompatibleClient(url, "stub", circuit_breaker=True, **kwargs) as client:
            result = await client.complete([{"role": "user", "content": "x = 7"}], {})
            return result, client.breaker

    return asyncio.run(go())


def test_breaker_still_charges_the_row_when_the_server_is_up(stub_server):
    """A dropped connection while /health answers is the request's own failure: counted."""
    stub = stub_server("--fault-rate", "1", "--faults", "drop")
    with pytest.raises(RequestFailed) as err:
        breaker_complete(stub.url, max_retries=2, backoff_initial_s=0.01)
    assert err.value.reason == "connection_error" and err.value.attempts == 3


def test_request_waits_out_an_outage_without_spending_retries(stub_server):
    """A request sent while the server is down succeeds once it is back, on its first try."""
    stub = stub_server()
    stub.kill()

    async def go():
        client = OpenAICompatibleClient(
            stub.url, "stub", circuit_breaker=True, max_retries=0, backoff_initial_s=0.01,
            backoff_max_s=0.05,
        )  # fmt: skip
        async with client:
            request = asyncio.create_task(client.complete([{"role": "user", "content": "1"}], {}))
            await asyncio.sleep(1.0)
            assert not request.done() and client.breaker.is_open
            await asyncio.to_thread(stub.restart)
            result = await asyncio.wait_for(request, 10)
            return result, client.breaker

    result, breaker = asyncio.run(go())
    assert result.attempts == 1 and not breaker.is_open
    assert breaker.outages == 1 and breaker.probes > 2
