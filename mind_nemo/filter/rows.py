"""Garbage in, counted out: read conversation rows without trusting them, and build output rows.

Rows come from JSONL shards or from the Parquet files of an export folder, in our naming or the
released Nemotron-MIND one (``Text``, ``Conversational Style``, ``Document ID``), which
:func:`~mind_nemo.core.released.from_released` maps to ours (a released row is context 0 of its
Document ID). A line that is not a JSON object is ``malformed_json``; an object without a usable
``text``, ``conversational_style``, ``document_id`` or ``context_index`` (in either naming), or
with fields of both namings, is ``malformed_row``. Both are counted per style (``<unknown>``
when the style itself is missing), logged (the first few in full, then a count) and written to
the rejects file; neither stops the stage.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mind_nemo.core.errors import UserError
from mind_nemo.core.jsonl import read_lines
from mind_nemo.core.released import RELEASED_COLUMNS, from_released, naming_of
from mind_nemo.filter.rules.base import Item

log = logging.getLogger(__name__)
UNKNOWN_STYLE = "<unknown>"
#: Malformed lines logged in full per file before the rest are only counted.
LOG_FIRST = 5


#: Parquet rows read per batch from an export file.
BATCH_ROWS = 1024


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | None, str]]:
    """``(row number, row in our naming or None, raw line)`` of a JSONL shard or Parquet file.

    A row in the released naming is mapped to ours; any other row is passed on as it is, for
    :func:`row_problem` to judge. Parquet rows have no raw line (``""``).
    """
    if path.suffix == ".parquet":
        yield from _parquet_rows(path)
        return
    for number, row, raw in read_lines(path):
        yield number, None if row is None else from_released(row), raw


def _parquet_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | None, str]]:
    number = 0
    try:
        with pq.ParquetFile(path) as parquet:
            for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
                for row in batch.to_pylist():
                    number += 1
                    yield number, from_released(row), ""
    except (OSError, pa.ArrowException) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise UserError(f"cannot read {path} after {number} rows: {first}") from err


def row_problem(row: dict[str, Any]) -> str | None:
    """Why a parsed row cannot be filtered, or None if it can."""
    naming = naming_of(row)
    if naming != "ours" and naming != "released":
        ours, released = ", ".join(RELEASED_COLUMNS), ", ".join(RELEASED_COLUMNS.values())
        which = "both namings" if naming == "both" else "neither naming"
        return f"has fields of {which} (ours: {ours}; released: {released})"
    if not isinstance(row.get("text"), str):
        return "text is missing or not a string"
    if not isinstance(row.get("conversational_style"), str) or not row["conversational_style"]:
        return "conversational_style is missing"
    if not isinstance(row.get("document_id"), (str, int)) or isinstance(row["document_id"], bool):
        return "document_id is missing"
    index = row.get("context_index")
    if not isinstance(index, int) or isinstance(index, bool):
        return "context_index is missing or not an integer"
    for name in ("sample", "prompt_tokens", "completion_tokens", "cached_tokens"):
        value = row.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            return f"{name} is not an integer"
    return None


def style_of(row: dict[str, Any] | None) -> str:
    style = row.get("conversational_style") if row else None
    return style if isinstance(style, str) and style else UNKNOWN_STYLE


class MalformedLog:
    """Log the first few bad lines of a file in full, then count the rest."""

    def __init__(self, path: Path) -> None:
        self.path, self.count = path, 0

    def add(self, number: int, problem: str) -> None:
        self.count += 1
        if self.count <= LOG_FIRST:
            log.warning("%s:%d: skipping a malformed row (%s)", self.path, number, problem)

    def close(self) -> None:
        if self.count > LOG_FIRST:
            log.warning("%s: %d malformed rows in all", self.path, self.count)


def kept_row(item: Item) -> dict[str, Any]:
    """The input row with the filtered text and what the filters learned about it."""
    row = dict(item.row)
    row["text"] = item.text
    if item.original_text is not None:
        row["text_original"] = item.original_text
    dialogue = item.dialogue
    row["tokens"] = item.tokens
    row["speakers"] = dialogue.speakers
    row["turns"] = len(dialogue.spoken)
    row["quality"] = dict(item.metrics)
    if item.notes:
        row["filter_notes"] = list(item.notes)
    row.update(item.fields)
    return row


def rejected_row(row: dict[str, Any], reason: str, **extra: Any) -> dict[str, Any]:
    return {**row, "reject_reason": reason, **extra}
