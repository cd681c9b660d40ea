"""Turn a mix source (corpus, filter variant, styles of a run) into ordered units of raw input.

A *unit* is the smallest piece of a source a shard can own: a byte range of a plain JSONL file
(lines are cut Hadoop-style: a range owns every line that *starts* inside it), a whole
compressed JSONL or Parquet file, a row range of a saved Hugging Face dataset, or a Hub dataset
as a whole. Units are listed in input order and a shard owns a contiguous run of them, so the
shards of a source, merged in shard order, hold exactly the documents of a single run in the
same order.

Reading a unit yields worker tasks of about ``batch_bytes`` of text: raw JSONL blocks (workers
parse them) or lists of texts taken from Arrow columns (filtered and checked here).
"""

from __future__ import annotations

import gzip
import io
import os
import re
import zlib
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from mind_nemo.config import CorpusConfig
from mind_nemo.corpus import Source, resolve_sources
from mind_nemo.errors import UserError
from mind_nemo.mix.config import SOURCE_KINDS, SourceConfig
from mind_nemo.mix.worker import STYLE_FIELD, Task, text_problem

#: Packaged samples a corpus source can name instead of a path.
PACKAGED = {"sample_general": "general_web_sample.jsonl"}
#: Rows per Arrow slice read from Parquet / saved datasets.
ARROW_ROWS = 2048
#: Rows per unit of a saved Hugging Face dataset.
HF_ROWS_PER_UNIT = 200_000
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Unit:
    """A piece of one input: bytes [start, end) of a JSONL file, rows of a dataset, or all."""

    source: Source
    start: int = 0
    end: int | None = None


@dataclass
class Chunk:
    """One worker task plus what the main process already knows about it."""

    task: Task
    #: Input bytes (or characters, for Arrow sources) this chunk consumed, for progress.
    size: int
    skipped: Counter[str] = field(default_factory=Counter)
    filtered: int = 0


@dataclass
class ResolvedSource:
    """A source ready to read: its units in order, plus what identifies its input."""

    name: str
    cfg: SourceConfig
    units: list[Unit]
    #: Inputs with sizes and modification times: a change means the output must be redone.
    inputs: list[dict[str, Any]]

    @property
    def input_bytes(self) -> int:
        return sum(int(i.get("bytes") or 0) for i in self.inputs)

    def identity(self) -> dict[str, Any]:
        cfg = self.cfg
        return {
            "kind": cfg.kind,
            "variant": cfg.variant,
            "styles": sorted(cfg.styles),
            "text_field": cfg.text_field,
            "hf_split": cfg.hf_split,
            "hf_name": cfg.hf_name,
            "limit_documents": cfg.limit_documents,
            "units": [[u.source.label, u.start, u.end] for u in self.units],
            "inputs": self.inputs,
        }


def check_name(name: str) -> None:
    if not _NAME.match(name):
        raise UserError(
            f"source name {name!r} must be letters, digits, '_', '-' or '.' (it names files)"
        )


def resolve(name: str, cfg: SourceConfig, split_bytes: int) -> ResolvedSource:
    """Find the files of a source and cut them into units; a mistake is one clear line."""
    check_name(name)
    if cfg.kind not in SOURCE_KINDS:
        raise UserError(
            f"source {name!r}: unknown kind {cfg.kind!r}; use one of {', '.join(SOURCE_KINDS)}"
        )
    if not cfg.path:
        raise UserError(f"sources.{name}.path is not set (a corpus path or a run folder)")
    if cfg.limit_documents is not None and cfg.limit_documents < 0:
        raise UserError(f"sources.{name}.limit_documents must be >= 0 or null")
    if split_bytes < 1:
        raise UserError(f"split_bytes must be >= 1, got {split_bytes}")
    try:
        sources = resolve_sources(_corpus_config(name, cfg))
    except UserError as err:
        raise UserError(f"source {name!r}: {err}") from None
    units = [u for s in sources for u in _units(s, split_bytes, cfg)]
    return ResolvedSource(name, cfg, units, [_describe(s) for s in sources])


def _corpus_config(name: str, cfg: SourceConfig) -> CorpusConfig:
    """The corpus reader's view of a source: where its files are and how they look."""
    path = str(cfg.path)
    if cfg.kind == "corpus":
        if path in PACKAGED:
            path = str(Path(__file__).resolve().parents[1] / "data" / PACKAGED[path])
        return CorpusConfig(
            path=path,
            format=cfg.format,
            text_field=cfg.text_field,
            hf_split=cfg.hf_split,
            hf_name=cfg.hf_name,
        )
    run = Path(os.path.expanduser(path))
    if not run.is_dir():
        raise UserError(f"source {name!r}: run folder not found: {path}")
    if cfg.kind == "variant":
        if not cfg.variant:
            raise UserError(f"source {name!r}: kind=variant needs variant=longest|all|concat|raw")
        folder = run / "variants" / cfg.variant
        if not folder.is_dir():
            found = sorted(p.name for p in (run / "variants").glob("*") if p.is_dir())
            raise UserError(
                f"source {name!r}: {run} has no variant {cfg.variant!r} "
                f"(found: {', '.join(found) or 'none'}; run python -m mind_nemo.filter first)"
            )
        return CorpusConfig(path=str(folder / "part-*.jsonl"), format="jsonl")
    folder = run / "conversations"
    if not folder.is_dir():
        raise UserError(f"source {name!r}: {run} has no conversations/ folder")
    return CorpusConfig(path=str(folder / "shard-*.jsonl"), format="jsonl")


def _describe(source: Source) -> dict[str, Any]:
    if source.kind == "hf_hub":
        return {"path": source.label}
    path = Path(source.path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    stats = [p.stat() for p in files]
    return {
        "path": source.label,
        "bytes": sum(s.st_size for s in stats),
        "mtime_ns": max((s.st_mtime_ns for s in stats), default=0),
    }


def _units(source: Source, split_bytes: int, cfg: SourceConfig) -> list[Unit]:
    if source.kind == "jsonl" and not _compressed(source.path):
        size = os.path.getsize(source.path)
        starts = range(0, max(size, 1), split_bytes)
        return [Unit(source, s, min(s + split_bytes, size)) for s in starts]
    if source.kind == "hf_disk":
        rows = len(_load_hf_disk(source, cfg))
        step = HF_ROWS_PER_UNIT
        return [Unit(source, s, min(s + step, rows)) for s in range(0, max(rows, 1), step)]
    return [Unit(source)]


def shard_units(units: list[Unit], shard_id: int, num_shards: int) -> list[Unit]:
    """The contiguous run of units shard ``shard_id`` of ``num_shards`` owns."""
    n = len(units)
    return units[shard_id * n // num_shards : (shard_id + 1) * n // num_shards]


# --------------------------------------------------------------------------- reading


def read_unit(unit: Unit, cfg: SourceConfig, batch_bytes: int) -> Iterator[Chunk]:
    """Worker tasks of about ``batch_bytes`` each, in input order."""
    styles = tuple(cfg.styles) if cfg.kind == "conversations" else ()
    text_field = cfg.text_field if cfg.kind == "corpus" else "text"
    kind = unit.source.kind
    if kind == "jsonl":
        for block in _jsonl_blocks(unit, batch_bytes):
            yield Chunk(("jsonl", block, text_field, styles), len(block))
    elif kind == "parquet":
        yield from _text_chunks(
            _parquet_tables(unit, text_field, styles), text_field, styles, batch_bytes
        )
    elif kind == "hf_disk":
        yield from _text_chunks(
            _hf_disk_tables(unit, cfg, text_field, styles), text_field, styles, batch_bytes
        )
    else:
        yield from _text_chunks(
            _hf_hub_tables(unit, cfg, text_field, styles), text_field, styles, batch_bytes
        )


def _compressed(path: str) -> bool:
    return path.lower().endswith((".gz", ".zst", ".zstd"))


def _open_stream(path: str, stack: ExitStack) -> IO[bytes]:
    raw = stack.enter_context(open(path, "rb"))  # noqa: SIM115 (closed by the stack)
    lower = path.lower()
    if lower.endswith(".gz"):
        return stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))
    if lower.endswith((".zst", ".zstd")):
        import zstandard

        reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
        return stack.enter_context(io.BufferedReader(reader))
    return raw


def _jsonl_blocks(unit: Unit, batch_bytes: int) -> Iterator[bytes]:
    """Blocks of whole lines: every line that starts in [start, end) and no other."""
    path = unit.source.path
    with ExitStack() as stack:
        try:
            stream = _open_stream(path, stack)
            end = unit.end if unit.end is not None else float("inf")
            pos = unit.start
            if pos > 0:
                stream.seek(pos - 1)
                pos += len(stream.readline()) - 1  # skip the line that began before us
            pending = b""
            while pos < end:
                data = stream.read(batch_bytes)
                if not data:
                    if pending:
                        yield pending
                    return
                buf = pending + data
                cut = buf.rfind(b"\n") + 1
                if cut == 0:
                    pending = buf  # a line longer than a batch: keep reading
                    continue
                block, pending = buf[:cut], buf[cut:]
                if pos + len(block) > end:  # lines at or after ``end`` belong to the next unit
                    block = block[: block.index(b"\n", int(end) - pos - 1) + 1]
                    yield block
                    return
                yield block
                pos += len(block)
        except (OSError, EOFError, zlib.error) as err:
            raise UserError(f"cannot read {unit.source.label}: {err}") from None
        except Exception as err:  # zstd raises its own error type for corrupt frames
            if type(err).__module__.startswith("zstandard"):
                raise UserError(f"cannot read {unit.source.label}: {err}") from None
            raise


def _columns(text_field: str, styles: tuple[str, ...]) -> list[str]:
    return [text_field, STYLE_FIELD] if styles else [text_field]


def _check_columns(label: str, names: list[str], wanted: list[str]) -> None:
    missing = [c for c in wanted if c not in names]
    if missing:
        raise UserError(
            f"{label} has no column {missing[0]!r} (columns: {', '.join(names)}); "
            "set the source's text_field"
        )


def _parquet_tables(unit: Unit, text_field: str, styles: tuple[str, ...]) -> Iterator[Any]:
    import pyarrow
    import pyarrow.parquet as pq

    columns = _columns(text_field, styles)
    try:
        with pq.ParquetFile(unit.source.path) as parquet:
            _check_columns(unit.source.label, parquet.schema_arrow.names, columns)
            yield from parquet.iter_batches(batch_size=ARROW_ROWS, columns=columns)
    except (pyarrow.ArrowException, OSError) as err:
        raise UserError(f"cannot read {unit.source.label}: {err}") from None


def _load_hf_disk(source: Source, cfg: SourceConfig) -> Any:
    import datasets

    try:
        data = datasets.load_from_disk(source.path)
    except Exception as err:  # any failure here means an unreadable folder
        raise UserError(f"cannot load saved dataset {source.path}: {err}") from None
    if isinstance(data, datasets.DatasetDict):
        if cfg.hf_split not in data:
            raise UserError(f"saved dataset {source.path} has no split {cfg.hf_split!r}")
        data = data[cfg.hf_split]
    return data


def _hf_disk_tables(
    unit: Unit, cfg: SourceConfig, text_field: str, styles: tuple[str, ...]
) -> Iterator[Any]:
    data = _load_hf_disk(unit.source, cfg)
    columns = _columns(text_field, styles)
    _check_columns(unit.source.label, data.column_names, columns)
    table = data.select_columns(columns).with_format("arrow")
    end = unit.end if unit.end is not None else len(data)
    for start in range(unit.start, end, ARROW_ROWS):
        yield table[start : min(start + ARROW_ROWS, end)]


def _hf_hub_tables(
    unit: Unit, cfg: SourceConfig, text_field: str, styles: tuple[str, ...]
) -> Iterator[Any]:
    import datasets
    import pyarrow as pa

    try:
        data = datasets.load_dataset(
            unit.source.path, name=cfg.hf_name, split=cfg.hf_split, streaming=True
        )
    except Exception as err:  # network, auth, missing dataset, bad split...
        raise UserError(f"cannot load Hugging Face dataset {unit.source.path!r}: {err}") from None
    columns = _columns(text_field, styles)
    if data.column_names is not None:
        _check_columns(unit.source.label, list(data.column_names), columns)
    for batch in data.select_columns(columns).iter(batch_size=ARROW_ROWS):
        yield pa.table({c: batch[c] for c in columns})


def _text_chunks(
    tables: Iterator[Any], text_field: str, styles: tuple[str, ...], batch_bytes: int
) -> Iterator[Chunk]:
    """Texts from Arrow batches, checked and filtered here, grouped into ~batch_bytes tasks."""
    texts: list[str] = []
    size, skipped, filtered = 0, Counter(), 0
    for table in tables:
        values = table.column(text_field).to_pylist()
        keep = table.column(STYLE_FIELD).to_pylist() if styles else None
        for i, text in enumerate(values):
            if keep is not None and keep[i] not in styles:
                filtered += 1
                continue
            reason = text_problem(text)
            if reason:
                skipped[reason] += 1
                continue
            texts.append(text)
            size += len(text)
        if size >= batch_bytes:
            yield Chunk(("texts", texts), size, skipped, filtered)
            texts, size, skipped, filtered = [], 0, Counter(), 0
    if texts or skipped or filtered:
        yield Chunk(("texts", texts), size, skipped, filtered)
