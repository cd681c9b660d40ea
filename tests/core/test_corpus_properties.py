"""Property tests for mind_nemo.core.corpus: whatever bytes a file holds, reading it ends well.

A corpus reader meets every kind of damage sooner or later. For random bytes, truncations of
valid files at random offsets and rows of random shapes, the outcome must be one of three, never
a traceback:

- documents: a good file read whole;
- a one-line :class:`UserError` naming the file (``on_bad_file=error``), with none of its
  documents emitted before it;
- with ``on_bad_file=skip``, a counted skip of the whole file, none of its documents emitted.

The one thing the reader cannot see is a plain (uncompressed) JSONL file cut exactly at a line
end: it has no integrity data, so it reads as a shorter good file; cut anywhere else, its last
line is a counted bad row.
"""

from __future__ import annotations

import gzip
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mind_nemo.core.corpus import CorpusConfig, CorpusReader
from mind_nemo.core.errors import UserError
from mind_nemo.core.records import Document

SUFFIXES = [".jsonl", ".jsonl.gz", ".jsonl.zst", ".parquet"]
PROPERTY = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@contextmanager
def scratch() -> Iterator[Path]:
    """A fresh folder per example (hypothesis runs many examples in one test call)."""
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder)


def outcome(path: Path, policy: str, **cfg: Any) -> tuple[str, list[Document], CorpusReader]:
    """Read ``path``; check the invariants every outcome shares and say which one it was."""
    reader = CorpusReader(CorpusConfig(path=str(path), on_bad_file=policy, **cfg))
    emitted: list[Document] = []
    try:
        for doc in reader:
            emitted.append(doc)
    except UserError as err:
        message = str(err)
        assert "\n" not in message and str(path) in message, message
        assert emitted == [], "documents were emitted from a file that then failed"
        assert policy == "error" or message.startswith(f"cannot open {path}")
        return "error", emitted, reader
    if reader.bad_files:
        assert policy == "skip" and list(reader.bad_files) == [str(path)]
        assert emitted == [] and reader.read == 0
        return "skipped", emitted, reader
    for doc in emitted:
        assert isinstance(doc.id, str) and doc.id
        assert isinstance(doc.text, str) and doc.text.strip()
        json.dumps(doc.metadata, ensure_ascii=False).encode("utf-8")  # writable as UTF-8
        doc.text.encode("utf-8")
    assert len({d.id for d in emitted}) == len(emitted)
    return "documents", emitted, reader


def _rows_strategy() -> st.SearchStrategy[list[dict[str, Any]]]:
    text = st.text(st.characters(codec="utf-8"), min_size=1, max_size=40).filter(str.strip)
    return st.lists(
        st.fixed_dictionaries({"text": text, "n": st.integers(-(2**62), 2**62)}),
        min_size=1,
        max_size=15,
    )


def write(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Rows as a file of the kind its name says."""
    if path.name.endswith(".parquet"):
        pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=4)
        return path
    data = "".join(json.dumps(r) + "\n" for r in rows).encode("utf-8")
    if path.name.endswith(".gz"):
        data = gzip.compress(data)
    elif path.name.endswith(".zst"):
        data = zstandard.ZstdCompressor().compress(data)
    path.write_bytes(data)
    return path


@PROPERTY
@given(data=st.binary(max_size=3000), suffix=st.sampled_from(SUFFIXES))
def test_random_bytes_read_as_documents_an_error_or_a_skip(data: bytes, suffix: str) -> None:
    with scratch() as folder:
        path = folder / f"random{suffix}"
        path.write_bytes(data)
        for policy in ("error", "skip"):
            outcome(path, policy)


@PROPERTY
@given(
    rows=_rows_strategy(),
    suffix=st.sampled_from(SUFFIXES),
    cut=st.floats(min_value=0, max_value=1),
)
def test_a_truncated_file_is_never_half_read(
    rows: list[dict[str, Any]], suffix: str, cut: float
) -> None:
    with scratch() as folder:
        path = write(folder / f"cut{suffix}", rows)
        data = path.read_bytes()
        offset = int(len(data) * cut)
        path.write_bytes(data[:offset])
        expected = [r["text"] for r in rows]
        for policy in ("error", "skip"):
            kind, docs, reader = outcome(path, policy)
            got = [d.text for d in docs]
            if offset == len(data):
                assert kind == "documents" and got == expected
            elif suffix != ".jsonl":
                assert kind in ("error", "skipped") or (offset == 0 and got == [])
            elif kind == "documents":  # plain JSONL: a prefix, and a cut line is counted
                assert got == expected[: len(got)]
                # a cut just before a newline leaves the last row whole (only its newline lost)
                line_end = offset == 0 or b"\n" in (data[offset - 1 : offset], data[offset:][:1])
                assert sum(reader.skipped.values()) == (0 if line_end else 1)


_ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


@PROPERTY
@given(
    rows=st.lists(
        st.dictionaries(st.sampled_from(["text", "id", "url", "meta"]), _ODD_VALUES, max_size=4),
        max_size=12,
    ),
    huge=st.integers(min_value=0, max_value=3),
    id_field=st.sampled_from([None, "id"]),
)
def test_rows_of_any_shape_are_documents_or_counted_skips(
    rows: list[dict[str, Any]], huge: int, id_field: str | None
) -> None:
    with scratch() as folder:
        path = folder / "odd.jsonl"
        lines = [json.dumps(r) for r in rows]
        # Integers JSON allows but Python will not parse (over 4300 digits), and deep nesting.
        lines += ['{"text": "big", "id": ' + "7" * 5000 + "}"] * huge
        lines += ['{"text": "deep", "meta": ' + "[" * 5000 + "]" * 5000 + "}"] * huge
        lines += ['{"text": "lone \\udc80 surrogate", "id": "s"}'] * huge
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        kind, _, reader = outcome(path, "error", id_field=id_field)
        assert kind == "documents"
        assert reader.read + sum(reader.skipped.values()) == len(lines)


@PROPERTY
@given(
    texts=st.lists(st.one_of(st.none(), st.text(max_size=30)), min_size=1, max_size=20),
    ids=st.one_of(
        st.lists(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)), min_size=20),
        st.lists(st.one_of(st.none(), st.text(max_size=8)), min_size=20),
    ),
)
def test_parquet_columns_of_any_values_are_documents_or_counted_skips(
    texts: list[str | None], ids: list[Any]
) -> None:
    with scratch() as folder:
        rows = [{"text": t, "id": i} for t, i in zip(texts, ids, strict=False)]
        path = write(folder / "odd.parquet", rows)
        kind, docs, reader = outcome(path, "error", id_field="id")
        assert kind == "documents"
        good = [
            (t, i)
            for t, i in zip(texts, ids, strict=False)
            if t and t.strip() and i is not None and (not isinstance(i, str) or i.strip())
        ]
        assert [d.text for d in docs] == [t for t, _ in good]
        assert reader.read + sum(reader.skipped.values()) == len(rows)


@PROPERTY
@given(
    rows=_rows_strategy(),
    suffix=st.sampled_from(SUFFIXES),
    where=st.floats(min_value=0, max_value=1),
    junk=st.binary(min_size=1, max_size=16),
)
def test_a_corrupted_file_reads_without_a_traceback(
    rows: list[dict[str, Any]], suffix: str, where: float, junk: bytes
) -> None:
    """Bytes overwritten anywhere: an error, a skip, or (where the format has no checksum
    covering them) documents; never an exception of another kind."""
    with scratch() as folder:
        path = write(folder / f"corrupt{suffix}", rows)
        data = bytearray(path.read_bytes())
        at = int((len(data) - 1) * where)
        data[at : at + len(junk)] = junk
        path.write_bytes(bytes(data))
        for policy in ("error", "skip"):
            outcome(path, policy)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_the_good_files_these_properties_truncate_read_whole(suffix: str) -> None:
    rows = [{"text": f"t{i}", "n": i} for i in range(10)]
    with scratch() as folder:
        kind, docs, _ = outcome(write(folder / f"good{suffix}", rows), "error")
    assert kind == "documents" and [d.text for d in docs] == [r["text"] for r in rows]
