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
import tracemalloc
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
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
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
    }
    assert f"{tmp_path / 'bad.jsonl'} row 2: invalid_json" in caplog.text
    assert "skipped 6 bad rows" in caplog.records[-1].getMessage()


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
def test_reading_holds_a_bounded_part_of_the_file_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, big_rows: list[dict[str, str]], name: str
) -> None:
    """The file is verified and read in pieces: a 20 MB file never sits in memory whole."""
    path = tmp_path / name
    data = _jsonl_bytes(big_rows)
    if name.endswith(".gz"):
        path.write_bytes(gzip.compress(data, compresslevel=1))
    elif name.endswith(".zst"):
        path.write_bytes(zstandard.ZstdCompressor(level=1).compress(data))
    else:
        path.write_bytes(data)
    assert path.stat().st_size > 8_000_000

    opened: list[io.BufferedReader] = []

    def recording_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        fh = open(file, mode, *args, **kwargs)  # noqa: SIM115 - closed by the reader
        opened.append(fh)
        return fh

    monkeypatch.setattr(corpus, "open", recording_open, raising=False)
    tracemalloc.start()
    try:
        docs = iter_documents(CorpusConfig(path=str(path)))
        first = list(itertools.islice(docs, 1))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert texts(first) == [big_rows[0]["text"]]
    assert peak < 6_000_000 < len(data) / 3
    assert len(opened) == 2  # the verifying pass, then the reading pass
    assert opened[0].closed
    docs.close()  # type: ignore[attr-defined]
    assert all(fh.closed for fh in opened)


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


# --------------------------------------------------------------------------- damaged files


def _truncated(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def _corrupt_parquet(path: Path, rows: list[dict[str, Any]], **write: Any) -> Path:
    """A Parquet file whose last row group's first column page has 8 bytes flipped."""
    pq.write_table(
        pa.Table.from_pylist(rows), path, row_group_size=1000, use_dictionary=False, **write
    )
    data = bytearray(path.read_bytes())
    column = pq.ParquetFile(path).metadata.row_group(len(rows) // 1000 - 1).column(0)
    middle = column.data_page_offset + column.total_compressed_size // 2
    for k in range(8):
        data[middle + k] ^= 0x5A
    path.write_bytes(bytes(data))
    return path


def _random_rows(n: int) -> list[dict[str, Any]]:
    rng = random.Random(1)
    return [{"text": f"row {i} {rng.randbytes(30).hex()}", "url": f"u{i}"} for i in range(n)]


def _damaged(tmp_path: Path, kind: str) -> Path:
    """One damaged file of each kind the reader must refuse to half-read."""
    if kind == "truncated.jsonl.zst":
        return _truncated(write_jsonl(tmp_path / kind, _random_rows(400)))
    if kind == "truncated.jsonl.gz":
        return _truncated(write_jsonl(tmp_path / kind, _random_rows(400)))
    if kind == "bad-crc.jsonl.gz":
        path = write_jsonl(tmp_path / kind, _random_rows(400))
        data = bytearray(path.read_bytes())
        data[-6] ^= 0xFF  # the CRC32 in the trailer: every byte decodes, the check fails
        path.write_bytes(bytes(data))
        return path
    if kind == "bad-checksum.jsonl.zst":
        path = tmp_path / kind
        frame = bytearray(
            zstandard.ZstdCompressor(write_checksum=True).compress(_jsonl_bytes(_random_rows(400)))
        )
        frame[-2] ^= 0xFF
        path.write_bytes(bytes(frame))
        return path
    if kind == "snappy-page.parquet":
        return _corrupt_parquet(tmp_path / kind, _random_rows(20_000), compression="snappy")
    if kind == "checksummed-page.parquet":
        return _corrupt_parquet(
            tmp_path / kind, _random_rows(20_000), compression="none", write_page_checksum=True
        )
    if kind == "latin1.jsonl":
        path = tmp_path / kind
        lines = [json.dumps({"text": t}, ensure_ascii=False) for t in ("plain", "café", "x ≤ y")]
        path.write_bytes("\n".join(lines).encode("latin-1", errors="replace") + b"\n")
        return path
    if kind == "utf16.jsonl":
        path = tmp_path / kind
        path.write_bytes(_jsonl_bytes(_rows("u", 3)).decode().encode("utf-16"))
        return path
    raise ValueError(kind)


DAMAGED = [
    "truncated.jsonl.zst",
    "truncated.jsonl.gz",
    "bad-crc.jsonl.gz",
    "bad-checksum.jsonl.zst",
    "snappy-page.parquet",
    "checksummed-page.parquet",
    "latin1.jsonl",
    "utf16.jsonl",
]


@pytest.mark.parametrize("kind", DAMAGED)
def test_damaged_file_stops_before_emitting_any_of_its_documents(tmp_path: Path, kind: str) -> None:
    path = _damaged(tmp_path, kind)
    emitted: list[Document] = []
    with pytest.raises(UserError) as info:
        for doc in iter_documents(CorpusConfig(path=str(path))):
            emitted.append(doc)
    message = str(info.value)
    assert emitted == []
    assert f"cannot read {path}" in message and "corpus.on_bad_file=skip" in message
    assert "\n" not in message


def test_damage_messages_say_what_is_wrong(tmp_path: Path) -> None:
    def message(kind: str) -> str:
        with pytest.raises(UserError) as info:
            read(_damaged(tmp_path, kind))
        return str(info.value)

    assert "truncated" in message("truncated.jsonl.zst")
    assert "not UTF-8 (line 2" in message("latin1.jsonl")
    assert "CRC" in message("checksummed-page.parquet")


def test_skip_policy_leaves_damaged_files_out_whole_and_counts_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "corpus"
    root.mkdir()
    for kind in DAMAGED:
        _damaged(root, kind)
    write_jsonl(root / "good-a.jsonl", _rows("a", 2))
    write_parquet(root / "good-b.parquet", _rows("b", 2))
    reader = CorpusReader(CorpusConfig(path=str(root), on_bad_file="skip"))
    with caplog.at_level(logging.WARNING, logger="mind_nemo.core.corpus"):
        docs = list(reader)
    assert [t.split()[0] for t in texts(docs)] == ["a", "a", "b", "b"]
    assert sorted(Path(label).name for label in reader.bad_files) == sorted(DAMAGED)
    assert "truncated" in reader.bad_files[str(root / "truncated.jsonl.zst")]
    assert reader.read == 4 and not reader.skipped
    assert f"skipped 8 damaged files whole: {root}" in caplog.text


def test_until_error_ends_the_stream_at_a_damaged_file_and_keeps_the_error(
    tmp_path: Path,
) -> None:
    write_jsonl(tmp_path / "a.jsonl", _rows("a", 3))
    bad = _damaged(tmp_path, "truncated.jsonl.zst")
    write_jsonl(tmp_path / "z.jsonl", _rows("z", 3))
    reader = CorpusReader(CorpusConfig(path=str(tmp_path)))
    docs = list(reader.until_error())
    assert texts(docs) == [r["text"] for r in _rows("a", 3)]
    assert reader.error is not None and f"cannot read {bad}" in str(reader.error)
    with pytest.raises(UserError, match="truncated"):
        list(reader)  # plain iteration raises the same error
    reader = CorpusReader(CorpusConfig(path=str(tmp_path), on_bad_file="skip"))
    assert len(list(reader.until_error())) == 6 and reader.error is None


def test_zstd_reader_keeps_reading_frames_and_rejects_trailing_junk(tmp_path: Path) -> None:
    cctx = zstandard.ZstdCompressor()
    path = tmp_path / "j.jsonl.zst"
    path.write_bytes(cctx.compress(_jsonl_bytes(_rows("a", 2))) + b"junk after the frame")
    with pytest.raises(UserError, match="damaged or truncated"):
        read(path)
    path.write_bytes(b"".join(cctx.compress(_jsonl_bytes(_rows(f"f{i}", 1))) for i in range(50)))
    assert len(read(path)) == 50


def test_a_file_without_permission_is_not_damage(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root can read anything")
    path = write_jsonl(tmp_path / "a.jsonl", _rows("a", 1))
    path.chmod(0)
    with pytest.raises(UserError, match="cannot open"):
        read(path, on_bad_file="skip")


# --------------------------------------------------------------------------- repeated ids


def test_repeated_ids_are_made_unique_deterministically(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ids = ["a", "b", "a", "a", "a#2", "b"]
    write_jsonl(tmp_path / "1.jsonl", [{"id": i, "text": f"t{n}"} for n, i in enumerate(ids)])
    write_jsonl(tmp_path / "2.jsonl", [{"id": "a", "text": "again"}])
    reader = CorpusReader(CorpusConfig(path=str(tmp_path), id_field="id"))
    with caplog.at_level(logging.WARNING, logger="mind_nemo.core.corpus"):
        docs = list(reader)
    assert [d.id for d in docs] == ["a", "b", "a#2", "a#3", "a#2#2", "b#2", "a#4"]
    assert reader.renamed_ids == 5
    assert "1.jsonl row 3 repeats document id 'a': renamed to 'a#2'" in caplog.text
    assert "renamed 5 documents whose id repeated" in caplog.text
    assert [d.id for d in read(tmp_path, id_field="id")] == [d.id for d in docs]


def test_renaming_does_not_depend_on_the_suffix_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [{"id": f"k{i % 7}", "text": "t"} for i in range(200)]
    path = write_jsonl(tmp_path / "a.jsonl", rows)
    cached = [d.id for d in read(path, id_field="id")]
    monkeypatch.setattr(corpus, "SUFFIX_CACHE", 1)
    assert [d.id for d in read(path, id_field="id")] == cached
    assert len(set(cached)) == 200


def test_unique_id_table_grows_and_remembers_everything() -> None:
    table = corpus._UniqueIds()
    assert all(table.claim(f"doc-{i}") == f"doc-{i}" for i in range(5000))
    assert len(table._table) >= 2 * 5000
    assert all(table.claim(f"doc-{i}") == f"doc-{i}#2" for i in range(5000))


def test_derived_ids_keep_no_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden() -> None:
        raise AssertionError("derived ids never repeat; no table is needed")

    monkeypatch.setattr(corpus, "_UniqueIds", forbidden)
    assert len(read(write_jsonl(tmp_path / "a.jsonl", _rows("a", 3)))) == 3


# --------------------------------------------------------------------------- odd rows


def test_ids_must_be_strings_or_integers(tmp_path: Path) -> None:
    rows = [
        {"id": 7, "text": "int"},
        {"id": 8.0, "text": "integral float"},
        {"id": 8.5, "text": "float"},
        {"id": True, "text": "bool"},
        {"id": {"nested": 1}, "text": "dict"},
        {"id": [1], "text": "list"},
        {"id": "  ", "text": "blank"},
        {"id": "\ud800", "text": "surrogate"},
    ]
    reader = CorpusReader(
        CorpusConfig(path=str(write_jsonl(tmp_path / "a.jsonl", rows)), id_field="id")
    )
    assert [(d.id, d.text) for d in reader] == [("7", "int"), ("8", "integral float")]
    assert reader.skipped == {"invalid_id": 4, "missing_id": 1, "invalid_unicode": 1}


def test_unencodable_text_and_absurd_nesting_are_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "odd.jsonl"
    deep = "[" * 100_000 + "]" * 100_000
    huge = "1" * 5000
    path.write_text(
        "\n".join(
            [
                '{"text": "lone \\ud800 surrogate"}',
                '{"text": "ok", "deep": ' + deep + "}",
                '{"text": "big", "n": ' + huge + "}",
                '{"text": "fine \\ud83d\\ude00"}',
            ]
        )
        + "\n"
    )
    reader = CorpusReader(CorpusConfig(path=str(path)))
    assert texts(list(reader)) == ["fine \U0001f600"]
    assert reader.skipped == {"invalid_unicode": 1, "invalid_json": 2}


def test_a_corpus_of_only_bad_rows_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text('{"text": ""}\n{"url": "x"}\n')
    with caplog.at_level(logging.WARNING, logger="mind_nemo.core.corpus"):
        assert read(path) == []
    assert f"no documents read from {path}" in caplog.text


# --------------------------------------------------------------------------- config values


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"limit_documents": -1}, "limit_documents=-1: must be >= 0"),
        ({"limit_documents": "10"}, "limit_documents='10': must be >= 0"),
        ({"on_bad_file": "ignore"}, "on_bad_file='ignore': must be one of: error, skip"),
    ],
)
def test_bad_config_values_name_their_key(values: dict[str, Any], message: str) -> None:
    with pytest.raises(UserError, match=message) as info:
        CorpusConfig(**values)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"on_bad_file": "sometimes"}, "corpus.on_bad_file='sometimes': must be one of"),
        ({"limit_documents": -3}, "corpus.limit_documents=-3: must be >= 0"),
    ],
)
def test_bad_config_value_through_hydra_names_the_full_key(
    override: dict[str, Any], message: str
) -> None:
    from omegaconf import OmegaConf

    from mind_nemo.core.config import typed_config
    from mind_nemo.synthesize.config import SynthesizeConfig

    raw = OmegaConf.merge(OmegaConf.structured(SynthesizeConfig), {"corpus": override})
    with pytest.raises(UserError, match=message) as info:
        typed_config(raw, SynthesizeConfig)
    assert "\n" not in str(info.value)
