"""Read raw documents from wherever a user keeps them, one at a time.

Math web corpora such as OpenWebMath come as JSONL (often gzip- or zstd-compressed), Parquet
shards, Hugging Face ``save_to_disk`` folders or Hub datasets, and they are far larger than
memory. This module hides those differences behind one streaming iterator of
:class:`~mind_nemo.core.records.Document`:
files are read line by line or batch by batch, never whole.

Real corpora contain junk, so a bad row (invalid JSON, missing or empty text, an id that is not
a string or an integer) is skipped, counted in :attr:`CorpusReader.skipped` and logged (the
first few individually, then a summary) instead of stopping a long run. Mistakes a user can fix
(a wrong path, a glob that matches nothing, an unreadable file, an unknown field) raise
:class:`~mind_nemo.core.errors.UserError` with one clear line.

**Bad files.** A damaged file is different from a bad row: a compressed file cut short (a
copy that stopped half way) or failing its checksum, a corrupt Parquet page, or bytes that are
not UTF-8 (a latin-1 or UTF-16 export). Read naively, such a file yields the rows before the
damage and then either stops quietly (zstd) or fails after its first rows were already used,
and a latin-1 file loses exactly its non-ASCII rows, the math-heavy ones. So every file is
*verified in full before its first document is emitted*: decompressed to nowhere in 1 MiB
pieces (which runs the gzip CRC and length check, libzstd's frame checks and checksums, and
notices a zstd frame cut short) while the bytes are validated as UTF-8; a Parquet file has every
batch decoded and fully validated (pages with checksums have them verified). Verifying rather
than buffering keeps memory bounded for any file size; the price is reading each file twice.
Measured on 50 MB of sample-like JSONL: verifying takes 0.03 s plain, 0.06 s zstd, 0.3 s gzip,
against 0.5-0.9 s to parse the same rows and minutes to tokenise them, so it is noise in a run.
Its one visible cost: the first document of a file comes only after that file is verified.
What a format cannot detect still reads as data: a plain JSONL file has no integrity data (a
cut shows up only as an unparsable last line, counted ``invalid_json``), and a flipped byte in
a zstd frame or Parquet page written without a checksum can decode to different text.

``corpus.on_bad_file`` says what a damaged file does:

- ``error`` (default): iteration raises a one-line :class:`UserError` naming the file *before
  any of its documents* is emitted. The synthesize stage reads through
  :meth:`CorpusReader.until_error`, so it finishes and commits the work of every document it
  already read (all earlier files), then exits with status 2 and that line; rerun after fixing
  or removing the file and it resumes. Nothing is ever generated from part of a bad file.
- ``skip``: the whole file is left out, logged and recorded in :attr:`CorpusReader.bad_files`
  (the stage's manifest lists them); none of its documents is emitted.

Mismatches a user must fix (a Parquet file without the text column, a missing split) are not
"damage" and always raise, whatever the policy. Saved or Hub Hugging Face datasets are not
verified ahead (they are Arrow, memory-mapped, or streamed from the network); a failure while
reading them always raises.

**Ids.** Documents without an id field get a derived id, ``text_hash(f"{source}:{row_number}")``,
where ``source`` is the file path as given (normalised) and ``row_number`` counts rows (JSONL
lines) from 1. It is stable across runs as long as the corpus is named the same way, which is
what resume and sharding need. Ids read from ``corpus.id_field`` may repeat (a URL crawled
twice); two documents with one id would give two conversations with one key, so a repeated id
is made unique deterministically: the second occurrence becomes ``id#2``, the third ``id#3``
(skipping any such name already taken), counted in :attr:`CorpusReader.renamed_ids` and logged.
Renaming rather than refusing keeps a long run going and loses nothing; the ids stay stable as
long as the corpus and its order do. Every process reads all ids (a renamed id can land in
another shard, so a per-shard set would not do), held as 8-byte hashes in an open-addressing
table: 16-32 MB per million documents (48 MB while the table doubles), against about 70 MB for a
Python set of ints. Derived ids never repeat, so without ``id_field`` no table is kept.

A corpus that yields no documents is logged as a warning here; the synthesize stage treats no
contexts at all as a failure (exit status 2), not a quiet ``complete``.
"""

from __future__ import annotations

import codecs
import collections
import datetime
import decimal
import glob
import gzip
import hashlib
import io
import json
import logging
import os
import zlib
from array import array
from collections.abc import Collection, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import zstandard

from mind_nemo.core.config import check_settings, setting
from mind_nemo.core.errors import UserError
from mind_nemo.core.package_files import data_path
from mind_nemo.core.records import Document, text_hash, text_problem
from mind_nemo.core.released import RELEASED_COLUMNS

#: ``corpus.text_field``'s default; only this default falls back to the released ``Text``.
DEFAULT_TEXT_FIELD = "text"
#: Values of ``corpus.on_bad_file``.
BAD_FILE_POLICIES: tuple[str, ...] = ("error", "skip")


@dataclass
class CorpusConfig:
    """Where raw documents come from and which fields hold what."""

    #: ``sample`` (the corpus shipped in the package), a file, a directory, a glob, a saved
    #: Hugging Face dataset directory, or a Hub dataset name (with ``format=hf``).
    path: str = "sample"
    #: ``auto`` (from the path), ``jsonl``, ``parquet`` or ``hf``.
    format: str = "auto"
    #: The text column. With the default ``text``, a source (or JSONL row) that has no ``text``
    #: but has the released Nemotron-MIND ``Text`` is read from ``Text`` (:func:`text_column`).
    text_field: str = DEFAULT_TEXT_FIELD
    #: Field holding a stable document id; ``null`` derives one from source path + row number.
    id_field: str | None = None
    #: Split and config name for Hugging Face datasets.
    hf_split: str = "train"
    hf_name: str | None = None
    #: Stop after this many documents (``null``: read everything).
    limit_documents: int | None = setting(None, ge=0)
    #: A damaged file (truncated or corrupt compression, corrupt Parquet, not UTF-8): ``error``
    #: stops with one line naming it, ``skip`` leaves the whole file out and counts it.
    on_bad_file: str = setting("error", choices=BAD_FILE_POLICIES)

    def __post_init__(self) -> None:
        """Refuse values no run could use, in one line naming the key, before any work."""
        check_settings(self)


log = logging.getLogger(__name__)

#: Values of ``corpus.format``.
FORMATS: tuple[str, ...] = ("auto", "jsonl", "parquet", "hf")
#: Name endings recognised as JSON lines, and the compressions they may carry.
JSONL_SUFFIXES: tuple[str, ...] = (".jsonl", ".json", ".ndjson")
COMPRESSION_SUFFIXES: tuple[str, ...] = ("", ".gz", ".zst", ".zstd")
PARQUET_SUFFIXES: tuple[str, ...] = (".parquet",)
#: Rows per Parquet / Arrow batch: bounds memory while keeping per-row overhead low.
BATCH_ROWS = 1024
#: Bad rows (and renamed ids, and skipped files) logged one by one before only counting.
MAX_LOGGED_SKIPS = 10
#: The packaged sample corpus and the stable name its derived ids are built from.
SAMPLE_NAME = "sample"
SAMPLE_FILE = "sample_owm.jsonl"
#: Decompressed bytes per read while verifying a file (bounds the verifier's memory).
VERIFY_BYTES = 1 << 20
#: Compressed bytes fed to zstd at a time; bounds one step's output even for extreme ratios.
ZSTD_INPUT_BYTES = 1 << 14
#: Ids whose next free ``#n`` suffix is remembered, so an id repeated k times costs O(k), not
#: O(k^2); the cache only speeds renaming up, the names it gives do not depend on it.
SUFFIX_CACHE = 1 << 16

#: Errors that mean "this compressed file cannot be decoded" (raised while streaming it).
_JSONL_READ_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    EOFError,
    zlib.error,
    zstandard.ZstdError,
    UnicodeDecodeError,
)


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
    After (or during) iteration, :attr:`read` is the number of documents yielded,
    :attr:`skipped` maps a bad-row reason (``invalid_json``, ``missing_text``, ...) to a count,
    :attr:`bad_files` maps each file left out whole (``on_bad_file=skip``) to why, and
    :attr:`renamed_ids` counts documents whose repeated id was made unique.
    """

    def __init__(self, cfg: CorpusConfig) -> None:
        self.cfg = cfg
        self.sources: list[Source] = resolve_sources(cfg)
        self.read = 0
        self.skipped: collections.Counter[str] = collections.Counter()
        self.bad_files: dict[str, str] = {}
        self.renamed_ids = 0
        #: The error that ended :meth:`until_error`, if one did.
        self.error: UserError | None = None

    def __iter__(self) -> Iterator[Document]:
        self.read = self.renamed_ids = 0
        self.skipped = collections.Counter()
        self.bad_files = {}
        limit = self.cfg.limit_documents
        if limit == 0:
            return
        ids = _UniqueIds() if self.cfg.id_field else None
        try:
            for source in self.sources:
                problem = verify_source(source, self.cfg)
                if problem is not None:
                    self._bad_file(source, problem)
                    continue
                for row_number, row in _iter_rows(source, self.cfg):
                    result = _make_document(row, source.label, row_number, self.cfg)
                    if isinstance(result, str):
                        self._skip(source, row_number, result)
                        continue
                    if ids is not None:
                        self._make_unique(result, ids, source, row_number)
                    self.read += 1
                    yield result
                    if limit is not None and self.read >= limit:
                        return
        finally:
            self._log_summary()

    def until_error(self) -> Iterator[Document]:
        """The documents of this reader; a :class:`UserError` ends the stream instead of
        propagating and is kept in :attr:`error`.

        For a consumer with work in flight (the synthesize engine): raised inside its input,
        the error would abandon the requests of documents it already read; ended this way, it
        finishes them, commits them, and then reports :attr:`error`.
        """
        self.error = None
        try:
            yield from self
        except UserError as err:
            self.error = err

    def _bad_file(self, source: Source, problem: str) -> None:
        """Raise for a damaged file, or record it as skipped whole (``on_bad_file=skip``)."""
        if self.cfg.on_bad_file != "skip":
            raise UserError(
                f"cannot read {source.label}: {problem}; fix or remove the file, or set "
                "corpus.on_bad_file=skip to leave damaged files out"
            )
        self.bad_files[source.label] = problem
        if len(self.bad_files) <= MAX_LOGGED_SKIPS:
            log.warning(
                "skipped the whole of %s (corpus.on_bad_file=skip): %s", source.label, problem
            )

    def _make_unique(
        self, document: Document, ids: _UniqueIds, source: Source, row_number: int
    ) -> None:
        """Rename ``document`` to ``id#n`` if its id was already used (see module doc)."""
        unique = ids.claim(document.id)
        if unique == document.id:
            return
        self.renamed_ids += 1
        if self.renamed_ids <= MAX_LOGGED_SKIPS:
            log.warning(
                "%s row %d repeats document id %r: renamed to %r",
                source.label, row_number, document.id, unique,
            )  # fmt: skip
        document.id = unique

    def _skip(self, source: Source, row_number: int, reason: str) -> None:
        """Count one bad row; log it while few have been logged."""
        self.skipped[reason] += 1
        total = sum(self.skipped.values())
        if total <= MAX_LOGGED_SKIPS:
            log.warning("skipped %s row %d: %s", source.label, row_number, reason)
        if total == MAX_LOGGED_SKIPS:
            log.warning("further bad rows are counted, not logged; a summary follows at the end")

    def _log_summary(self) -> None:
        """One line with all skip counts, if anything was skipped, renamed or nothing read."""
        total = sum(self.skipped.values())
        if total:
            reasons = ", ".join(f"{k}={v}" for k, v in sorted(self.skipped.items()))
            log.warning(
                "corpus: read %d documents, skipped %d bad rows (%s)", self.read, total, reasons
            )
        if self.bad_files:
            log.warning(
                "corpus: skipped %d damaged files whole: %s",
                len(self.bad_files), ", ".join(sorted(self.bad_files)),
            )  # fmt: skip
        if self.renamed_ids:
            log.warning("corpus: renamed %d documents whose id repeated (id#n)", self.renamed_ids)
        if self.read == 0 and self.cfg.limit_documents != 0:
            log.warning("corpus: no documents read from %s", self.cfg.path)


class _UniqueIds:
    """Hands out unique document ids, remembering each as an 8-byte hash.

    An open-addressing table in an ``array('Q')`` (0 marks an empty slot), doubled when half
    full: 16-32 bytes per id. Two different ids sharing a 64-bit hash (odds about n^2 / 2^65,
    1e-6 for six million ids) would only cost one needless, still deterministic, rename.
    """

    def __init__(self) -> None:
        self._table = array("Q", bytes(8 * 1024))
        self._count = 0
        self._next_suffix: dict[str, int] = {}

    def claim(self, doc_id: str) -> str:
        """``doc_id`` if unused, else ``doc_id#n`` for the smallest unused ``n >= 2``.

        The cache only skips suffixes already known to be taken: every ``#k`` below its value
        was claimed, so the answer is the same with or without it.
        """
        if self._add(doc_id):
            return doc_id
        n = self._next_suffix.get(doc_id, 2)
        while not self._add(f"{doc_id}#{n}"):
            n += 1
        if len(self._next_suffix) >= SUFFIX_CACHE:
            self._next_suffix.clear()
        self._next_suffix[doc_id] = n + 1
        return f"{doc_id}#{n}"

    def _add(self, key: str) -> bool:
        """Insert ``key``; False if it was already there."""
        digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        value = int.from_bytes(digest, "little") or 1
        table = self._table
        mask = len(table) - 1
        slot = value & mask
        while True:
            held = table[slot]
            if held == 0:
                break
            if held == value:
                return False
            slot = (slot + 1) & mask
        table[slot] = value
        self._count += 1
        if 2 * self._count > len(table):
            self._grow()
        return True

    def _grow(self) -> None:
        """Double the table and reinsert every hash."""
        old = self._table
        table = self._table = array("Q", bytes(16 * len(old)))
        mask = len(table) - 1
        for value in old:
            if value:
                slot = value & mask
                while table[slot]:
                    slot = (slot + 1) & mask
                table[slot] = value


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


# --------------------------------------------------------------------------- verifying files


def verify_source(source: Source, cfg: CorpusConfig) -> str | None:
    """Why ``source`` is damaged (one line), or None when it reads cleanly to its end.

    Runs before any of its documents is emitted (see the module doc); a mismatch the user must
    fix (no such column) raises :class:`UserError` instead of being reported as damage.
    """
    if source.kind == "jsonl":
        return _verify_jsonl(source)
    if source.kind == "parquet":
        return _verify_parquet(source, cfg)
    return None


def _open_raw(source: Source) -> IO[bytes]:
    """Open a file for reading; failing to open it is the user's to fix, not damage."""
    try:
        return open(source.path, "rb")  # the caller closes it
    except OSError as err:
        raise UserError(f"cannot open {source.label}: {_one_line(err)}") from err


def _verify_jsonl(source: Source) -> str | None:
    """Decompress the whole file to nowhere, validating UTF-8 on the way."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines = 0
    try:
        with _open_raw(source) as raw, ExitStack() as stack:
            stream = decompressed(raw, source.path, stack)
            while chunk := stream.read(VERIFY_BYTES):
                pending = len(decoder.getstate()[0])
                if not (pending == 0 and chunk.isascii()):
                    try:
                        decoder.decode(chunk)
                    except UnicodeDecodeError as err:
                        at = max(0, err.start - pending)
                        line = lines + chunk.count(b"\n", 0, at) + 1
                        return f"not UTF-8 (line {line}: {err.reason})"
                lines += chunk.count(b"\n")
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                return "not UTF-8 (it ends inside a multi-byte character)"
    except _JSONL_READ_ERRORS as err:
        return f"damaged or truncated ({_one_line(err)})"
    return None


def _arrow_errors() -> tuple[type[BaseException], ...]:
    """What pyarrow raises for a file it cannot decode (imported lazily, as pyarrow is big)."""
    import pyarrow

    return (pyarrow.ArrowException, OSError, ValueError, EOFError)


def _open_parquet(source: Source) -> Any:
    """A ``ParquetFile`` that verifies page checksums (where the writer stored them)."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(source.path, page_checksum_verification=True)


def _verify_parquet(source: Source, cfg: CorpusConfig) -> str | None:
    """Decode and fully validate every batch (UTF-8 of strings included), keeping none."""
    if not os.access(source.path, os.R_OK):
        raise UserError(f"cannot open {source.label}: permission denied")
    errors = _arrow_errors()
    try:
        parquet = _open_parquet(source)
    except errors as err:
        return f"not a readable Parquet file ({_one_line(err)})"
    with parquet:
        names = parquet.schema_arrow.names
        _check_columns(source, names, cfg)
        try:
            for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=names):
                batch.validate(full=True)
        except errors as err:
            return f"damaged ({_one_line(err)})"
    return None


# --------------------------------------------------------------------------- reading rows

#: A row is a parsed mapping, or the reason (a string) it could not be parsed.
Row = dict[str, Any] | str


def _iter_rows(source: Source, cfg: CorpusConfig) -> Iterator[tuple[int, Row]]:
    """``(row_number, row)`` pairs of one source, row numbers counting from 1.

    A file that fails here passed :func:`verify_source`, so it changed while being read; that
    always raises, whatever ``on_bad_file`` says, because some of its documents are out.
    """
    if source.kind == "jsonl":
        return _guarded(source, _iter_jsonl(source), _JSONL_READ_ERRORS)
    if source.kind == "parquet":
        return _guarded(source, _iter_parquet(source, cfg), _arrow_errors())
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


class _ZstdFrames(io.RawIOBase):
    """Decode the concatenated zstd frames of ``raw``, noticing a file that ends inside one.

    ``zstandard``'s own stream reader returns what it decoded and stops quietly there, so a
    truncated ``.zst`` would read as a shorter good file; here it raises :class:`EOFError`,
    as :mod:`gzip` does for a cut ``.gz``. Bytes that are not a frame raise ``ZstdError``.
    """

    def __init__(self, raw: IO[bytes]) -> None:
        super().__init__()
        self._raw = raw
        self._dctx = zstandard.ZstdDecompressor()
        self._frame: Any = None  # the decompressobj of the frame being decoded, if any
        self._input = b""  # compressed bytes read but not yet fed (start of the next frame)
        self._output = memoryview(b"")
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._output:
            if self._done:
                return 0
            self._decode_more()
        n = min(len(buffer), len(self._output))
        buffer[:n] = self._output[:n]
        self._output = self._output[n:]
        return n

    def _decode_more(self) -> None:
        data = self._input or self._raw.read(ZSTD_INPUT_BYTES)
        self._input = b""
        if not data:
            if self._frame is not None:
                raise EOFError("zstd data ends inside a frame: the file is truncated")
            self._done = True
            return
        if self._frame is None:
            self._frame = self._dctx.decompressobj()
        self._output = memoryview(self._frame.decompress(data))
        if self._frame.eof:
            self._input = self._frame.unused_data
            self._frame = None


def decompressed(raw: IO[bytes], path: str, stack: ExitStack) -> IO[bytes]:
    """``raw`` itself, or a streaming gzip/zstd decoder over it, chosen by the file name.

    Both decoders raise (``EOFError``, ``OSError``, ``ZstdError``) when the data is cut short
    or fails its checks, instead of ending early.
    """
    lower = path.lower()
    if lower.endswith(".gz"):
        # A GzipFile is a binary file object; typeshed just does not derive it from IO.
        return cast(IO[bytes], stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb")))
    if lower.endswith((".zst", ".zstd")):
        return stack.enter_context(io.BufferedReader(_ZstdFrames(raw)))
    return raw


def _iter_jsonl(source: Source) -> Iterator[tuple[int, Row]]:
    """Parse a JSON-lines file one line at a time; blank lines are ignored."""
    with _open_raw(source) as raw, ExitStack() as stack:
        stream = decompressed(raw, source.path, stack)
        for row_number, line in enumerate(stream, start=1):
            if line.strip():
                yield row_number, _parse_line(line, first=row_number == 1)


def _parse_line(raw: bytes, first: bool) -> Row:
    """A JSON object from one line, or the reason it is not one.

    The file passed UTF-8 validation, so a decode error here means it changed underneath us
    and propagates (as a read failure) rather than becoming a counted row. Valid UTF-8 cannot
    hold an unpaired UTF-16 surrogate, but a JSON escape (``\\ud800``) can, and no UTF-8
    writer downstream could encode it: such a row is ``invalid_unicode``. Only rows with such
    an escape (astral characters are written as pairs of them) pay for that check.
    """
    line = raw.decode("utf-8")
    if first:
        line = line.removeprefix("\ufeff")
    try:
        value = json.loads(line)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        return "invalid_json"
    if not isinstance(value, dict):
        return "not_an_object"
    if b"\\ud" in raw or b"\\uD" in raw:  # rare (astral characters): check the values
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except (UnicodeEncodeError, ValueError, RecursionError):
            return "invalid_unicode"
    return value


def text_column(names: Collection[str], text_field: str) -> str:
    """The column to read the text from: ``text_field`` if present; else, when it is our
    default ``text``, the released naming's ``Text`` if present; else ``text_field`` (absent).

    Exact names win, so a source with both ``text`` and ``Text`` reads ``text``; any other
    configured name is used as given, never guessed.
    """
    if text_field in names or text_field != DEFAULT_TEXT_FIELD:
        return text_field
    released = RELEASED_COLUMNS[DEFAULT_TEXT_FIELD]
    return released if released in names else text_field


def _check_columns(source: Source, columns: Iterable[str], cfg: CorpusConfig) -> None:
    """Fail early when a table lacks the configured text or id column."""
    names = list(columns)
    text_field = text_column(names, cfg.text_field)
    for key, field_name in (("text_field", text_field), ("id_field", cfg.id_field)):
        if field_name is not None and field_name not in names:
            raise UserError(
                f"{source.label} has no column {field_name!r} (columns: {', '.join(names)}); "
                f"set corpus.{key}"
            )


def _iter_parquet(source: Source, cfg: CorpusConfig) -> Iterator[tuple[int, Row]]:
    """Stream a Parquet file in batches of :data:`BATCH_ROWS` rows."""
    try:
        parquet = _open_parquet(source)
    except _arrow_errors() as err:
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
    text_field = text_column(row, cfg.text_field)
    text: Any = row.get(text_field)  # any JSON value until text_problem has checked it
    if reason := text_problem(text):
        return reason
    if cfg.id_field:
        raw_id = row.get(cfg.id_field)
        if raw_id is None or (isinstance(raw_id, str) and not raw_id.strip()):
            return "missing_id"
        doc_id = _id_string(raw_id)
        if doc_id is None:
            return "invalid_id"
    else:
        doc_id = text_hash(f"{label}:{row_number}")
    skip = (text_field, cfg.id_field)
    metadata = {str(k): _jsonable(v) for k, v in row.items() if k not in skip}
    return Document(id=doc_id, text=text, metadata=metadata)


def _id_string(value: Any) -> str | None:
    """An id value as a string: strings and integers (an integral float, as Parquet files
    written from pandas hold them, counts as one); anything else is not an id."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else None
    if isinstance(value, int):
        try:
            return str(value)
        except ValueError:  # more digits than Python will print
            return None
    return None


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
