"""The comparison table in the paper's layout: our runs beside the paper's reported rows.

Rows come from ``results.json`` files (ours) and :mod:`mind_nemo.evaluate.paper` (reference).
Each of our rows says which suite, data and question limit produced it, because a fixture or
``limit=`` score must never be read as a benchmark number next to the paper's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mind_nemo.core.errors import UserError
from mind_nemo.evaluate.config import COLUMNS
from mind_nemo.evaluate.paper import paper_rows
from mind_nemo.evaluate.runner import RESULTS_FILE

#: Table columns: the paper's five plus Avg.
TABLE_COLUMNS: dict[str, str] = {**COLUMNS, "avg": "Avg"}


def read_results(path: str) -> dict[str, Any]:
    """A run folder's results.json (or the file itself); missing or unreadable is one error."""
    file = Path(path).expanduser()
    if file.is_dir():
        file = file / RESULTS_FILE
    if not file.is_file():
        raise UserError(f"no evaluate results at {path} (expected {file})")
    try:
        results = json.loads(file.read_text())
        if not isinstance(results["columns"], dict):  # a results file not written by us
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise UserError(f"{file} is not a mind_nemo.evaluate results.json") from None
    return results


def run_row(results: dict[str, Any]) -> dict[str, Any]:
    """One of our runs as a table row, with a note on what it was measured on."""
    notes = [f"suite={results.get('suite')}"]
    if results.get("data_dir") not in (None, "hub"):
        notes.append("local data")
    if results.get("limit"):
        notes.append(f"limit={results['limit']}")
    if results.get("skipped"):
        notes.append(f"skipped {len(results['skipped'])} tasks")
    return {
        "label": results.get("name", "?"),
        "source": ", ".join(notes),
        "columns": {c: results["columns"].get(c) for c in TABLE_COLUMNS},
    }


def build_table(run_paths: list[str], with_paper: bool = True) -> dict[str, Any]:
    """``{"columns": {...}, "rows": [...]}``: the paper's reference rows first, then ours."""
    if not run_paths:
        raise UserError("give at least one run: runs=[DIR_A,DIR_B]")
    ours = [run_row(read_results(p)) for p in run_paths]
    reference = paper_rows() if with_paper else []
    for row in reference:
        row["reference"] = True
    for row in ours:
        row["reference"] = False
    return {"columns": TABLE_COLUMNS, "rows": [*reference, *ours]}


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def to_markdown(table: dict[str, Any]) -> str:
    """A markdown table in the paper's column order, reference rows marked as the paper's."""
    labels = list(table["columns"].values())
    lines = [
        "| Run | " + " | ".join(labels) + " | Measured on |",
        "|---|" + "---:|" * len(labels) + "---|",
    ]
    for row in table["rows"]:
        cells = [_cell(row["columns"].get(c)) for c in table["columns"]]
        label = f"*{row['label']}*" if row["reference"] else f"**{row['label']}**"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {row['source']} |")
    foot = (
        "\nAvg = mean of GSM8K, MATH, MMLU and GR (MMLU-STEM is part of MMLU). Rows in italics "
        "are the paper's reported numbers (7B model, continued pretraining on OWM-4B); bold rows "
        "are ours. Scores from `suite=fixtures` or with a `limit` only show that the pipeline "
        "runs and are not comparable with the paper's.\n"
    )
    return "\n".join(lines) + "\n" + foot
