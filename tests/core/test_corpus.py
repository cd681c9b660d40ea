"""Tests for mind_nemo.core.corpus: every input format, bad rows, ids, limits, errors and streaming.

Fixtures are written on the fly under ``tmp_path``; nothing here needs network access.
"""

from __future__ import annotations

import datetime
import decimal
import gzip
import io
import itertools
import json
import logging
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from mind_nemo.core import corpus
from mind_nemo.core.corpus import CorpusConfig, CorpusReader, iter_documents, sample_corpus_path
from mind_nemo.core.errors import UserError
from mind_nemo.core.records import Document, text_hash
from tests.helpers import REPO

REPO_ROOT = REPO


def _rows(prefix: str, n: int) -> list[dict[str, Any]]:
    """``n`` OpenWebMath-like rows whose texts start with ``prefix``."""
    return [
        {
            "text": f"{prefix} {i}: $x^{i}$",
            "url": f"https://example.org/{prefix}/{i}",
            "date": "2023-01-01",
            "metadata": {"score": i / 10, "tags": ["math"]},
        }
        for i in range(n)
    ]


def _jsonl_bytes(rows: list[Any]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode("utf-8")


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    """Write rows as JSON lines, compressed according to the name (.gz / .zst)."""
    data = _jsonl_bytes(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".gz"):
        with gzip.open(path, "wb") as fh:
            fh.write(data)
    elif path.name.endswith(".zst"):
        path.write_bytes(zstandard.ZstdCompressor().compress(data))
    else:
        path.write_bytes(data)
    return path


def write_parquet(path: Path, rows: list[dict[str, Any]], row_group_size: int = 1000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=row_group_size)
    return path


def read(path: Path | str, **kwargs: Any) -> list[Document]:
    return list(iter_documents(CorpusConfig(path=str(path), **kwargs)))


def texts(docs: list[Document]) -> list[str]:
    return [d.text for d in docs]


# --------------------------------------------------------------------------- formats


def test_jsonl_reads_text_metadata_and_derived_ids(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", _rows("a", 3))
    docs = read(path)
    assert texts(docs) == ["a 0: $x^0$", "a 1: $x^1$", "a 2: $x^2$"]
    assert docs[1].metadata == {
        "url": "https://example.org/a/1",
        "date": "2023-01-01",
        "metadata": {"score": 0.1, "tags": ["math"]},
    }
    assert [d.id for d in docs] == [text_hash(f"{path}:{n}") for n in (1, 2, 3)]
    assert len({d.id for d in docs}) == 3


@pytest.mark.parametrize("name", ["a.jsonl.gz", "a.jsonl.zst", "a.json", "a.ndjson"])
def test_compressed_and_alternative_jsonl_names(tmp_path: Path, name: str) -> None:
    rows = _rows("c", 4)
    docs = read(write_jsonl(tmp_path / name, rows))
    assert texts(docs) == [r["text"] for r in rows]
    assert docs[0].metadata["url"] == rows[0]["url"]


def test_zstd_file_with_several_frames_is_read_to_the_end(tmp_path: Path) -> None:
    path = tmp_path / "multi.jsonl.zst"
    cctx = zstandard.ZstdCompressor()
    path.write_bytes(
        cctx.compress(_jsonl_bytes(_rows("f1", 2))) + cctx.compress(_jsonl_bytes(_rows("f2", 2)))
    )
    assert texts(read(path)) == [r["text"] for r in _rows("f1", 2) + _rows("f2", 2)]


def test_parquet_streams_batches_and_makes_metadata_json_serialisable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(corpus, "BATCH_ROWS", 2)
    rows = [
        {
            "text": f"p {i}",
            "url": f"u{i}",
            "date": datetime.datetime(2023, 1, i + 1, 12, 0),
            "price": decimal.Decimal("1.50"),
            "blob": b"raw",
            "metadata": {"score": float(i)},
        }
        for i in range(5)
    ]
    path = write_parquet(tmp_path / "p.parquet", rows, row_group_size=3)
    docs = read(path)
    assert texts(docs) == [f"p {i}" for i in range(5)]
    assert docs[0].metadata == {
        "url": "u0",
        "date": "2023-01-01T12:00:00",
        "price": "1.50",
        "blob": "raw",
        "metadata": {"score": 0.0},
    }
    json.dumps([d.metadata for d in docs])
    assert [d.id for d in docs] == [text_hash(f"{path}:{n}") for n in range(1, 6)]


def test_directory_mixing_formats_is_read_recursively_in_path_order(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    write_jsonl(root / "b.jsonl", _rows("b", 2))
    write_jsonl(root / "a" / "x.jsonl.gz", _rows("gz", 2))
    write_jsonl(root / "a" / "y.jsonl.zst", _rows("zst", 1))
    write_parquet(root / "c" / "part-0.parquet", _rows("pq", 2))
    (root / "README.md").write_text("not data")
    write_jsonl(root / ".cache" / "hidden.jsonl", _rows("hidden", 1))
    write_jsonl(root / ".hidden.jsonl", _rows("hidden", 1))
    reader = CorpusReader(CorpusConfig(path=str(root)))
    assert [Path(s.path).name for s in reader.sources] == [
        "x.jsonl.gz",
        "y.jsonl.zst",
        "b.jsonl",
        "part-0.parquet",
    ]
    docs = list(reader)
    prefixes = [t.split()[0] for t in texts(docs)]
    assert prefixes == ["gz", "gz", "zst", "b", "b", "pq", "pq"]
    assert reader.read == 7 and not reader.skipped


def test_directory_with_explicit_format_reads_only_that_format(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", _rows("j", 2))
    write_parquet(tmp_path / "b.parquet", _rows("pq", 3))
    assert len(read(tmp_path, format="parquet")) == 3
    assert len(read(tmp_path, format="jsonl")) == 2


def test_glob_patterns_are_sorted_and_may_recurse(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "shard-2.jsonl", _rows("two", 1))
    write_jsonl(tmp_path / "shard-1.jsonl", _rows("one", 1))
    write_jsonl(tmp_path / "other.jsonl", _rows("other", 1))
    write_jsonl(tmp_path / "deep" / "shard-3.jsonl.gz", _rows("three", 1))
    assert texts(read(tmp_path / "shard-*.jsonl")) == ["one 0: $x^0$", "two 0: $x^0$"]
    deep = read(f"{tmp_path}/**/shard-*")
    assert [t.split()[0] for t in texts(deep)] == ["three", "one", "two"]


def test_saved_hf_dataset_directory(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    rows = _rows("hf", 3)
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "saved"))
    docs = read(tmp_path / "saved")
    assert texts(docs) == [r["text"] for r in rows]
    assert docs[2].metadata["metadata"] == {"score": 0.2, "tags": ["math"]}
    assert docs[0].id == text_hash(f"{tmp_path / 'saved'}:1")
    assert texts(read(tmp_path / "saved", format="hf")) == texts(docs)
    # Inside a larger directory it is one source, its JSON files are not read as data.
    write_jsonl(tmp_path / "z.jsonl", _rows("z", 1))
    reader = CorpusReader(CorpusConfig(path=str(tmp_path)))
    assert [s.kind for s in reader.sources] == ["hf_disk", "jsonl"]
    assert len(list(reader)) == 4 and not reader.skipped


def test_saved_hf_dataset_dict_picks_the_split(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    saved = tmp_path / "dict"
    datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_list(_rows("train", 3)),
            "validation": datasets.Dataset.from_list(_rows("valid", 2)),
        }
    ).save_to_disk(str(saved))
    assert [t.split()[0] for t in texts(read(saved))] == ["train"] * 3
    valid = read(saved, hf_split="validation")
    assert [t.split()[0] for t in texts(valid)] == ["valid"] * 2
    assert valid[0].id != read(saved)[0].id
    with pytest.raises(UserError, match="no split 'test'.*train, validation"):
        read(saved, hf_split="test")


def test_saved_hf_dataset_missing_text_column_is_a_user_error(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_list([{"content": "x"}]).save_to_disk(str(tmp_path / "saved"))
    with pytest.raises(UserError, match="no column 'text'.*content"):
        read(tmp_path / "saved")


def test_hub_dataset_failure_is_one_clear_line(tmp_path: Path) -> None:
    pytest.importorskip("datasets")
    code = (
        "from mind_nemo.core.corpus import CorpusConfig\n"
        "from mind_nemo.core.corpus import iter_documents\n"
        "from mind_nemo.core.errors import UserError\n"
        "try:\n"
        "    list(iter_documents(CorpusConfig(path='nobody/no-such-dataset', format='hf')))\n"
        "except UserError as err:\n"
        "    print('USERERROR', err)\n"
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
        "PYTHONPATH": str(REPO_ROOT),
    }
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if line.startswith("USERERROR")]
    assert len(lines) == 1
    assert "nobody/no-such-dataset" in lines[0]
    assert "\n" not in lines[0]


# --------------------------------------------------------------------------- fields and ids


def test_configurable_text_and_id_fields(tmp_path: Path) -> None:
    rows = [{"doc_id": 7, "content": "seven", "url": "u7"}, {"doc_id": "x8", "content": "eight"}]
    docs = read(write_jsonl(tmp_path / "a.jsonl", rows), text_field="content", id_field="doc_id")
    assert [(d.id, d.text) for d in docs] == [("7", "seven"), ("x8", "eight")]
    assert docs[0].metadata == {"url": "u7"}
    pq_docs = read(
        write_parquet(tmp_path / "a.parquet", rows[:1]), text_field="content", id_field="doc_id"
    )
    assert [(d.id, d.text) for d in pq_docs] == [("7", "seven")]


def test_rows_without_id_are_skipped_when_id_field_is_set(tmp_path: Path) -> None:
    rows = [{"id": "a", "text": "A"}, {"text": "no id"}, {"id": None, "text": "null id"}]
    reader = CorpusReader(
        CorpusConfig(path=str(write_jsonl(tmp_path / "a.jsonl", rows)), id_field="id")
    )
    assert [d.id for d in reader] == ["a"]
    assert reader.skipped == {"missing_id": 2}


def test_derived_ids_are_stable_across_reads_and_distinct_across_files(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", _rows("same", 3))
    write_jsonl(tmp_path / "b.jsonl", _rows("same", 3))
    first = [d.id for d in read(tmp_path)]
    second = [d.id for d in read(tmp_path)]
    assert first == second
    assert len(set(first)) == 6
    # A document keeps its id when a bad line before it is fixed or broken (row = line number).
    lines = (tmp_path / "a.jsonl").read_text().splitlines()
    lines[0] = "{broken"
    (tmp_path / "a.jsonl").write_text("\n".join(lines) + "\n")
    assert [d.id for d in read(tmp_path / "a.jsonl")] == first[1:3]


# --------------------------------------------------------------------------- bad rows


def _bad_file(path: Path) -> Path:
    lines = [
        json.dumps({"text": "good one"}),
        "{not json",
        json.dumps({"url": "no text"}),
        json.dumps({"text": ""}),
        json.dumps({"text": "   \n"}),
        json.dumps({"text": 42}),
        json.dumps(["a", "list"]),
        "",
        json.dumps({"text": "good two"}),
    ]
    data = ("\n".join(lines) + "\n").encode() + b'{"text": "\xff\xfe"}\n'
    path.write_bytes(data)
    return path


def test_bad_rows_are_skipped_counted_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reader = CorpusReader(CorpusConfig(path=str(_bad_file(tmp_path / "bad.jsonl"))))
    with caplog.at_level(logging.WARNING, logger="mind_nemo.core.corpus"):
        docs = list(reader)
    assert texts(docs) == ["good one", "good two"]
    assert reader.read == 2
    assert reader.skipped == {
        "invalid_json": 1,
        "missing_text": 1,
        "empty_text": 2,
        "non_string_text": 1,
        "not_an_object": 1,
        "invalid_utf8": 1,
    }
    assert f"{tmp_path / 'bad.jsonl'} row 2: invalid_json" in caplog.text
    assert "skipped 7 bad rows" in caplog.records[-1].getMessage()


def test_skip_logging_is_rate_limited(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "junk.jsonl"
    path.write_text("{bad\n" * 25 + json.dumps({"text": "ok"}) + "\n")
    reader = CorpusReader(CorpusConfig(path=str(path)))
    with caplog.at_level(logging.WARNING, logger="mind_nemo.core.corpus"):
        assert texts(list(reader)) == ["ok"]
    messages = [r.getMessage() for r in caplog.records]
    assert sum(": invalid_json" in m for m in messages) == corpus.MAX_LOGGED_SKIPS
    assert len(messages) == corpus.MAX_LOGGED_SKIPS + 2  # + "not logged" notice + summary
    assert "skipped 25 bad rows (invalid_json=25)" in messages[-1]
    assert reader.skipped == {"invalid_json": 25}


# --------------------------------------------------------------------------- limits


def test_limit_documents(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", _rows("a", 3))
    write_jsonl(tmp_path / "b.jsonl", _rows("b", 3))
    reader = CorpusReader(CorpusConfig(path=str(tmp_path), limit_documents=4))
    assert [t.split()[0] for t in texts(list(reader))] == ["a", "a", "a", "b"]
    assert reader.read == 4
    assert read(tmp_path, limit_documents=0) == []
    with pytest.raises(UserError, match="limit_documents"):
        read(tmp_path, limit_documents=-1)


def test_limit_counts_documents_not_skipped_rows(tmp_path: Path) -> None:
    docs = read(_bad_file(tmp_path / "bad.jsonl"), limit_documents=2)
    assert texts(docs) == ["good one", "good two"]


# --------------------------------------------------------------------------- user errors


def test_missing_path_fails_when_the_iterator_is_created(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="corpus path not found"):
        iter_documents(CorpusConfig(path=str(tmp_path / "nope.jsonl")))


def test_glob_matching_nothing(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="glob matches nothing"):
        read(tmp_path / "*.jsonl")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(UserError, match="no readable data files"):
        read(tmp_path / "*")


def test_directory_without_data_files(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("x")
    with pytest.raises(UserError, match="no readable data files in directory"):
        read(tmp_path)
    write_jsonl(tmp_path / "a.jsonl", _rows("a", 1))
    with pytest.raises(UserError, match="no readable data files"):
        read(tmp_path, format="parquet")


def test_unknown_format(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", _rows("a", 1))
    with pytest.raises(UserError, match="unknown corpus.format 'csv'"):
        read(tmp_path / "a.jsonl", format="csv")


def test_unrecognised_file_name_needs_a_format(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.txt", _rows("a", 2))
    with pytest.raises(UserError, match="cannot tell the format.*corpus.format"):
        read(path)
    assert len(read(path, format="jsonl")) == 2


def test_hf_format_on_a_plain_directory(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", _rows("a", 1))
    with pytest.raises(UserError, match="not a saved Hugging Face dataset"):
        read(tmp_path, format="hf")


@pytest.mark.parametrize("name", ["bad.parquet", "bad.jsonl.gz", "bad.jsonl.zst"])
def test_corrupt_files(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"this is not what the name says" * 10)
    with pytest.raises(UserError, match=f"cannot (open|read) {path}"):
        read(path)


def test_truncated_gzip(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "t.jsonl.gz", _rows("t", 200))
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(UserError, match="cannot read"):
        read(path)


def test_unknown_text_field_in_parquet_schema(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "a.parquet", _rows("a", 2))
    with pytest.raises(UserError, match="no column 'content'.*set corpus.text_field"):
        read(path, text_field="content")
    with pytest.raises(UserError, match="no column 'doc_id'.*set corpus.id_field"):
        read(path, id_field="doc_id")


def test_user_error_messages_are_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"garbage")
    for cfg in (
        CorpusConfig(path=str(path)),
        CorpusConfig(path=str(tmp_path / "missing")),
        CorpusConfig(path=str(tmp_path), format="yaml"),
    ):
        with pytest.raises(UserError) as info:
            list(iter_documents(cfg))
        assert "\n" not in str(info.value)


# --------------------------------------------------------------------------- streaming


@pytest.fixture(scope="module")
def big_rows() -> list[dict[str, str]]:
    """200k rows of incompressible-ish text (about 20 MB of JSONL)."""
    rng = random.Random(0)
    return [{"text": rng.randbytes(40).hex()} for _ in range(200_000)]


@pytest.mark.parametrize("name", ["big.jsonl", "big.jsonl.gz", "big.jsonl.zst"])
def test_first_document_does_not_read_the_whole_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, big_rows: list[dict[str, str]], name: str
) -> None:
    path = tmp_path / name
    data = _jsonl_bytes(big_rows)
    if name.endswith(".gz"):
        path.write_bytes(gzip.compress(data, compresslevel=1))
    elif name.endswith(".zst"):
        path.write_bytes(zstandard.ZstdCompressor(level=1).compress(data))
    else:
        path.write_bytes(data)
    size = path.stat().st_size
    assert size > 8_000_000

    opened: list[io.BufferedReader] = []

    def recording_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        fh = open(file, mode, *args, **kwargs)  # noqa: SIM115 - closed by the reader
        opened.append(fh)
        return fh

    monkeypatch.setattr(corpus, "open", recording_open, raising=False)
    docs = iter_documents(CorpusConfig(path=str(path)))
    first = list(itertools.islice(docs, 1))
    assert texts(first) == [big_rows[0]["text"]]
    assert len(opened) == 1
    consumed = opened[0].raw.tell()  # bytes the OS actually handed over, buffers included
    assert consumed < 1_000_000 and consumed < size / 8
    docs.close()  # type: ignore[attr-defined]
    assert opened[0].closed


def test_parquet_is_never_read_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_parquet(tmp_path / "p.parquet", _rows("p", 3000), row_group_size=500)

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the whole table was read")

    monkeypatch.setattr(pq.ParquetFile, "read", forbidden)
    monkeypatch.setattr(pq, "read_table", forbidden)
    first = list(itertools.islice(iter_documents(CorpusConfig(path=str(path))), 2))
    assert texts(first) == ["p 0: $x^0$", "p 1: $x^1$"]
    assert len(read(path)) == 3000


# --------------------------------------------------------------------------- packaged sample


def test_sample_corpus_path_is_inside_the_package() -> None:
    package = Path(corpus.__file__).resolve().parents[1]
    assert sample_corpus_path() == package / "data" / "sample_owm.jsonl"


@pytest.mark.skipif(not sample_corpus_path().is_file(), reason="sample corpus not written yet")
def test_sample_corpus_yields_owm_style_documents() -> None:
    reader = CorpusReader(CorpusConfig(path="sample"))
    docs = list(reader)
    assert len(docs) >= 20
    assert not reader.skipped
    for doc in docs:
        assert doc.text.strip()
        assert {"url", "date", "metadata"} <= set(doc.metadata)
    # Ids do not depend on where the package is installed.
    assert docs[0].id == text_hash("sample/sample_owm.jsonl:1")
    assert len({d.id for d in docs}) == len(docs)


def test_missing_sample_corpus_is_a_user_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(corpus, "sample_corpus_path", lambda: tmp_path / "absent.jsonl")
    with pytest.raises(UserError, match="sample corpus is missing"):
        read("sample")
