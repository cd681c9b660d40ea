"""synthesize against a real ``transformers serve`` that the tool launches and stops.

Fast tests use a tiny random llama (real server, real tokenizer, garbage text); the slow one
uses the real packaged SmolLM2-135M-Instruct through the ``embedded_run_dir`` fixture.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from mind_nemo.core.styles import CONVERSATION_STYLES
from tests.helpers import REPO, read_rows, run_stage

SHARD = "shard-00000-of-00001"


def server_processes(model_dir) -> list[str]:
    out = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "serve" in line and str(model_dir) in line]


@pytest.mark.integration
def test_local_server_run_on_sample_corpus(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    result = run_stage(
        "synthesize", "+style=two_students", f"server.model={tiny_model_dir}", "limit=3",
        "server.max_new_tokens=12", f"output_dir={out}", timeout=300,
    )  # fmt: skip
    rows = read_rows(out / "conversations" / f"{SHARD}.jsonl")
    assert len(rows) == 3
    assert all(r["completion_tokens"] > 0 and r["prompt_tokens"] > 100 for r in rows)
    assert {r["document_id"] for r in rows} <= {f"owm-sample-{i:04d}" for i in range(1, 40)}
    assert all(r["sampling"]["max_tokens"] <= 12 for r in rows)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["limit"] == 3
    assert "limit=3 contexts" in result.stdout
    assert (out / "server.log").is_file()
    assert not server_processes(tiny_model_dir), "the server must be stopped at the end"


@pytest.mark.integration
@pytest.mark.parametrize(
    ("sig", "code", "word"),
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated"),
     (signal.SIGKILL, -9, "")],
)  # fmt: skip
def test_signals_stop_the_server_and_keep_work(tiny_model_dir, tmp_path, sig, code, word):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "mind_nemo.synthesize", "+style=all",
           f"server.model={tiny_model_dir}", "limit=null", "server.max_new_tokens=300",
           "engine.max_concurrent_requests=1", f"output_dir={out}", "progress=false"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    conversations = out / "conversations" / f"{SHARD}.jsonl"
    try:
        deadline = time.monotonic() + 240
        while (
            time.monotonic() < deadline
            and proc.poll() is None
            and not (conversations.exists() and conversations.read_text())
        ):
            time.sleep(0.2)
        assert proc.poll() is None, "the run must still be going when we press Ctrl-C"
        assert server_processes(tiny_model_dir)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == code
    assert word in stderr and "Traceback" not in stderr
    time.sleep(2)  # kill -9: the server goes by its parent-death signal
    assert not server_processes(tiny_model_dir)
    assert read_rows(conversations)  # what finished is kept, every line whole


@pytest.mark.slow
def test_real_embedded_model_all_styles(embedded_run_dir):
    rows = read_rows(embedded_run_dir / "conversations" / f"{SHARD}.jsonl")
    contexts = read_rows(embedded_run_dir / "contexts" / f"{SHARD}.jsonl")
    assert len(contexts) == 1
    assert {r["conversational_style"] for r in rows} == set(CONVERSATION_STYLES)
    assert len(rows) == 7
    assert all(r["text"].strip() and r["model"] == "embedded" for r in rows)
    assert all(r["finish_reason"] in ("stop", "length") for r in rows)
    manifest = json.loads((embedded_run_dir / "manifest.json").read_text())
    assert manifest["conversations"] == 7
    assert manifest["session"]["output_tokens_per_s"] > 0
