"""Read one unit of a source as worker tasks of about ``batch_bytes`` of text each.

Plain and compressed JSONL is passed on as raw blocks of whole lines (workers parse the JSON in
parallel); a unit that is a byte range owns exactly the lines that *start* inside it, so adjacent
ranges never share or lose a line. Parquet, saved Hugging Face datasets and Hub datasets are read
as Arrow batches of the needed columns only, checked and filtered here, and passed on as texts.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import IO, Any

from mind_nemo.core.corpus import Source, decompressed, load_saved_dataset
from mind_nemo.core.errors import UserError
from mind_nemo.core.records import text_problem
from mind_nemo.mix.config import SourceConfig
from mind_nemo.mix.worker import STYLE_FIELD, Task

#: Rows per Arrow slice read from Parquet / saved datasets.
ARROW_ROWS = 2048


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


def _open_stream(path: str, stack: ExitStack) -> IO[bytes]:
    raw = stack.enter_context(open(path, "rb"))  # noqa: SIM115 (closed by the stack)
    return decompressed(raw, path, stack)


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


def load_hf_disk(source: Source, cfg: SourceConfig) -> Any:
    """The saved dataset behind ``source`` (split ``cfg.hf_split``), memory-mapped."""
    return load_saved_dataset(source.path, cfg.hf_split)


def _hf_disk_tables(
    unit: Unit, cfg: SourceConfig, text_field: str, styles: tuple[str, ...]
) -> Iterator[Any]:
    data = load_hf_disk(unit.source, cfg)
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
    size, filtered = 0, 0
    skipped: Counter[str] = Counter()
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
