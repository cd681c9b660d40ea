"""Continued pretraining of the tiny recipe on a real mix, on CPU, end to end.

An uninterrupted run and a run killed with SIGKILL after a checkpoint then resumed must log the
same losses for every step after the checkpoint (same step, schedule, data order, optimizer
state). The held-out validation loss must go down, and every promised output must be there.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mind_nemo.pretrain.checkpoint import latest_iteration
from tests.helpers import REPO, run_stage
from tests.pretrain.helpers import FAST, per_step, read_rows, recipe

pytest_plugins = ("tests.pretrain.helpers",)  # fixtures: mix_dir

ITERS = 8
RUN = [
    *FAST,
    f"pretrain.train_iters={ITERS}",
    "pretrain.save_interval=2",
    "pretrain.eval_interval=4",
]


@pytest.fixture(scope="module")
def uninterrupted(mix_dir, tmp_path_factory) -> tuple[Path, dict]:
    """The reference run, in-process through the same entry the CLI uses."""
    from mind_nemo.pretrain.run import run_pretrain

    out = tmp_path_factory.mktemp("pretrain") / "ref"
    cfg = recipe("tiny_cpu", *RUN[1:], f"mix_dir={mix_dir}", f"output_dir={out}")
    return out, run_pretrain(cfg)


def test_outputs_of_a_finished_run(uninterrupted):
    out, summary = uninterrupted
    assert summary["status"] == "complete" and summary["iteration"] == ITERS
    manifest = (
        json.loads((out / "manifest.json").read_text())
        if (out / "manifest.json").exists()
        else summary
    )
    assert manifest["recipe"] == "tiny_cpu" and manifest["parameters"] == 12_976_768
    assert latest_iteration(out / "checkpoints") == ITERS
    assert sorted(p.name for p in (out / "checkpoints").glob("iter_*")) == [
        f"iter_{i:07d}" for i in (2, 4, 6, 8)
    ]
    rows = read_rows(out / "metrics.jsonl")
    train = [r for r in rows if "loss" in r]
    assert [r["step"] for r in train] == list(range(1, ITERS + 1))
    for row in train:
        assert row["loss"] > 0 and row["grad_norm"] > 0 and row["tokens_per_s"] > 0
        assert row["lr"] <= 1e-3
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf = AutoModelForCausalLM.from_pretrained(out / "hf")
    assert hf.config.num_hidden_layers == 2 and not hf.config.tie_word_embeddings
    assert AutoTokenizer.from_pretrained(out / "hf").eos_token_id == 2


def test_held_out_loss_goes_down(uninterrupted):
    out, summary = uninterrupted
    val = per_step(read_rows(out / "metrics.jsonl"), "val_loss")
    assert sorted(val) == [0, 4, 8]
    assert val[8] < val[4] < val[0]
    assert summary["last_val_loss"] == pytest.approx(val[8])


def test_killed_and_resumed_run_matches_the_uninterrupted_one(uninterrupted, mix_dir, tmp_path):
    ref_dir, _ = uninterrupted
    out = tmp_path / "killed"
    args = [*RUN, f"mix_dir={mix_dir}", f"output_dir={out}"]
    env = {**os.environ, "TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1"}
    log = open(tmp_path / "killed.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "mind_nemo.pretrain", *args],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.time() + 300
    while (latest_iteration(out / "checkpoints") or 0) < 2 and proc.poll() is None:
        assert time.time() < deadline, "no checkpoint within 300 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    log.close()
    killed_at = latest_iteration(out / "checkpoints")
    tail = (tmp_path / "killed.log").read_text()[-2000:]
    assert killed_at is not None and killed_at < ITERS, f"not killed mid-run:\n{tail}"

    result = run_stage("pretrain", *args, timeout=300)
    assert "complete at iteration 8/8" in result.stdout
    rows = read_rows(out / "metrics.jsonl")
    resumed = [r["resumed_from"] for r in rows if "resumed_from" in r]
    assert resumed and resumed[-1] >= killed_at
    start = resumed[-1]
    ref = per_step(read_rows(ref_dir / "metrics.jsonl"), "loss")
    got = per_step(rows, "loss")
    for step in range(start + 1, ITERS + 1):
        assert got[step] == pytest.approx(ref[step], rel=1e-5, abs=1e-6), step
    ref_lr, got_lr = per_step(read_rows(ref_dir / "metrics.jsonl"), "lr"), per_step(rows, "lr")
    assert all(got_lr[s] == pytest.approx(ref_lr[s]) for s in range(start + 1, ITERS + 1))
    val_ref = per_step(read_rows(ref_dir / "metrics.jsonl"), "val_loss")
    assert per_step(rows, "val_loss")[ITERS] == pytest.approx(val_ref[ITERS], rel=1e-5)
    assert json.loads((out / "manifest.json").read_text())["resumed_from"] == start


def test_a_megatron_checkpoint_as_base_gives_its_weights_and_a_fresh_schedule(
    uninterrupted, mix_dir, tmp_path
):
    from mind_nemo.pretrain.run import run_pretrain

    ref_dir, _ = uninterrupted
    out = tmp_path / "from_ckpt"
    args = [a for a in RUN[1:] if not a.startswith("pretrain.train_iters")]
    cfg = recipe(
        "tiny_cpu", *args, "pretrain.train_iters=1", f"base_checkpoint={ref_dir / 'checkpoints'}",
        f"mix_dir={mix_dir}", f"output_dir={out}", "export_hf=false", "tensorboard=false",
    )  # fmt: skip
    summary = run_pretrain(cfg)
    assert "Megatron checkpoint" in summary["start"] and summary["base"]["kind"] == "megatron"
    val_ref = per_step(read_rows(ref_dir / "metrics.jsonl"), "val_loss")
    # step 0 evaluates the base: exactly the reference run's final weights
    assert summary["first_val_loss"] == pytest.approx(val_ref[ITERS], rel=1e-6)
    rows = read_rows(out / "metrics.jsonl")
    assert [r["lr"] for r in rows if "lr" in r] == [1e-3]  # a fresh schedule at its peak LR
