"""One writer per shard: the same synthesize command started twice on one output_dir (at once,
or the second while the first is under way, as when SLURM requeues a task whose first copy
still runs) ends with one copy refused in one line naming the holder, and every key once.

Two real ``python -m mind_nemo.synthesize`` processes against the stub server; the stub's
latency makes a copy generate for about half a minute, longer than the other takes to start, so
the second always meets the first one's lock.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mind_nemo.core.styles import CONVERSATION_STYLES
from tests.helpers import REPO, read_rows, write_corpus

SHARD = "shard-00000-of-00001"


def synth_cmd(stub, corpus: Path, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "mind_nemo.synthesize", *stub.overrides(), "corpus=files",
        f"corpus.path={corpus}", "corpus.id_field=id", f"output_dir={out}", "progress=false",
        "+style=all", "engine.max_concurrent_requests=2",
    ]  # fmt: skip


def start(cmd: list[str], log: Path) -> subprocess.Popen:
    """Run ``cmd`` with stderr in ``log`` (a file, not a pipe: nothing blocks on a full pipe)."""
    with open(log, "w") as err:
        return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err)


@pytest.mark.parametrize("second_starts", ["at_once", "mid_run"])
def test_two_copies_on_one_output_dir_one_refused_every_key_once(
    stub_server, tmp_path, second_starts
):
    stub = stub_server("--latency", "0.5,0.6")
    corpus = write_corpus(tmp_path / "c.jsonl", 16)
    out = tmp_path / "run"
    cmd = synth_cmd(stub, corpus, out)
    first = start(cmd, tmp_path / "first.err")
    if second_starts == "mid_run":
        target = out / "conversations" / f"{SHARD}.jsonl"
        deadline = time.monotonic() + 120
        while not (target.exists() and target.stat().st_size) and time.monotonic() < deadline:
            assert first.poll() is None, (tmp_path / "first.err").read_text()[-2000:]
            time.sleep(0.05)
    second = start(cmd, tmp_path / "second.err")
    if second_starts == "mid_run":
        second.wait(timeout=300)
        assert first.poll() is None, "the first copy ended before the second was refused"
    results = {}
    for name, proc in (("first", first), ("second", second)):
        proc.wait(timeout=600)
        results[name] = (proc.returncode, (tmp_path / f"{name}.err").read_text(), proc.pid)
    codes = sorted(code for code, _, _ in results.values())
    assert codes == [0, 2], {k: (c, e[-1500:]) for k, (c, e, _) in results.items()}
    (winner_pid,) = [pid for code, _, pid in results.values() if code == 0]
    (loser_err,) = [err for code, err, _ in results.values() if code == 2]
    if second_starts == "mid_run":
        assert results["second"][0] == 2  # the copy started while the first ran is the one refused
    lines = [line for line in loser_err.splitlines() if line.strip()]
    assert len(lines) == 1, loser_err
    assert lines[0].startswith(f"error: {SHARD} of {out} is already being written by ")
    assert f"pid {winner_pid} on host {socket.gethostname()} since " in lines[0]
    rows = read_rows(out / "conversations" / f"{SHARD}.jsonl")
    keys = {(r["document_id"], r["context_index"], r["conversational_style"], r["sample"])
            for r in rows}  # fmt: skip
    contexts = read_rows(out / "contexts" / f"{SHARD}.jsonl")
    assert len(rows) == len(keys) == len(contexts) * len(CONVERSATION_STYLES)
    assert len({(c["document_id"], c["index"]) for c in contexts}) == len(contexts)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["conversations"] == len(rows)
