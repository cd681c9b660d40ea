"""Scale-out: three array tasks plus a finalize step give byte-identical files to one process.

Every input kind is covered: a plain JSONL file cut into many byte-range units, a gzip JSONL
file, a Parquet file, a saved Hugging Face dataset cut into row ranges, and two styles of a
synthesize run. The runs are in-process (``workers=0``) so the test stays fast; the worker-pool
path is covered by the CLI test in test_mix.py.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

import mind_nemo.mix.run as run_module
import mind_nemo.mix.sources as sources_module
from mind_nemo.core.errors import UserError
from mind_nemo.mix.config import MixConfig, SourceConfig, TokenizerConfig
from mind_nemo.mix.run import MixRun
from tests.mix.helpers import make_hf_dataset, make_parquet, make_synthesize_run, text, write_jsonl


@pytest.fixture(scope="module")
def default_tokenizer():
    return run_module.resolve_tokenizer(TokenizerConfig())


@pytest.fixture(autouse=True)
def tokenizer_once(monkeypatch, default_tokenizer):
    """The runs here share one resolved tokenizer (loading it dominates a small in-process run)."""
    monkeypatch.setattr(run_module, "resolve_tokenizer", lambda cfg: default_tokenizer)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, SourceConfig]:
    root = tmp_path_factory.mktemp("shard_inputs")
    plain = write_jsonl(root / "plain.jsonl", [{"text": text("plain", i)} for i in range(40)])
    gz = root / "packed.jsonl.gz"
    with gzip.open(gz, "wt", encoding="utf-8") as f:
        for i in range(11):
            f.write(json.dumps({"text": text("gz", i)}) + "\n")
    parquet, _ = make_parquet(root / "general.parquet")
    hf, _ = make_hf_dataset(root / "hf")
    synth, _ = make_synthesize_run(root / "synth")
    return {
        "plain": SourceConfig(path=str(plain), group="math"),
        "packed": SourceConfig(path=str(gz), group="math"),
        "styles": SourceConfig(
            kind="conversations", path=str(synth), styles=["debate", "two_students"], group="math"
        ),
        "parquet": SourceConfig(path=str(parquet), group="general"),
        "hf": SourceConfig(path=str(hf), text_field="content", group="general", weight=2),
    }


def config(out: Path, sources: dict[str, SourceConfig], **overrides) -> MixConfig:
    settings = dict(
        name="shards",
        sources=sources,
        groups={"math": 2, "general": 1},
        output_dir=str(out),
        workers=0,
        progress=False,
        batch_bytes=1500,
        split_bytes=900,
    )
    return MixConfig(**{**settings, **overrides})


def dataset_bytes(run_dir: Path) -> dict[str, bytes]:
    files = sorted((run_dir / "datasets").glob("*_document.*"))
    return {p.name: p.read_bytes() for p in files if p.suffix in (".bin", ".idx")}


def test_array_tasks_then_finalize_equal_one_process(tmp_path, inputs, monkeypatch):
    monkeypatch.setattr(sources_module, "HF_ROWS_PER_UNIT", 3)  # several row-range units
    single = MixRun(config(tmp_path / "single", inputs))
    assert len(single.resolved["plain"].units) > 6 and len(single.resolved["hf"].units) == 3
    expected = single.run()

    sharded = tmp_path / "sharded"
    for shard_id in (0, 1):
        MixRun(config(sharded, inputs, num_shards=3, shard_id=shard_id)).run()
    with pytest.raises(UserError, match=r"2 of 3|1 of 3") as err:
        MixRun(config(sharded, inputs, num_shards=3, step="finalize")).run()
    assert "shard-00002-of-00003" in str(err.value)
    assert not (sharded / "datasets").exists() or not list((sharded / "datasets").glob("*.bin"))

    MixRun(config(sharded, inputs, num_shards=3, shard_id=2)).run()
    merged = MixRun(config(sharded, inputs, num_shards=3, step="finalize")).run()

    assert dataset_bytes(sharded) == dataset_bytes(tmp_path / "single")
    assert len(dataset_bytes(sharded)) == 2 * len(inputs)
    assert not list((sharded / "shards").rglob("*.bin"))  # parts are gone once merged
    for name, src in expected["sources"].items():
        got = merged["sources"][name]
        for key in ("documents", "tokens", "share", "epochs", "bin_sha256", "skipped"):
            assert got[key] == src[key], (name, key)
        assert got["shards"] == 3 and got["this_session"] == "merged"
    assert (
        json.loads((sharded / "blend.json").read_text())["weights"] == expected["blend"]["weights"]
    )

    again = MixRun(config(sharded, inputs, num_shards=3, step="finalize")).run()
    assert {s["this_session"] for s in again["sources"].values()} == {"reused"}


def test_a_shard_reuses_a_source_already_merged(tmp_path, inputs):
    one = {"plain": inputs["plain"], "parquet": inputs["parquet"]}
    run_dir = tmp_path / "run"
    for shard_id in range(2):
        MixRun(config(run_dir, one, num_shards=2, shard_id=shard_id)).run()
    MixRun(config(run_dir, one, num_shards=2, step="finalize")).run()
    rerun = MixRun(config(run_dir, one, num_shards=2, shard_id=0))
    rerun.run()
    assert set(rerun.session.values()) == {"reused"}
    assert not list((run_dir / "shards").rglob("*.bin"))


def test_changed_input_is_redone(tmp_path, inputs):
    plain = tmp_path / "plain.jsonl"
    shutil.copy(inputs["plain"].path, plain)
    source = {"plain": SourceConfig(path=str(plain))}
    first = MixRun(config(tmp_path / "run", source, groups={})).run()
    with open(plain, "a") as f:
        f.write(json.dumps({"text": "one more document"}) + "\n")
    second = MixRun(config(tmp_path / "run", source, groups={})).run()
    assert second["sources"]["plain"]["this_session"] == "tokenized"
    assert second["sources"]["plain"]["documents"] == first["sources"]["plain"]["documents"] + 1


def test_slurm_array_variables_pick_the_shard(tmp_path, inputs, monkeypatch):
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "2")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    run = MixRun(config(tmp_path / "run", {"plain": inputs["plain"]}, groups={}))
    assert (run.step, run.shard_id, run.num_shards) == ("shard", 1, 2)
    result = run.run()
    assert result["status"] == "shard_complete"
    parts = sorted(p.name for p in (tmp_path / "run" / "shards" / "plain").glob("*.bin"))
    assert parts == ["shard-00001-of-00002_text_document.bin"]
    assert not (tmp_path / "run" / "manifest.json").exists()  # the blend waits for finalize
