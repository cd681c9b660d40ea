"""pretrain refuses, in one line, a split that would leave a source with 0 documents in a part.

The quickstart's case: one conversation survived the filter, the mix (``split=100:0:0``) was
fine, and pretrain's own recipe split (``90,10,0``) then gave that source an empty validation
part, on which megatron-core's ``GPTDataset`` spins forever. Here the real mix stage builds such
a blend and the real ``python -m mind_nemo.pretrain`` must refuse it quickly; every run has a
subprocess timeout, so a regression fails instead of hanging the suite.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import run_stage
from tests.mix.helpers import text, write_jsonl
from tests.pretrain.helpers import FAST

#: The refusal comes before torch starts training; a hang would run into this.
REFUSE_WITHIN_S = 120


def _mix_with_conversations(root: Path, conversations: int) -> tuple[Path, dict[str, int]]:
    """The quickstart mix (conversations + the packaged raw-math and general-web samples, 2:1)
    over a synthesize run of ``conversations`` rows; returns it and its documents per source."""
    rows = [
        {"text": text("debate", i), "conversational_style": "debate", "document_id": f"d{i}"}
        for i in range(conversations)
    ]
    write_jsonl(root / "synth/conversations/shard-00000-of-00001.jsonl", rows)
    (root / "synth/manifest.json").write_text('{"status": "complete"}')
    out = root / "mix"
    run_stage(
        "mix",
        "mix=quickstart_conversations",
        f"sources.conversations.path={root / 'synth'}",
        "split=100:0:0",  # what the mix needs for a 1-document source
        f"output_dir={out}",
        "workers=0",
        "progress=false",
        timeout=300,
    )
    manifest = json.loads((out / "manifest.json").read_text())
    return out, {name: s["documents"] for name, s in manifest["sources"].items()}


@pytest.fixture(scope="module")
def one_conversation(tmp_path_factory) -> tuple[Path, dict[str, int]]:
    return _mix_with_conversations(tmp_path_factory.mktemp("one_conversation"), 1)


@pytest.fixture(scope="module")
def five_conversations(tmp_path_factory) -> tuple[Path, dict[str, int]]:
    return _mix_with_conversations(tmp_path_factory.mktemp("five_conversations"), 5)


def _refusal(mix_dir: Path, out: Path, *overrides: str) -> str:
    result = run_stage(
        "pretrain",
        *FAST,
        f"mix_dir={mix_dir}",
        f"output_dir={out}",
        "base_checkpoint=null",
        *overrides,
        check=False,
        timeout=REFUSE_WITHIN_S,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert not (out / "checkpoints").exists()  # refused before megatron-core started
    return lines[0]


def test_a_one_document_source_is_refused_with_the_recipes_split(one_conversation, tmp_path):
    mix_dir, documents = one_conversation
    assert documents["conversations"] == 1  # the mix itself took it, with split=100:0:0
    line = _refusal(mix_dir, tmp_path / "out")  # tiny_cpu's split: 90,10,0
    assert line.startswith("error: pretrain.split=90,10,0 gives source 'conversations' ")
    assert "(1 document) 0 validation documents" in line
    assert "raw_math" not in line and "general_web" not in line  # they have documents there
    assert "megatron-core never finishes" in line
    assert "no train/validation split gives 'conversations' a document in both parts" in line
    assert "mix at least 2 documents of it" in line  # no split can help: the fix is more data


def test_a_split_without_validation_is_refused(one_conversation, tmp_path):
    mix_dir, _ = one_conversation
    line = _refusal(mix_dir, tmp_path / "out", "pretrain.split=100/0/0")
    assert "pretrain.split=100/0/0 gives the validation part no share" in line


def test_the_suggested_split_trains(five_conversations, tmp_path):
    """With 5 documents ``98,2,0`` leaves the validation part empty; the split the refusal
    names instead is built by megatron-core and trained on."""
    mix_dir, documents = five_conversations
    assert documents["conversations"] == 5
    line = _refusal(mix_dir, tmp_path / "refused", "pretrain.split=98/2/0")
    assert "pretrain.split=98/2/0 gives source 'conversations' (5 documents) 0 validation" in line
    suggested = line.split("use pretrain.split=", 1)[1].split(",", 1)[0]
    assert suggested.count("/") == 2 and suggested.endswith("/0")  # test part stays 0
    result = run_stage(
        "pretrain",
        *FAST,
        f"mix_dir={mix_dir}",
        f"output_dir={tmp_path / 'trained'}",
        "base_checkpoint=null",
        f"pretrain.split={suggested}",
        "pretrain.train_iters=1",
        "export_hf=false",
        "tensorboard=false",
        timeout=400,
    )
    manifest = json.loads((tmp_path / "trained" / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["iteration"] == 1, result.stdout
    assert manifest["first_val_loss"] is not None
