"""What the mix prints for Megatron-LM and NeMo, run as given through the real megatron-core.

Megatron-LM's ``pretrain_gpt.py`` reads ``--data-args-path`` with ``get_blend_from_list`` and
hands ``--split``, ``--seq-length`` and the sample counts to ``BlendedMegatronDatasetBuilder`` +
``GPTDatasetConfig``; NeMo 2's ``PreTrainingDataModule`` does the same with ``paths=`` and
``split=``. ``tests/mix/megatron_build.py`` repeats exactly those calls in a subprocess with a
timeout, because megatron-core never returns when a split part holds 0 documents of a source:
a regression fails here instead of hanging the suite. ``bench/interop_megatron_lm.py`` runs
Megatron-LM's own argument parsing on the same printed line (it is not on PyPI).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.helpers import REPO, run_stage
from tests.mix.helpers import read_documents, text, write_jsonl

#: Megatron-LM's legacy default, what ``--data-path $(cat data_args.txt)`` alone gets.
MEGATRON_LM_DEFAULT_SPLIT = "969, 30, 1"
#: Batch settings Megatron-LM sizes validation and test from (``--global-batch-size``,
#: ``--eval-iters``, ``--eval-interval``); small, as a CPU smoke run would set them.
BATCH = {"global_batch_size": 8, "eval_iters": 10, "eval_interval": 1000}


def printed_megatron_args(stdout: str) -> argparse.Namespace:
    """The ``Megatron-LM:`` line the mix printed, parsed with Megatron-LM's option names; an
    option Megatron-LM does not have, or a stray word, fails here."""
    line = next(x for x in stdout.splitlines() if x.startswith("Megatron-LM:"))
    parser = argparse.ArgumentParser(exit_on_error=False)
    parser.add_argument("--data-args-path", required=True)
    parser.add_argument("--split", required=True)
    parser.add_argument("--seq-length", type=int, required=True)
    parser.add_argument("--train-samples", type=int, required=True)
    parser.add_argument("--tokenizer-type", required=True)
    parser.add_argument("--tokenizer-model", required=True)
    return parser.parse_args(shlex.split(line.split(":", 1)[1]))


def mix(out: Path, *overrides: str, check: bool = True) -> SimpleNamespace:
    result = run_stage(
        "mix", f"output_dir={out}", "workers=1", "progress=false", *overrides, check=check
    )
    blend = json.loads((out / "blend.json").read_text()) if result.returncode == 0 else None
    return SimpleNamespace(out=out, result=result, blend=blend)


def spec(run: SimpleNamespace, tmp: Path, **given: Any) -> dict[str, Any]:
    tok = run.blend["tokenizer"]
    cache = tmp / f"cache-{len(list(tmp.glob('cache-*')))}"
    cache.mkdir()
    return {"eod": tok["eod"], "vocab_size": tok["vocab_size"], "cache": str(cache)} | BATCH | given


def build(specs: list[dict[str, Any]], timeout: float = 240) -> list[dict[str, Any]]:
    """Every spec built by megatron-core in one subprocess; a hang fails, it does not wait."""
    result = subprocess.run(
        [sys.executable, "-m", "tests.mix.megatron_build", json.dumps(specs)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads(line) for line in result.stdout.splitlines()[1:]]


def by_source(run: SimpleNamespace, part: dict[str, Any]) -> dict[str, int]:
    names = {prefix: name for name, prefix in run.blend["prefixes"].items()}
    return {names[prefix]: n for prefix, n in part["documents"].items()}


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    """``python -m mind_nemo.mix`` as shipped: the packaged samples (26 and 12 documents)."""
    return mix(tmp_path_factory.mktemp("quickstart") / "run")


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    """One corpus of 600 documents, enough for Megatron-LM's default split, at seq 2048."""
    root = tmp_path_factory.mktemp("large")
    rows = [{"text": f"doc {i}. {text('w', i)}"} for i in range(600)]
    corpus = write_jsonl(root / "docs.jsonl", rows)
    return mix(root / "run", "mix=single", f"sources.data.path={corpus}", "seq_length=2048")


@pytest.fixture(scope="module")
def two_documents(tmp_path_factory):
    """A 2-document source: refused with the default split, trained on with ``100:0:0``."""
    root = tmp_path_factory.mktemp("two")
    corpus = write_jsonl(root / "two.jsonl", [{"text": text("t", i)} for i in range(2)])
    source = ["mix=single", f"sources.data.path={corpus}"]
    refused = mix(root / "a", *source, check=False)
    return SimpleNamespace(refused=refused, train_only=mix(root / "b", *source, "split=100:0:0"))


def given(run: SimpleNamespace) -> dict[str, Any]:
    """What the printed Megatron-LM line passes to the dataset builder."""
    args = printed_megatron_args(run.result.stdout)
    return {
        "data_args_path": args.data_args_path,
        "split": args.split,
        "seq_length": args.seq_length,
        "train_samples": args.train_samples,
    }


@pytest.fixture(scope="module")
def built(quickstart, large, two_documents, tmp_path_factory):
    """Every printed hand-off built by megatron-core, in one time-bounded subprocess."""
    tmp = tmp_path_factory.mktemp("cache")
    nemo = {k: v for k, v in given(quickstart).items() if k != "data_args_path"}
    nemo.update(paths=quickstart.blend["nemo"]["paths"], split=quickstart.blend["nemo"]["split"])
    bare = {**given(large), "split": MEGATRON_LM_DEFAULT_SPLIT}  # --data-path alone
    specs = {
        "quickstart": spec(quickstart, tmp, **given(quickstart)),
        "quickstart_nemo": spec(quickstart, tmp, **nemo),
        "large": spec(large, tmp, **given(large)),
        "large_default_split": spec(large, tmp, **bare),
        "train_only": spec(two_documents.train_only, tmp, **given(two_documents.train_only)),
    }
    return dict(zip(specs, build(list(specs.values())), strict=True))


def test_printed_command_and_nemo_keywords_build_every_split(quickstart, built):
    args = printed_megatron_args(quickstart.result.stdout)
    blend = quickstart.blend
    assert Path(args.data_args_path) == (quickstart.out / "data_args.txt").resolve()
    assert args.split == blend["megatron_lm"]["split"] == blend["nemo"]["split"]
    assert args.seq_length == 4096 and args.train_samples == blend["train_samples"]
    megatron_lm = built["quickstart"]
    assert megatron_lm == built["quickstart_nemo"]  # both consumers read the blend alike
    for i, part in enumerate(("train", "validation", "test")):
        split = megatron_lm["splits"][i]
        assert split is not None and split["length"] >= megatron_lm["sizes"][i], part
        documents = by_source(quickstart, split)
        assert all(n >= 1 for n in documents.values()), (part, documents)
        # the plan's per-part counts are megatron-core's own, measured on the built datasets
        assert documents == {s: d[part] for s, d in blend["split"]["documents"].items()}
        assert {s: d[part] for s, d in blend["nemo"]["documents"].items()} == documents
    assert set(blend["nemo"]["splits"]) == {"train", "validation", "test"}  # NeMo's key names


def test_megatron_lms_default_split_never_finishes_on_this_mix(quickstart, tmp_path):
    """Why the printed split differs: with ``969, 30, 1`` a 26-document source has no test
    document and megatron-core's ``GPTDataset._get_num_epochs`` spins forever."""
    split = quickstart.blend["split"]
    assert split["requested"] == "969,30,1" and split["split"] != "969,30,1"
    assert "0 test documents" in split["resized_because"]
    assert split["resized_because"] in quickstart.result.stdout
    default = spec(
        quickstart, tmp_path, **{**given(quickstart), "split": MEGATRON_LM_DEFAULT_SPLIT}
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.mix.megatron_build", json.dumps([default])],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "imported"
        started = time.monotonic()
        with pytest.raises(subprocess.TimeoutExpired):
            process.wait(timeout=15)  # the printed split builds in about a second
        assert time.monotonic() - started >= 15
    finally:
        process.kill()
        process.wait()


def test_a_mix_large_enough_keeps_megatrons_default_split(large, built):
    args = printed_megatron_args(large.result.stdout)
    assert args.split == "969,30,1" and large.blend["split"]["resized_because"] is None
    assert "split:" not in large.result.stdout  # nothing resized, nothing to explain
    total = large.blend["total_tokens"]
    assert args.seq_length == 2048
    assert args.train_samples == math.ceil(total / 2048) == large.blend["train_samples"]
    by_length = large.blend["train_samples_by_seq_length"]
    assert by_length["4096"] == math.ceil(total / 4096) and by_length["2048"] == args.train_samples
    assert built["large"] == built["large_default_split"]  # the same as --data-path alone
    assert [by_source(large, p)["data"] for p in built["large"]["splits"]] == [581, 18, 1]
    assert built["large"]["splits"][0]["length"] >= args.train_samples


def test_a_source_too_small_for_the_split_is_refused_in_one_line(two_documents, built):
    refused = two_documents.refused.result
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: source 'data' has 2 documents"), lines
    assert "split=969,30,1" in lines[0] and "split=100:0:0" in lines[0]

    args = printed_megatron_args(two_documents.train_only.result.stdout)
    assert args.split == "100,0,0"
    train, valid, test = built["train_only"]["splits"]
    assert valid is None and test is None  # 0-fraction parts are not built at all
    assert by_source(two_documents.train_only, train) == {"data": 2}


def test_a_malformed_split_fails_before_tokenizing(tmp_path):
    result = mix(tmp_path / "run", "split=train", check=False)
    assert result.result.returncode == 2
    assert "split='train' must be up to three proportions" in result.result.stderr
    assert not (tmp_path / "run" / "datasets").exists()


def test_the_named_tokenizer_gives_the_ids_in_the_bin_files(quickstart):
    """``--tokenizer-model`` / NeMo ``model_name`` is a folder Megatron-LM's
    ``HuggingFaceTokenizer`` (``AutoTokenizer`` underneath) loads offline, with our eod."""
    from transformers import AutoTokenizer

    args = printed_megatron_args(quickstart.result.stdout)
    assert args.tokenizer_type == "HuggingFaceTokenizer"
    nemo = quickstart.blend["nemo"]["tokenizer"]
    assert nemo["library"] == "huggingface" and nemo["model_name"] == args.tokenizer_model
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    saved = json.loads((Path(args.tokenizer_model) / "tokenizer_config.json").read_text())
    # transformers 5 writes TokenizersBackend, which NeMo's transformers<5 cannot load
    assert saved["tokenizer_class"] == "PreTrainedTokenizerFast"
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer_model)
    assert tokenizer.eos_token_id == quickstart.blend["tokenizer"]["eod"]
    from tests.mix.helpers import packaged_texts

    first = packaged_texts("general_web_sample.jsonl")[0]
    _, documents = read_documents(quickstart.blend["prefixes"]["general_web"])
    ids = tokenizer(first, add_special_tokens=False)["input_ids"]
    assert documents[0] == [*ids, tokenizer.eos_token_id]
