"""Read raw documents from wherever a user keeps them, one at a time.

Math web corpora such as OpenWebMath come as JSONL (often gzip- or zstd-compressed), Parquet
shards, Hugging Face ``save_to_disk`` folders or Hub datasets, and they are far larger than
memory. This module hides those differences behind one streaming iterator of
:class:`~mind_nemo.core.records.Document`:
files are read line by line or batch by batch, never whole.

Real corpora contain junk, so a bad row (invalid JSON, missing or empty text, missing id) is
skipped, counted in :attr:`CorpusReader.skipped` and logged (the first few individually, then
a summary) instead of stopping a long run. Mistakes a user can fix (a wrong path, a glob that
matches nothing, an unreadable file, an unknown field) raise
:class:`~mind_nemo.core.errors.UserError` with one clear line.

Documents without an id field get a derived id, ``text_hash(f"{source}:{row_number}")``, where
``source`` is the file path as given (normalised) and ``row_number`` counts rows (JSONL lines)
from 1. It is stable across runs as long as the corpus is named the same way, which is what
resume and sharding need.
"""

from __future__ import annotations

import collections
import datetime
import decimal
import glob
import gzip
import io
import json
import logging
import os
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import zstandard

from mind_nemo.core.errors import UserError
from mind_nemo.core.package_files import data_path
from mind_nemo.core.records import Document, text_hash, text_problem


@dataclass
class CorpusConfig:
    """Where raw documents come from and which fields hold what."""

    #: ``sample`` (the corpus shipped in the package), a file, a directory, a glob, a saved
    #: Hugging Face dataset directory, or a Hub dataset name (with ``format=hf``).
    path: str = "sample"
    #: ``auto`` (from the path), ``jsonl``, ``parquet`` or ``hf``.
    format: str = "auto"
    text_field: str = "text"
    #: Field holding a stable document id; ``null`` derives one from source path + row number.
    id_field: str | None = None
    #: Split and config name for Hugging Face datasets.
    hf_split: str = "train"
    hf_name: str | None = None
    #: Stop after this many documents (``null``: read everything).
    limit_documents: int | None = None


log = logging.getLogger(__name__)

#: Values of ``corpus.format``.
FORMATS: tuple[str, ...] = ("auto", "jsonl", "parquet", "hf")
#: Name endings recognised as JSON lines, and the compressions they may carry.
JSONL_SUFFIXES: tuple[str, ...] = (".jsonl", ".json", ".ndjson")
COMPRESSION_SUFFIXES: tuple[str, ...] = ("", ".gz", ".zst", ".zstd")
PARQUET_SUFFIXES: tuple[str, ...] = (".parquet",)
#: Rows per Parquet / Arrow batch: bounds memory while keeping per-row overhead low.
BATCH_ROWS = 1024
#: Bad rows logged one by one before the reader falls back to a final summary.
MAX_LOGGED_SKIPS = 10
#: The packaged sample corpus and the stable name its derived ids are built from.
SAMPLE_NAME = "sample"
SAMPLE_FILE = "sample_owm.jsonl"

#: Errors that mean "this compressed file cannot be decoded" (raised while streaming it).
_JSONL_READ_ERRORS: tuple[type[BaseException], ...] = (OSError, EOFError, zstandard.ZstdError)


@dataclass(frozen=True)
class Source:
    """One unit of input: a file, a saved dataset folder, or a Hub dataset.

    ``kind`` is ``jsonl``, ``parquet``, ``hf_disk`` or ``hf_hub``; ``path`` is what is opened
    (or the Hub name); ``label`` names the source in derived ids and log lines.
    """

    kind: str
    path: str
    label: str


def sample_corpus_path() -> Path:
    """The small OpenWebMath-style JSONL corpus shipped inside the package."""
    return data_path(SAMPLE_FILE)


def iter_documents(cfg: CorpusConfig) -> Iterator[Document]:
    """Stream the documents of ``cfg``; path mistakes raise :class:`UserError` right away.

    Use :class:`CorpusReader` directly to read the skip counters afterwards.
    """
    return iter(CorpusReader(cfg))


class CorpusReader:
    """Iterable over the documents of one corpus config, counting what it reads and skips.

    The sources are resolved when the reader is built, so a wrong path fails before any work.
    After (or during) iteration, :attr:`read` is the number of documents yielded and
    :attr:`skipped` maps a reason (``invalid_json``, ``missing_text``, ...) to a count.
    """

    def __init__(self, cfg: CorpusConfig) -> None:
        limit = cfg.limit_documents
        if limit is not None and limit < 0:
            raise UserError(f"corpus.limit_documents must be >= 0 or null, got {limit}")
        self.cfg = cfg
        self.sources: list[Source] = resolve_sources(cfg)
        self.read = 0
        self.skipped: collections.Counter[str] = collections.Counter()

    def __iter__(self) -> Iterator[Document]:
        self.read = 0
        self.skipped = collections.Counter()
        limit = self.cfg.limit_documents
        if limit == 0:
            return
        try:
            for source in self.sources:
                for row_number, row in _iter_rows(source, self.cfg):
                    result = _make_document(row, source.label, row_number, self.cfg)
                    if isinstance(result, str):
                        self._skip(source, row_number, result)
                        continue
                    self.read += 1
                    yield result
                    if limit is not None and self.read >= limit:
                        return
        finally:
            self._log_summary()

    def _skip(self, source: Source, row_number: int, reason: str) -> None:
        """Count one bad row; log it while few have been logged."""
        self.skipped[reason] += 1
        total = sum(self.skipped.values())
        if total <= MAX_LOGGED_SKIPS:
            log.warning("skipped %s row %d: %s", source.label, row_number, reason)
        if total == MAX_LOGGED_SKIPS:
            log.warning("further bad rows are counted, not logged; a summary follows at the end")

    def _log_summary(self) -> None:
        """One line with all skip counts, if anything was skipped."""
        total = sum(self.skipped.values())
        if total:
            reasons = ", ".join(f"{k}={v}" for k, v in sorted(self.skipped.items()))
            log.warning(
                "corpus: read %d documents, skipped %d bad rows (%s)", self.read, total, reasons
            )


# --------------------------------------------------------------------------- resolving paths


def resolve_sources(cfg: CorpusConfig) -> list[Source]:
    """Turn ``cfg.path`` and ``cfg.format`` into the ordered list of sources to read."""
    fmt = str(cfg.format).lower()
    if fmt not in FORMATS:
        raise UserError(f"unknown corpus.format {cfg.format!r}; use one of {', '.join(FORMATS)}")
    given = str(cfg.path or "")
    if not given:
        raise UserError("corpus.path is empty; give a file, directory, glob or 'sample'")
    if given == SAMPLE_NAME:
        return [_sample_source()]
    path = os.path.expanduser(given)
    if fmt == "hf" and not os.path.isdir(path):
        return [_hub_source(given, cfg)]
    if os.path.isfile(path):
        return [_file_source(path, fmt)]
    if os.path.isdir(path):
        sources = _dir_sources(path, fmt, cfg)
        if not sources:
            raise UserError(f"no readable data files in directory {given} ({_wanted(fmt)})")
        return sources
    if glob.has_magic(path):
        return _glob_sources(given, path, fmt, cfg)
    raise UserError(f"corpus path not found: {given}")


def _sample_source() -> Source:
    """The packaged sample, labelled independently of where the package is installed."""
    path = sample_corpus_path()
    if not path.is_file():
        raise UserError(f"the packaged sample corpus is missing: {path}")
    return Source("jsonl", str(path), f"{SAMPLE_NAME}/{SAMPLE_FILE}")


def _hub_source(name: str, cfg: CorpusConfig) -> Source:
    """A Hub dataset name, labelled with its config and split."""
    config = f"/{cfg.hf_name}" if cfg.hf_name else ""
    return Source("hf_hub", name, f"{name}{config}[{cfg.hf_split}]")


def _detect_kind(name: str) -> str | None:
    """``jsonl`` or ``parquet`` from a file name's ending, or None when unrecognised."""
    lower = name.lower()
    if lower.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if any(lower.endswith(s + c) for s in JSONL_SUFFIXES for c in COMPRESSION_SUFFIXES):
        return "jsonl"
    return None


def _wanted(fmt: str) -> str:
    """Human description of the files a directory scan looks for."""
    jsonl = "*.jsonl/*.json/*.ndjson (optionally .gz/.zst)"
    if fmt == "jsonl":
        return f"looked for {jsonl}"
    if fmt == "parquet":
        return "looked for *.parquet"
    return f"looked for {jsonl}, *.parquet and saved Hugging Face datasets"


def _file_source(path: str, fmt: str) -> Source:
    """A single file: its kind comes from ``fmt`` or, for ``auto``, from its name."""
    kind = fmt if fmt in ("jsonl", "parquet") else _detect_kind(path)
    if kind is None:
        raise UserError(
            f"cannot tell the format of {path} from its name; set corpus.format=jsonl or parquet"
        )
    return Source(kind, path, os.path.normpath(path))


def _is_hf_saved_dir(path: str) -> bool:
    """True for a ``save_to_disk`` folder (a Dataset or a DatasetDict)."""
    return any(
        os.path.isfile(os.path.join(path, name)) for name in ("state.json", "dataset_dict.json")
    )


def _hf_disk_source(path: str, cfg: CorpusConfig) -> Source:
    """A saved dataset folder; a DatasetDict's label names the split read."""
    label = os.path.normpath(path)
    if os.path.isfile(os.path.join(path, "dataset_dict.json")):
        label = f"{label}[{cfg.hf_split}]"
    return Source("hf_disk", path, label)


def _dir_sources(root: str, fmt: str, cfg: CorpusConfig) -> list[Source]:
    """All data files under ``root`` (recursively, sorted by path); hidden entries are ignored.

    A saved Hugging Face dataset is one source, never descended into (its JSON files are
    metadata, not data).
    """
    if _is_hf_saved_dir(root) and fmt in ("auto", "hf"):
        return [_hf_disk_source(root, cfg)]
    if fmt == "hf":
        raise UserError(
            f"{root} is not a saved Hugging Face dataset (no state.json or dataset_dict.json)"
        )
    sources: list[Source] = []
    for dirpath, dirnames, filenames in os.walk(root):
        kept = []
        for name in dirnames:
            sub = os.path.join(dirpath, name)
            if name.startswith("."):
                continue
            if _is_hf_saved_dir(sub):
                if fmt == "auto":
                    sources.append(_hf_disk_source(sub, cfg))
                continue
            kept.append(name)
        dirnames[:] = kept
        for name in filenames:
            kind = None if name.startswith(".") else _detect_kind(name)
            if kind is not None and fmt in ("auto", kind):
                path = os.path.join(dirpath, name)
                sources.append(Source(kind, path, os.path.normpath(path)))
    return sorted(sources, key=lambda s: s.path)


def _glob_sources(given: str, pattern: str, fmt: str, cfg: CorpusConfig) -> list[Source]:
    """Sources of every file or directory a glob matches (``**`` recurses), sorted by path."""
    matches = sorted(glob.glob(pattern, recursive=True))
    if not matches:
        raise UserError(f"corpus.path glob matches nothing: {given}")
    found: dict[str, Source] = {}
    for match in matches:
        if os.path.isdir(match):
            candidates = _dir_sources(match, fmt, cfg) if fmt != "hf" else []
        elif fmt in ("jsonl", "parquet") or _detect_kind(match):
            candidates = [_file_source(match, fmt)]
        else:
            candidates = []
        for source in candidates:
            found.setdefault(source.path, source)
    if not found:
        raise UserError(
            f"corpus.path glob matches no readable data files: {given} ({_wanted(fmt)})"
        )
    return sorted(found.values(), key=lambda s: s.path)


# --------------------------------------------------------------------------- reading rows

#: A row is a parsed mapping, or the reason (a string) it could not be parsed.
Row = dict[str, Any] | str


def _iter_rows(source: Source, cfg: CorpusConfig) -> Iterator[tuple[int, Row]]:
    """``(row_number, row)`` pairs of one source, row numbers counting from 1."""
    if source.kind == "jsonl":
        return _guarded(source, _iter_jsonl(source.path), _JSONL_READ_ERRORS)
    if source.kind == "parquet":
        import pyarrow

        return _guarded(source, _iter_parquet(source, cfg), (pyarrow.ArrowException, OSError))
    if source.kind == "hf_disk":
        return _guarded(source, _iter_hf(_load_hf_disk(source, cfg)), (OSError,))
    if source.kind == "hf_hub":
        return _guarded(source, _iter_hf(_load_hf_hub(source, cfg)), (OSError,))
    raise ValueError(f"unknown source kind {source.kind!r}")


def _guarded(
    source: Source, rows: Iterator[tuple[int, Row]], errors: tuple[type[BaseException], ...]
) -> Iterator[tuple[int, Row]]:
    """Re-raise read/decode failures of ``rows`` as a one-line :class:`UserError`."""
    while True:
        try:
            item = next(rows)
        except StopIteration:
            return
        except errors as err:
            raise UserError(f"cannot read {source.label}: {_one_line(err)}") from err
        yield item


def _one_line(err: BaseException) -> str:
    """The first line of an exception's message (or its type), kept short."""
    lines = str(err).strip().splitlines()
    text = lines[0] if lines else type(err).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def decompressed(raw: IO[bytes], path: str, stack: ExitStack) -> IO[bytes]:
    """``raw`` itself, or a streaming gzip/zstd decoder over it, chosen by the file name."""
    lower = path.lower()
    if lower.endswith(".gz"):
        return stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))
    if lower.endswith((".zst", ".zstd")):
        reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
        return stack.enter_context(io.BufferedReader(reader))
    return raw


def _iter_jsonl(path: str) -> Iterator[tuple[int, Row]]:
    """Parse a JSON-lines file one line at a time; blank lines are ignored."""
    with open(path, "rb") as raw, ExitStack() as stack:
        stream = decompressed(raw, path, stack)
        for row_number, line in enumerate(stream, start=1):
            if line.strip():
                yield row_number, _parse_line(line, first=row_number == 1)


def _parse_line(raw: bytes, first: bool) -> Row:
    """A JSON object from one line, or the reason it is not one."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "invalid_utf8"
    if first:
        line = line.removeprefix("\ufeff")
    try:
        value = json.loads(line)
    except ValueError:
        return "invalid_json"
    return value if isinstance(value, dict) else "not_an_object"


def _check_columns(source: Source, columns: Iterable[str], cfg: CorpusConfig) -> None:
    """Fail early when a table lacks the configured text or id column."""
    names = list(columns)
    for setting, field_name in (("text_field", cfg.text_field), ("id_field", cfg.id_field)):
        if field_name is not None and field_name not in names:
            raise UserError(
                f"{source.label} has no column {field_name!r} (columns: {', '.join(names)}); "
                f"set corpus.{setting}"
            )


def _iter_parquet(source: Source, cfg: CorpusConfig) -> Iterator[tuple[int, Row]]:
    """Stream a Parquet file in batches of :data:`BATCH_ROWS` rows."""
    import pyarrow
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(source.path)
    except (pyarrow.ArrowException, OSError) as err:
        raise UserError(f"cannot open {source.label} as Parquet: {_one_line(err)}") from err
    with parquet:
        names = parquet.schema_arrow.names
        _check_columns(source, names, cfg)
        row_number = 0
        for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=names):
            for row in batch.to_pylist():
                row_number += 1
                yield row_number, row


def load_saved_dataset(path: str, split: str) -> Any:
    """Open a ``save_to_disk`` folder (memory-mapped Arrow), picking ``split`` if it has several."""
    import datasets

    try:
        data = datasets.load_from_disk(path)
    except Exception as err:  # any failure here means an unreadable folder
        raise UserError(f"cannot load saved dataset {path}: {_one_line(err)}") from err
    if isinstance(data, datasets.DatasetDict):
        if split not in data:
            raise UserError(
                f"saved dataset {path} has no split {split!r} "
                f"(splits: {', '.join(data)}); set hf_split"
            )
        data = data[split]
    return data


def _load_hf_disk(source: Source, cfg: CorpusConfig) -> Any:
    """The saved dataset of a corpus source, with its text (and id) columns checked."""
    data = load_saved_dataset(source.path, cfg.hf_split)
    _check_columns(source, data.column_names, cfg)
    return data


def _load_hf_hub(source: Source, cfg: CorpusConfig) -> Any:
    """Open a Hub dataset in streaming mode (nothing is downloaded up front)."""
    import datasets

    try:
        data = datasets.load_dataset(
            source.path, name=cfg.hf_name, split=cfg.hf_split, streaming=True
        )
    except Exception as err:  # network, auth, missing dataset, bad split...
        raise UserError(
            f"cannot load Hugging Face dataset {source.path!r} "
            f"(name={cfg.hf_name}, split={cfg.hf_split}): {_one_line(err)}"
        ) from err
    if data.column_names is not None:
        _check_columns(source, data.column_names, cfg)
    return data


def _iter_hf(data: Any) -> Iterator[tuple[int, Row]]:
    """Rows of a ``datasets`` Dataset or IterableDataset, fetched in batches."""
    row_number = 0
    for batch in data.iter(batch_size=BATCH_ROWS):
        keys = list(batch)
        for values in zip(*(batch[k] for k in keys), strict=True):
            row_number += 1
            yield row_number, dict(zip(keys, values, strict=True))


# --------------------------------------------------------------------------- rows -> documents


def _make_document(row: Row, label: str, row_number: int, cfg: CorpusConfig) -> Document | str:
    """A :class:`Document` from a row, or the reason the row is skipped.

    ``row`` may already be a reason (an unparsable line). The metadata is every field except
    the text and id fields, made JSON-serialisable.
    """
    if isinstance(row, str):
        return row
    text = row.get(cfg.text_field)
    if reason := text_problem(text):
        return reason
    if cfg.id_field:
        raw_id = row.get(cfg.id_field)
        if raw_id is None or raw_id == "":
            return "missing_id"
        doc_id = str(raw_id)
    else:
        doc_id = text_hash(f"{label}:{row_number}")
    skip = (cfg.text_field, cfg.id_field)
    metadata = {str(k): _jsonable(v) for k, v in row.items() if k not in skip}
    return Document(id=doc_id, text=text, metadata=metadata)


def _jsonable(value: Any) -> Any:
    """``value`` with Arrow/Python types JSON cannot hold (dates, bytes, numpy) converted."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", errors="replace")
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return _jsonable(value.tolist())
    return str(value)
