"""The merge's Parquet export: which columns and folders each ``export.schema`` writes.

``mind_nemo`` (the default) keeps our names and the provenance a user needs to trace a row back
(context index, sample, model, prompt hash, token counts, finish reason). ``nemotron_mind``
writes exactly the release's three columns and upper-case style folders, so our files and the
released ones have one schema and load together; the provenance stays in the run's
``conversations/`` shards (and in a ``mind_nemo`` export of the same run).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mind_nemo.core.released import RELEASED_COLUMNS, released_style
from mind_nemo.core.run_folder import publish, temp_path

#: Provenance columns of the ``mind_nemo`` schema, after the three released fields.
PROVENANCE: tuple[tuple[str, str], ...] = (
    ("context_index", "int64"),
    ("sample", "int64"),
    ("model", "string"),
    ("prompt_hash", "string"),
    ("prompt_tokens", "int64"),
    ("completion_tokens", "int64"),
    ("finish_reason", "string"),
)
_ARROW = {"string": pa.string(), "int64": pa.int64()}


@dataclass(frozen=True)
class Column:
    """One export column: its name in the file, the record field it holds, its type."""

    name: str
    field: str
    dtype: str


def export_columns(schema: str) -> list[Column]:
    """The columns ``schema`` writes, in order."""
    if schema == "nemotron_mind":
        return [Column(RELEASED_COLUMNS[f], f, "string") for f in RELEASED_COLUMNS]
    released = [Column(f, f, "string") for f in RELEASED_COLUMNS]
    return released + [Column(f, f, dtype) for f, dtype in PROVENANCE]


def style_folder(style: str, schema: str) -> str:
    """The folder (and ``Conversational Style`` value, and card config) of a style."""
    return released_style(style) if schema == "nemotron_mind" else style


def arrow_schema(schema: str) -> pa.Schema:
    return pa.schema([(c.name, _ARROW[c.dtype]) for c in export_columns(schema)])


def export_value(row: dict[str, Any], column: Column, schema: str) -> Any:
    """A row's value for one column (None where an older shard lacks a provenance field)."""
    value = row.get(column.field)
    if column.field == "conversational_style":
        return style_folder(str(value), schema)
    if column.dtype == "int64":
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    return None if value is None else str(value)


class StyleExport:
    """Buffered Parquet writer for one style; files appear under their final name when full."""

    def __init__(self, folder: Path, rows_per_file: int, schema: str) -> None:
        self.folder, self.rows_per_file, self.schema = folder, rows_per_file, schema
        self.columns = export_columns(schema)
        self.arrow = arrow_schema(schema)
        self.buffer: dict[str, list[Any]] = {c.name: [] for c in self.columns}
        self.files: list[Path] = []
        self.rows = 0

    def add(self, row: dict[str, Any]) -> None:
        for column in self.columns:
            self.buffer[column.name].append(export_value(row, column, self.schema))
        self.rows += 1
        if len(self.buffer[self.columns[0].name]) >= self.rows_per_file:
            self.flush()

    def flush(self) -> None:
        if not self.buffer[self.columns[0].name]:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / f"part-{len(self.files):05d}.parquet"
        tmp = temp_path(target)
        pq.write_table(pa.table(self.buffer, schema=self.arrow), tmp)
        publish(tmp, target)
        self.files.append(target)
        self.buffer = {c.name: [] for c in self.columns}
