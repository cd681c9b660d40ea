"""Shared fixtures: a tiny real model for fast server tests, and real synthesize runs.

``tiny_model_dir`` is a randomly initialised 2-layer llama with the embedded model's tokenizer,
small enough that ``transformers serve`` answers in well under a second on CPU. The
``embedded_run_dir`` fixture runs the real ``synthesize`` stage with the real packaged
SmolLM2-135M-Instruct once per session (slow; shared by every test that needs real output).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from mind_nemo.servers.stub import StubProcess
from tests.helpers import REPO, run_stage  # noqa: F401  (fixtures below use them)


@pytest.fixture(scope="session")
def embedded_tokenizer():
    from mind_nemo.servers.embedded_model import load_embedded_tokenizer

    return load_embedded_tokenizer()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, embedded_tokenizer) -> Path:
    """A 2-layer random llama saved as a model directory with the embedded tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(embedded_tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        tie_word_embeddings=True,
        bos_token_id=embedded_tokenizer.bos_token_id,
        eos_token_id=embedded_tokenizer.eos_token_id,
    )
    config.architectures = ["LlamaForCausalLM"]
    model = LlamaForCausalLM(config)
    path = tmp_path_factory.mktemp("tiny_llama")
    model.save_pretrained(path)
    embedded_tokenizer.save_pretrained(path)
    return path


@dataclass
class QuickstartRun:
    """``recipes/quickstart.sh`` run once per session: its run folders and what it printed."""

    root: Path
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture(scope="session")
def quickstart_run(tmp_path_factory) -> QuickstartRun:
    """The whole pipeline on the real packaged model, run once and shared (slow: minutes).

    Tests of single stages on real model output read its run folders instead of generating
    their own, so the suite pays for the embedded model's generation once.
    """
    root = tmp_path_factory.mktemp("quickstart") / "run"
    result = subprocess.run(
        ["bash", str(REPO / "recipes" / "quickstart.sh")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=3600,
        env={**os.environ, "RUN": str(root), "PYTHON": sys.executable, "TQDM_DISABLE": "1"},
    )
    return QuickstartRun(root, result.returncode, result.stdout, result.stderr)


@pytest.fixture(scope="session")
def embedded_run_dir(quickstart_run: QuickstartRun) -> Path:
    """A real synthesize run: all seven styles on one sample context with the packaged model."""
    out = quickstart_run.root / "synthesize"
    if not (out / "manifest.json").is_file():
        pytest.fail(f"the quickstart's synthesize step failed:\n{quickstart_run.stderr[-3000:]}")
    return out


@pytest.fixture
def stub_server():
    """Factory: ``stub_server('--latency', '0,0.01')`` starts a stub; all are stopped after."""
    started: list[StubProcess] = []

    def start(*args: str) -> StubProcess:
        stub = StubProcess(*args)
        started.append(stub)
        return stub

    yield start
    for stub in started:
        stub.stop()
