"""The mix CLI end to end, with every output read back by megatron-core itself.

One run (two worker processes, small batches so results arrive out of order) mixes four kinds of
source: a filter run's LONGEST variant, one style of a synthesize run, the packaged raw math
sample and a Parquet general corpus. We then read each .bin/.idx with ``IndexedDataset``, compare
the detokenized documents with the source texts, build ``BlendedMegatronDatasetBuilder`` +
``GPTDataset`` over the blend file on CPU, and rerun to check reuse, upsampling and refusal.
"""

from __future__ import annotations

import itertools
import json
import math
import warnings
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from mind_nemo.core.run_folder import file_sha256
from mind_nemo.mix.config import TokenizerConfig
from mind_nemo.mix.tokenizer import build_encoder, resolve_tokenizer
from tests.helpers import run_stage
from tests.mix.helpers import (
    make_filter_run,
    make_parquet,
    make_synthesize_run,
    packaged_texts,
    read_documents,
)

ENV = {"HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    root = tmp_path_factory.mktemp("mix")
    filter_run, longest = make_filter_run(root / "filter")
    synth, by_style = make_synthesize_run(root / "synth")
    parquet, general = make_parquet(root / "general" / "web.parquet")
    out = root / "run"
    overrides = [
        "mix=quickstart_conversations",
        f"sources.conversations.path={synth}",
        "sources.conversations.styles=[teacher_student]",
        "+sources.longest.kind=variant",
        "+sources.longest.variant=longest",
        f"+sources.longest.path={filter_run}",
        "+sources.longest.group=math",
        f"sources.general_web.path={parquet}",
        f"output_dir={out}",
        "workers=2",
        "batch_bytes=3000",
        "progress=false",
    ]
    first = run_stage("mix", *overrides, timeout=300, env=ENV)
    expected = {
        "conversations": by_style["teacher_student"],
        "raw_math": packaged_texts("sample_owm.jsonl"),
        "general_web": general,
        "longest": longest,
    }
    manifest = json.loads((out / "manifest.json").read_text())
    return SimpleNamespace(
        out=out, overrides=overrides, expected=expected, first=first, manifest=manifest
    )


@pytest.fixture(scope="module")
def encoder():
    info = resolve_tokenizer(TokenizerConfig())
    return info, build_encoder(info.spec)


def test_every_document_reads_back_as_its_source_text(mixed, encoder):
    info, enc = encoder
    for name, texts in mixed.expected.items():
        dataset, docs = read_documents(mixed.out / "datasets" / f"{name}_text_document")
        assert dataset.index.dtype == np.uint16  # vocab 49152 < 65500, as Megatron chooses
        assert len(docs) == len(texts), name
        for doc, source_text in zip(docs, texts, strict=True):
            assert doc[-1] == info.eod
            assert info.eod not in doc[:-1]
            assert enc.decode(doc[:-1]) == source_text
        # one sequence per document, as preprocess_data.py writes without sentence splitting
        assert dataset.document_indices.tolist() == list(range(len(docs) + 1))


def test_manifest_counts_and_checksums_match_the_files(mixed):
    manifest = mixed.manifest
    assert set(manifest["sources"]) == set(mixed.expected)
    for name, src in manifest["sources"].items():
        prefix = mixed.out / "datasets" / f"{name}_text_document"
        dataset, _ = read_documents(prefix)
        assert src["documents"] == len(dataset) == len(mixed.expected[name])
        assert src["tokens"] == int(dataset.sequence_lengths.sum())
        assert src["bin_sha256"] == file_sha256(Path(f"{prefix}.bin"))
        assert src["idx_sha256"] == file_sha256(Path(f"{prefix}.idx"))
        assert src["epochs"] == pytest.approx(src["target_tokens"] / src["tokens"])
        assert src["this_session"] == "tokenized"
    assert manifest["tokens"] == sum(s["tokens"] for s in manifest["sources"].values())
    conv = manifest["sources"]["conversations"]
    assert conv["filtered"] == 2 * conv["documents"]  # the two other styles were read, not kept


def test_shares_follow_the_paper_ratios(mixed):
    sources = mixed.manifest["sources"]
    share = {n: s["share"] for n, s in sources.items()}
    math_share = share["conversations"] + share["raw_math"] + share["longest"]
    assert math_share == pytest.approx(2 / 3)  # math : general = 2 : 1 by tokens
    assert share["general_web"] == pytest.approx(1 / 3)
    assert share["conversations"] == pytest.approx(share["raw_math"]) == pytest.approx(2 / 9)
    # total_tokens=null: the scarcest source (relative to its share) is read exactly once
    epochs = {n: s["epochs"] for n, s in sources.items()}
    assert max(epochs.values()) == pytest.approx(1.0)
    total = min(s["tokens"] / s["share"] for s in sources.values())
    assert mixed.manifest["total_tokens"] == pytest.approx(total)
    for s in sources.values():
        assert s["target_tokens"] == pytest.approx(s["share"] * total)


def test_blend_files_in_megatron_lm_and_nemo_forms(mixed):
    from megatron.core.datasets.indexed_dataset import IndexedDataset
    from megatron.core.datasets.utils import get_blend_from_list

    blend = json.loads((mixed.out / "blend.json").read_text())
    data_args = (mixed.out / "data_args.txt").read_text().split()
    assert blend["nemo"]["paths"] == blend["megatron_lm"]["data_path"] == data_args
    assert blend["megatron_lm"]["args"].startswith("--data-path " + " ".join(data_args))
    prefixes, weights = get_blend_from_list(data_args)  # what Megatron-LM and NeMo both call
    sources = mixed.manifest["sources"]
    assert len(prefixes) == len(sources)
    for prefix, weight, (name, src) in zip(prefixes, weights, sources.items(), strict=True):
        assert Path(prefix) == (mixed.out / "datasets" / f"{name}_text_document").resolve()
        assert IndexedDataset.exists(prefix)
        assert weight == pytest.approx(src["share"], rel=1e-9)
    assert sum(weights) == pytest.approx(1.0)


def test_gpt_dataset_over_the_blend_draws_the_planned_shares(mixed, encoder, tmp_path):
    from megatron.core.datasets.blended_megatron_dataset_builder import (
        BlendedMegatronDatasetBuilder,
    )
    from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig
    from megatron.core.datasets.utils import get_blend_from_list

    info, _ = encoder
    seq, samples = 256, 400
    # GPTDataset needs only these of a Megatron tokenizer (ids are already in the .bin files)
    tokenizer = SimpleNamespace(
        eod=info.eod, vocab_size=info.vocab_size, pad=-1, unique_identifiers={"eod": info.eod}
    )
    config = GPTDatasetConfig(
        random_seed=1234,
        sequence_length=seq,
        blend=get_blend_from_list((mixed.out / "data_args.txt").read_text().split()),
        split="100,0,0",
        path_to_cache=str(tmp_path / "cache"),
        tokenizer=tokenizer,
        reset_position_ids=False,
        reset_attention_mask=False,
        eod_mask_loss=False,
    )
    import torch.distributed as dist

    # Megatron builds datasets inside a training job: one CPU (gloo) rank stands in for it
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            train, _, _ = BlendedMegatronDatasetBuilder(
                GPTDataset, [samples, 0, 0], lambda: True, config
            ).build()
    finally:
        dist.destroy_process_group()
    assert len(train) >= samples
    names = list(mixed.manifest["sources"])
    drawn = Counter(int(train[i]["dataset_id"]) for i in range(samples))
    documents = {
        name: {
            tuple(d) for d in read_documents(mixed.out / "datasets" / f"{name}_text_document")[1]
        }
        for name in names
    }
    for i, name in enumerate(names):
        share = mixed.manifest["sources"][name]["share"]
        assert abs(drawn[i] / samples - share) <= 2 / samples + 1e-9, (name, drawn)
    whole = 0
    for i in range(0, samples, 3):
        sample = train[i]
        window = [*sample["tokens"].tolist(), int(sample["labels"][-1])]
        assert len(window) == seq + 1
        assert max(window) < info.vocab_size
        ends = [j for j, t in enumerate(window) if t == info.eod]
        source_docs = documents[names[int(sample["dataset_id"])]]
        for a, b in itertools.pairwise(ends):  # whole documents inside the window
            assert (*window[a + 1 : b + 1],) in source_docs
            whole += 1
    assert whole > 20  # the check above really ran


def test_rerun_reuses_everything_and_upsamples_to_a_bigger_budget(mixed):
    total = mixed.manifest["total_tokens"]
    bins = {p: p.stat().st_mtime_ns for p in (mixed.out / "datasets").glob("*.bin")}
    result = run_stage("mix", *mixed.overrides, f"total_tokens={3 * total}", timeout=300, env=ENV)
    assert "reused" in result.stdout
    manifest = json.loads((mixed.out / "manifest.json").read_text())
    assert {p: p.stat().st_mtime_ns for p in bins} == bins  # nothing was rewritten
    for name, src in manifest["sources"].items():
        assert src["this_session"] == "reused"
        before = mixed.manifest["sources"][name]
        assert src["epochs"] == pytest.approx(3 * before["epochs"])  # upsampled 3x
        assert src["share"] == pytest.approx(before["share"])
    assert max(s["epochs"] for s in manifest["sources"].values()) == pytest.approx(3.0)
    assert manifest["train_samples"] == math.ceil(3 * total / 4096)


def test_a_ratio_that_cannot_be_met_is_one_line(mixed):
    result = run_stage("mix", *mixed.overrides, "total_tokens=1e12", check=False, env=ENV)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: source ")
    assert "max_epochs=10" in lines[0] and "repeated" in lines[0]
