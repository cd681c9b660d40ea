"""The merge's export as Hugging Face ``datasets`` reads it: the card's configs pick one style,
the default loads all, ``export.schema=nemotron_mind`` writes the released columns and folders,
and those files load together with a folder laid out like the release.

Everything is checked with the real ``datasets`` library, offline (a local folder needs no Hub).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from mind_nemo.core.released import RELEASED_COLUMNS, RELEASED_STYLES
from mind_nemo.synthesize.card import MAX_LISTED, card_text, sampling_label
from mind_nemo.synthesize.config import ExportConfig, MergeConfig
from mind_nemo.synthesize.export import PROVENANCE
from mind_nemo.synthesize.merge import merge_run
from tests.helpers import run_stage
from tests.synthesize.test_merge import make_run

STYLES = ("debate", "interview", "two_students")
OURS = [*RELEASED_COLUMNS, *(name for name, _ in PROVENANCE)]
RELEASED = list(RELEASED_COLUMNS.values())


@pytest.fixture
def hf(tmp_path, monkeypatch):
    """The real ``datasets`` module, offline, with a cache of its own."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    cache = str(tmp_path / "hf-cache")

    def load(path: Path, name: str | None = None) -> datasets.Dataset:
        return datasets.load_dataset(str(path), name, split="train", cache_dir=cache)

    return datasets, load


def merged(root: Path, schema: str = "mind_nemo", model: str = "embedded") -> Path:
    """A two-shard run (3 + 2 documents, one context each, every style) merged; its export."""
    run = make_run(root, [3, 2], model=model, styles=STYLES)
    merge_run(MergeConfig(run_dir=str(run), export=ExportConfig(schema=schema)))
    return run / "export"


def front_matter(export: Path) -> dict:
    text = (export / "README.md").read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_card_declares_a_config_per_style_and_the_schema(tmp_path):
    export = merged(tmp_path / "run")
    meta = front_matter(export)
    configs = {c["config_name"]: c for c in meta["configs"]}
    assert list(configs) == ["all", *STYLES]
    assert configs["all"]["default"] is True
    assert configs["all"]["data_files"] == [{"split": "train", "path": "*/*.parquet"}]
    for style in STYLES:
        assert configs[style]["data_files"] == [{"split": "train", "path": f"{style}/*.parquet"}]
        assert "default" not in configs[style]
    file_schema = pq.read_schema(next((export / "debate").glob("*.parquet")))
    for info in meta["dataset_info"]:
        names = [(f["name"], f["dtype"]) for f in info["features"]]
        assert names == [(f.name, str(f.type)) for f in file_schema]
    body = (export / "README.md").read_text().split("---\n", 2)[2]
    for style in STYLES:
        assert f"| `{style}` | 5 |" in body
    assert "15 rows in all" in body
    assert "`embedded`" in body and '"temperature": 1.0' in body
    assert "mechanics, not the quality" in body


def test_the_sampling_line_names_shared_settings_once_and_counts_the_rest():
    per_request = [{"temperature": 1.0, "top_p": 0.9, "max_tokens": n} for n in (100, 200)]
    assert {sampling_label(s) for s in per_request} == {'{"temperature": 1.0, "top_p": 0.9}'}
    models = {f"model-{i}" for i in range(MAX_LISTED + 3)}
    text = card_text("mind_nemo", {"debate": 1}, models, set(), "run")
    assert "`model-0`" in text and "and 3 more" in text and "Sampling: none recorded" in text


def test_the_small_model_line_is_only_there_for_the_embedded_model(tmp_path):
    export = merged(tmp_path / "run", model="Qwen/Qwen2.5-72B-Instruct")
    text = (export / "README.md").read_text()
    assert "`Qwen/Qwen2.5-72B-Instruct`" in text
    assert "mechanics" not in text


def test_load_dataset_picks_one_style_and_the_default_loads_all(tmp_path, hf):
    datasets, load = hf
    export = merged(tmp_path / "run")
    assert datasets.get_dataset_config_names(str(export)) == ["all", *STYLES]
    debate = load(export, "debate")
    assert debate.num_rows == 5
    assert set(debate["conversational_style"]) == {"debate"}
    assert debate.column_names == OURS
    everything = load(export)
    assert everything.num_rows == 15
    assert sorted(set(everything["conversational_style"])) == list(STYLES)
    assert everything.column_names == OURS
    # The card's features are what the files hold: the builder announces them before reading.
    builder = datasets.load_dataset_builder(str(export), "interview", cache_dir=str(tmp_path))
    assert builder.info.features == debate.features


def test_nemotron_mind_schema_writes_the_released_columns_and_folders(tmp_path, hf):
    datasets, load = hf
    export = merged(tmp_path / "run", schema="nemotron_mind")
    folders = sorted(p.name for p in export.iterdir() if p.is_dir())
    assert folders == sorted(RELEASED_STYLES[s] for s in STYLES)
    assert folders == ["DEBATE", "INTERVIEW", "TWO_STUDENTS"]
    for folder in folders:
        for part in (export / folder).glob("*.parquet"):
            table = pq.read_table(part)
            assert table.column_names == RELEASED
            assert set(table.column("Conversational Style").to_pylist()) == {folder}
    assert datasets.get_dataset_config_names(str(export)) == ["all", *folders]
    two = load(export, "TWO_STUDENTS")
    assert two.num_rows == 5 and two.column_names == RELEASED
    assert sorted(two["Document ID"]) == sorted(f"doc-{s}-{d}" for s, n in ((0, 3), (1, 2))
                                                 for d in range(n))  # fmt: skip
    assert load(export).num_rows == 15
    card = (export / "README.md").read_text()
    assert "provenance columns are left out" in card and "TWO_STUDENTS" in card


def released_folder(root: Path) -> Path:
    """A folder laid out like the Nemotron-MIND download: one style, the release's columns."""
    folder = root / "TWO_STUDENTS"
    folder.mkdir(parents=True)
    rows = {
        "Text": ["Student A: what is 2+2?\nStudent B: it is 4."],
        "Conversational Style": ["TWO_STUDENTS"],
        "Document ID": ["owm-123"],
    }
    pq.write_table(pa.table(rows), folder / "train-00000.parquet")
    return root


def test_our_nemotron_mind_export_mixes_with_the_release_in_one_schema(tmp_path, hf):
    datasets, _ = hf
    ours = merged(tmp_path / "run", schema="nemotron_mind")
    release = released_folder(tmp_path / "release")
    ours_files = sorted(str(p) for p in ours.glob("*/*.parquet"))
    release_files = sorted(str(p) for p in release.glob("*/*.parquet"))
    assert pq.read_schema(ours_files[0]) == pq.read_schema(release_files[0])
    mixed = datasets.load_dataset(
        "parquet", data_files=ours_files + release_files, split="train",
        cache_dir=str(tmp_path / "c"),
    )  # fmt: skip
    assert mixed.column_names == RELEASED and mixed.num_rows == 16
    assert "owm-123" in mixed["Document ID"]
    # The default schema is ours: beside the release its columns would be disjoint.
    default = merged(tmp_path / "run2")
    default_schema = pq.read_schema(next(default.glob("*/*.parquet")))
    assert not set(default_schema.names) & set(RELEASED)


def test_schema_is_chosen_on_the_command_line(tmp_path):
    run = make_run(tmp_path / "run", [2], model="embedded", styles=STYLES)
    result = run_stage("merge", f"run_dir={run}", "export.schema=nemotron_mind", timeout=180)
    assert "export (nemotron_mind): 4 files" in result.stdout  # 3 style parts + the card
    assert sorted(p.name for p in (run / "export").iterdir()) == [
        "DEBATE", "INTERVIEW", "README.md", "TWO_STUDENTS",
    ]  # fmt: skip
    bad = run_stage("merge", f"run_dir={run}", "export.schema=released", check=False, timeout=180)
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        "error: export.schema='released': must be one of: mind_nemo, nemotron_mind"
    )
