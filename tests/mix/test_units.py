"""The mix's parts one by one: units, the writer, crash safety, ratio math, configs, errors."""

from __future__ import annotations

import json
import random
import re

import numpy as np
import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from mind_nemo.core.corpus import Source
from mind_nemo.core.errors import UserError
from mind_nemo.mix.blend import plan_mix
from mind_nemo.mix.config import MixConfig, SourceConfig, source_configs
from mind_nemo.mix.readers import Unit, read_unit
from mind_nemo.mix.run import MixRun
from mind_nemo.mix.sources import shard_units
from mind_nemo.mix.worker import flatten, parse_jsonl_block
from mind_nemo.mix.writer import DatasetWriter, megatron_indexed_dataset
from tests.helpers import REPO, run_stage
from tests.mix.helpers import make_synthesize_run, write_jsonl

CONFIGS = REPO / "hydra_configs"

# --------------------------------------------------------------------------- units


@pytest.mark.parametrize("split", [1, 7, 64, 333, 10_000])
@pytest.mark.parametrize("trailing_newline", [True, False])
def test_byte_ranges_own_every_line_exactly_once(tmp_path, split, trailing_newline):
    rng = random.Random(split)
    lines = [json.dumps({"text": "é" * rng.randint(0, 90) + str(i)}) for i in range(60)]
    lines[5] = ""  # a blank line is skipped, not an error
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join(lines) + ("\n" if trailing_newline else ""), encoding="utf-8")
    size = path.stat().st_size
    source = Source("jsonl", str(path), "c.jsonl")
    units = [Unit(source, s, min(s + split, size)) for s in range(0, size, split)]
    texts: list[str] = []
    for unit in units:
        for chunk in read_unit(unit, SourceConfig(path=str(path)), batch_bytes=50):
            texts += parse_jsonl_block(chunk.task[1], "text", ())[0]
    assert texts == [json.loads(line)["text"] for line in lines if line]


def test_shards_own_contiguous_units_covering_all():
    units = list(range(17))
    for shards in (1, 2, 3, 16, 17, 40):
        parts = [shard_units(units, i, shards) for i in range(shards)]
        assert [u for part in parts for u in part] == units


def test_bad_rows_are_counted_by_reason_and_styles_filtered():
    rows = [
        {"text": "kept", "conversational_style": "debate"},
        {"text": "other style", "conversational_style": "interview"},
        {"text": "", "conversational_style": "debate"},
        {"text": 3, "conversational_style": "debate"},
        {"conversational_style": "debate"},
        [1, 2],
    ]
    block = "\n".join(json.dumps(r) for r in rows).encode() + b'\n{not json\n{"text": "\xc3\x28"}\n'
    texts, skipped, filtered = parse_jsonl_block(block, "text", ("debate",))
    assert texts == ["kept"] and filtered == 1
    assert dict(skipped) == {
        "empty_text": 1,
        "non_string_text": 1,
        "missing_text": 1,
        "not_an_object": 1,
        "invalid_json": 1,
        "invalid_utf8": 1,
    }


# --------------------------------------------------------------------------- writer


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # megatron's numpy.array(tensor)
def test_batched_writes_equal_megatron_per_document_add_document(tmp_path):
    import torch

    rng = np.random.default_rng(0)
    docs = [rng.integers(0, 49152, rng.integers(1, 300)).tolist() for _ in range(50)]
    reference = megatron_indexed_dataset().IndexedDatasetBuilder(
        str(tmp_path / "ref.bin"), dtype=np.uint16
    )
    for doc in docs:  # exactly what tools/preprocess_data.py does per document
        reference.add_document(torch.tensor(doc), [len(doc)])
    reference.finalize(str(tmp_path / "ref.idx"))

    writer = DatasetWriter(tmp_path / "ours", np.dtype(np.uint16))
    for start in range(0, 50, 13):
        tokens, lengths = flatten(docs[start : start + 13], None, np.dtype(np.uint16))
        writer.add_batch(tokens, lengths)
    record = writer.commit()
    assert (tmp_path / "ours.bin").read_bytes() == (tmp_path / "ref.bin").read_bytes()
    assert (tmp_path / "ours.idx").read_bytes() == (tmp_path / "ref.idx").read_bytes()
    assert record["documents"] == 50 and record["tokens"] == sum(map(len, docs))


def test_flatten_appends_eod_after_every_document():
    tokens, lengths = flatten([[5, 6], [7], [8, 9, 10]], 0, np.dtype(np.int32))
    assert tokens.tolist() == [5, 6, 0, 7, 0, 8, 9, 10, 0] and lengths.tolist() == [3, 2, 4]


def test_an_interrupted_source_leaves_nothing_that_looks_done(tmp_path):
    good = write_jsonl(tmp_path / "in" / "a.jsonl", [{"text": f"doc {i}"} for i in range(30)])
    (tmp_path / "in" / "b.jsonl.gz").write_bytes(b"\x1f\x8b\x08\x00 this is not gzip data")
    cfg = MixConfig(
        name="crash",
        sources={"data": {"path": str(good.parent)}},
        output_dir=str(tmp_path / "run"),
        workers=0,
        progress=False,
        batch_bytes=64,
    )
    with pytest.raises(UserError, match="cannot read"):
        MixRun(cfg).run()
    assert sorted(p.name for p in (tmp_path / "run" / "datasets").iterdir()) == []
    (tmp_path / "in" / "b.jsonl.gz").unlink()
    manifest = MixRun(cfg).run()  # the rerun starts the source over and finishes it
    assert manifest["sources"]["data"]["documents"] == 30


# --------------------------------------------------------------------------- ratio math


def sources(**groups: str) -> dict[str, SourceConfig]:
    return {name: SourceConfig(path="x", group=group) for name, group in groups.items()}


def counts(**tokens: float) -> dict[str, dict]:
    return {n: {"tokens": int(t), "documents": 1, "prefix": n} for n, t in tokens.items()}


def test_the_papers_50b_mix_2_to_1_with_raw_1_to_1():
    plan = plan_mix(
        sources(longest="math", raw="math", general="general"),
        {"math": 2, "general": 1},
        counts(longest=4.1e9, raw=4.0e9, general=40e9),
        total_tokens=50e9,
        max_epochs=20,
        seq_length=4096,
    )
    rows = {r.name: r for r in plan.rows}
    assert rows["longest"].target_tokens + rows["raw"].target_tokens == pytest.approx(50e9 * 2 / 3)
    assert rows["general"].target_tokens == pytest.approx(50e9 / 3)
    assert rows["longest"].target_tokens == pytest.approx(rows["raw"].target_tokens)
    assert rows["longest"].epochs == pytest.approx(50e9 / 3 / 4.1e9)  # upsampled ~4x
    assert rows["general"].epochs == pytest.approx(50e9 / 3 / 40e9)  # under one epoch
    assert plan.train_samples == 12_207_032  # ceil(50e9 / 4096) for --train-samples


def test_without_groups_weights_are_the_ratio_and_null_total_repeats_nothing():
    srcs = {"a": SourceConfig(path="x", weight=3), "b": SourceConfig(path="x", weight=1)}
    plan = plan_mix(srcs, {}, counts(a=600, b=100), None, 10, 8)
    rows = {r.name: r for r in plan.rows}
    assert (rows["a"].share, rows["b"].share) == (0.75, 0.25)
    assert plan.total_tokens == pytest.approx(400)  # b (100 tokens) limits: 100 / 0.25
    assert (rows["a"].epochs, rows["b"].epochs) == (pytest.approx(0.5), pytest.approx(1.0))


@pytest.mark.parametrize(
    ("groups", "srcs", "tokens", "total", "message"),
    [
        (
            {"math": 2, "general": 1},
            sources(a="math"),
            counts(a=10),
            None,
            "group 'general' (weight 1) has no enabled source",
        ),
        (
            {"math": 1},
            sources(a="maths"),
            counts(a=10),
            None,
            "sources.a.group='maths' is not one of the groups (math)",
        ),
        ({"math": 0}, sources(a="math"), counts(a=10), None, "groups.math=0 must be > 0"),
        ({}, sources(a=None), counts(a=10), 1e6, "would be repeated 100000.0 times"),
        ({}, sources(a=None), counts(a=0), None, "source 'a' is empty"),
        ({}, {}, {}, None, "no enabled source"),
    ],
)
def test_ratios_that_cannot_be_met(groups, srcs, tokens, total, message):
    with pytest.raises(UserError, match=re.escape(message)):
        plan_mix(srcs, groups, tokens, total, 10, 8)


# --------------------------------------------------------------------------- configs


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONFIGS / "mix").glob("*.yaml")))
def test_every_mix_config_instantiates(name):
    GlobalHydra.instance().clear()
    with initialize_config_module("mind_nemo.hydra_configs", version_base="1.3"):
        cfg = compose(config_name="mix", overrides=[f"mix={name}"])
    mix = OmegaConf.to_object(cfg)
    assert isinstance(mix, MixConfig) and mix.name == name
    assert mix.output_dir == f"runs/mix/{name}"
    parsed = source_configs(mix.sources)
    assert parsed and all(isinstance(s, SourceConfig) for s in parsed.values())
    groups = {s.group for s in parsed.values() if s.enabled}
    assert not mix.groups or groups == set(mix.groups)  # every group has a source
    if name == "mind_owm4b_longest":
        assert mix.total_tokens == 50e9 and mix.groups == {"math": 2.0, "general": 1.0}


# --------------------------------------------------------------------------- CLI errors


def mix_error(capsys, *overrides: str) -> str:
    """Run the mix entry point in-process as the CLI would; return its one stderr line."""
    from mind_nemo.mix.__main__ import run_mix

    GlobalHydra.instance().clear()
    with initialize_config_module("mind_nemo.hydra_configs", version_base="1.3"):
        cfg = compose(config_name="mix", overrides=list(overrides))
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_mix(cfg)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert exit_info.value.code == 2, lines
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def test_bad_input_ends_with_one_clear_line(tmp_path, capsys):
    synth, _ = make_synthesize_run(tmp_path / "synth")
    out, quiet = f"output_dir={tmp_path / 'run'}", "progress=false"
    cases = [
        (
            ["sources.raw_math.path=/no/such/corpus.jsonl"],
            "source 'raw_math': corpus path not found: /no/such/corpus.jsonl",
        ),
        (["tokenizer.name=/no/such/tokenizer"], "tokenizer not found: /no/such/tokenizer"),
        (
            [
                "mix=quickstart_conversations",
                f"sources.conversations.path={synth}",
                "sources.conversations.styles=[interview]",
            ],
            "source 'conversations' is empty: no documents",
        ),
        (
            ["mix=quickstart_conversations", f"sources.conversations.path={tmp_path}"],
            "has no conversations/ folder",
        ),
        (["+sources.extra.pth=/x"], "sources.extra: Key 'pth' not in 'SourceConfig'"),
        (["+groups.maths=1"], "group 'maths' (weight 1) has no enabled source"),
        (["total_tokens=-5"], "total_tokens=-5.0: must be > 0"),
    ]
    for overrides, expected in cases:
        assert expected in mix_error(capsys, *overrides, out, quiet), overrides
    assert not list((tmp_path / "run").glob("datasets/*.bin"))


def test_cli_errors_are_one_line_with_exit_2(tmp_path):
    cases = [
        (
            ["tokenizer.name=no-such-org/no-such-tokenizer"],  # a Hub name, offline
            "cannot load tokenizer 'no-such-org/no-such-tokenizer'",
        ),
        (["workers=many"], "workers"),  # Hydra's own type check, squeezed to one line
    ]
    for overrides, expected in cases:
        result = run_stage("mix", *overrides, f"output_dir={tmp_path}", check=False, timeout=300)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
        assert lines[0].startswith("error: ") and expected in lines[0], lines[0]


def test_help_names_the_main_overrides():
    result = run_stage("mix", "--help", timeout=120)
    for needle in ("mix=NAME", "total_tokens=50e9", "tokenizer.name=", "step=finalize"):
        assert needle in result.stdout
