"""A stage killed with SIGKILL leaves no process behind.

Each test starts a real stage with a marker in its environment (every process it starts inherits
it), waits until its child processes exist (pretrain: megatron's checkpoint manager and the
multiprocessing resource tracker after the first save; mix: the tokenizer pool), SIGKILLs the
stage's main process, and then requires every marked process to be gone within a few seconds.
Without parent-death signals these children were re-parented to init and ran on.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tests.helpers import REPO
from tests.mix.helpers import make_synthesize_run
from tests.pretrain.helpers import FAST

pytest_plugins = ("tests.pretrain.helpers",)  # fixtures: mix_dir

MARKER = "MIND_NEMO_ORPHAN_TEST"


def marked(tag: str) -> list[psutil.Process]:
    """Live (not zombie) processes whose environment carries ``MARKER=tag``."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(MARKER) == tag and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def describe(procs: list[psutil.Process]) -> list[str]:
    out = []
    for p in procs:
        try:
            out.append(f"{p.pid} (parent {p.ppid()}): {' '.join(p.cmdline())[:160]}")
        except psutil.Error:
            continue
    return out


def sigkill_and_check_nothing_survives(
    argv: list[str], ready: Callable[[psutil.Process], bool], log: Path, timeout_s: float = 300
) -> list[str]:
    """Run ``argv``, SIGKILL it once ``ready``; return what its children were (for the report).

    Fails if any process of the stage is alive 3s after the kill."""
    tag = uuid.uuid4().hex
    env = {**os.environ, MARKER: tag, "TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1"}
    with open(log, "w") as err:
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=err, stderr=subprocess.STDOUT)
    main = psutil.Process(proc.pid)
    try:
        deadline = time.monotonic() + timeout_s
        while not ready(main):
            assert proc.poll() is None, (
                f"the stage ended before the kill:\n{log.read_text()[-2000:]}"
            )
            assert time.monotonic() < deadline, "the stage never got its children started"
            time.sleep(0.2)
        children = describe(main.children(recursive=True))
        proc.kill()
        proc.wait()
        survivors = marked(tag)
        deadline = time.monotonic() + 3
        while survivors and time.monotonic() < deadline:
            time.sleep(0.2)
            survivors = marked(tag)
        assert not survivors, f"left behind after SIGKILL: {describe(survivors)}"
        return children
    finally:
        if proc.poll() is None:
            proc.kill()
        for leftover in marked(tag):  # never leave them to the next test
            leftover.kill()


def live_children(main: psutil.Process) -> list[psutil.Process]:
    try:
        return [c for c in main.children() if c.status() != psutil.STATUS_ZOMBIE]
    except psutil.NoSuchProcess:
        return []


def child_count(main: psutil.Process) -> int:
    return len(live_children(main))


def cpu_seconds(proc: psutil.Process) -> float:
    try:
        times = proc.cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return times.user + times.system


@pytest.mark.slow
def test_pretrain_killed_after_a_checkpoint_leaves_no_process(mix_dir, tmp_path):
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "mind_nemo.pretrain", *FAST, f"mix_dir={mix_dir}",
            f"output_dir={out}", "pretrain.train_iters=100000", "pretrain.save_interval=2",
            "pretrain.eval_interval=0"]  # fmt: skip

    def ready(main: psutil.Process) -> bool:
        # After the first save: megatron's results-queue manager and the resource tracker.
        return (out / "checkpoints" / "latest_checkpointed_iteration.txt").exists() and (
            child_count(main) >= 2
        )

    children = sigkill_and_check_nothing_survives(argv, ready, tmp_path / "pretrain.log")
    assert any("resource_tracker" in c for c in children), children
    assert any("spawn_main" in c for c in children), children


def test_mix_killed_while_tokenizing_leaves_no_process(tmp_path):
    # Two 16 MiB tasks: each keeps a worker busy for many seconds, so a worker that is not
    # killed with its parent is still tokenizing (for nobody) when the check runs.
    synth, _ = make_synthesize_run(tmp_path / "synth", per_style=24000)
    out = tmp_path / "mix"
    argv = [sys.executable, "-m", "mind_nemo.mix", "mix=quickstart_conversations",
            f"sources.conversations.path={synth}", f"output_dir={out}", "workers=2",
            f"batch_bytes={16 << 20}", "progress=false"]  # fmt: skip

    def ready(main: psutil.Process) -> bool:
        # Two pool workers (plus the resource tracker), both past start-up and into a task.
        workers = [c for c in live_children(main) if "spawn_main" in " ".join(c.cmdline())]
        return len(workers) >= 2 and all(cpu_seconds(w) > 3.0 for w in workers)

    children = sigkill_and_check_nothing_survives(argv, ready, tmp_path / "mix.log")
    assert any("resource_tracker" in c for c in children), children
