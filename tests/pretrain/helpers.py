"""Shared pieces of the pretrain tests: a small real mix, fast overrides, an in-process runtime.

The mix is built by the real mix stage from a fake synthesize run (conversations in three
styles) plus the packaged raw-math and general-web samples, tokenized with the embedded SmolLM2
tokenizer; the validation split therefore holds held-out synthetic conversations.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import run_stage
from tests.mix.helpers import make_synthesize_run

#: The tiny recipe cut to seconds: 64-token sequences, 4 per step.
FAST = [
    "pretrain=tiny_cpu",
    "pretrain.seq_length=64",
    "pretrain.micro_batch_size=2",
    "pretrain.global_batch_size=4",
    "pretrain.eval_iters=2",
    "cpu_threads=2",
]


@pytest.fixture(scope="session")
def mix_dir(tmp_path_factory) -> Path:
    """A real mix run folder (blend.json + datasets) over synthetic conversations + samples."""
    root = tmp_path_factory.mktemp("pretrain_mix")
    synth, _ = make_synthesize_run(root / "synth", per_style=12)
    out = root / "mix"
    run_stage(
        "mix",
        "mix=quickstart_conversations",
        f"sources.conversations.path={synth}",
        f"output_dir={out}",
        "workers=1",
        "progress=false",
        timeout=300,
    )
    return out


def read_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def per_step(rows: list[dict[str, Any]], key: str) -> dict[int, float]:
    """``step -> value`` (later rows win: a resumed run re-does steps after its checkpoint)."""
    return {r["step"]: r[key] for r in rows if r.get(key) is not None}


@pytest.fixture(scope="module")
def megatron_runtime():
    """One-process gloo group + megatron parallel state (TP = PP = 1) for in-process tests."""
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from mind_nemo.pretrain import runtime

    with initialize_config_module("mind_nemo.hydra_configs", version_base="1.3"):
        raw = compose("pretrain", overrides=["pretrain=tiny_cpu"])
    cfg = OmegaConf.to_object(raw)
    rt = runtime.init(cfg.pretrain)
    yield rt
    runtime.shutdown()


def recipe(name: str, *overrides: str) -> Any:
    """The typed config of ``pretrain=name`` with overrides (as the CLI composes it)."""
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from mind_nemo.pretrain.config import settle_base_checkpoint

    with initialize_config_module("mind_nemo.hydra_configs", version_base="1.3"):
        raw = compose("pretrain", overrides=[f"pretrain={name}", *overrides])
    settle_base_checkpoint(raw)
    return OmegaConf.to_object(raw)
