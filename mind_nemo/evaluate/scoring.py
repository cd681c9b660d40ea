"""From lm-eval's raw results to our results.json: per-task scores and the paper's columns.

lm-eval reports fractions keyed ``"metric,filter"`` per task and group. The paper reports
percentages in five columns plus their average, so we scale to 0-100 and read each column as
its suite says: one group's score (``mmlu``), the mean of several tasks (General Reasoning), or
a question-weighted pool of subjects (MMLU and MATH when run subject by subject).
"""

from __future__ import annotations

import math
from statistics import fmean
from typing import Any

from mind_nemo.evaluate.config import AVG_COLUMNS, COLUMNS, ColumnConfig

_SKIP_KEYS = ("alias", "sample_len", "sample_count")


def _percent(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return 100.0 * float(value)
    return None


def task_scores(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{task: {"metrics": {"acc,none": 61.2, ...}, "n": 1172}}`` for every task and group."""
    out: dict[str, dict[str, Any]] = {}
    for name, metrics in raw.get("results", {}).items():
        scores = {
            key: pct
            for key, value in metrics.items()
            if key not in _SKIP_KEYS
            and "_stderr" not in key
            and (pct := _percent(value)) is not None
        }
        stderr = {
            key.replace("_stderr", ""): pct
            for key, value in metrics.items()
            if "_stderr" in key and (pct := _percent(value)) is not None
        }
        out[name] = {"metrics": scores, "stderr": stderr, "n": question_count(raw, name)}
        if name in raw.get("n-shot", {}):
            out[name]["num_fewshot"] = raw["n-shot"][name]
    return out


def question_count(raw: dict[str, Any], name: str) -> int:
    """Questions scored for a task, or summed over a group's tasks."""
    counts = raw.get("n-samples", {})
    if name in counts:
        return int(counts[name].get("effective", counts[name].get("original", 0)))
    members = raw.get("group_subtasks", {}).get(name, [])
    return sum(question_count(raw, m) for m in members)


def column_score(raw: dict[str, Any], column: ColumnConfig) -> tuple[float | None, str | None]:
    """A column's percentage, or None and why (a task not run or a metric not reported)."""
    values: list[float] = []
    weights: list[int] = []
    for key, metric in column.metrics.items():
        found = raw.get("results", {}).get(key, {})
        value = _percent(found.get(metric))
        if value is None:
            why = "not run" if not found else f"no metric {metric!r}"
            return None, f"{key}: {why}"
        values.append(value)
        weights.append(question_count(raw, key))
    if not values:
        return None, "no tasks"
    if column.aggregate == "weighted" and sum(weights) > 0:
        return sum(v * w for v, w in zip(values, weights, strict=True)) / sum(weights), None
    return fmean(values), None


def paper_columns(
    raw: dict[str, Any], columns: dict[str, ColumnConfig]
) -> tuple[dict[str, float | None], dict[str, str]]:
    """The five columns plus ``avg`` (mean of GSM8K, MATH, MMLU, GR; None if one is missing),
    and a reason for each column left empty."""
    scores: dict[str, float | None] = {}
    missing: dict[str, str] = {}
    for column_id in COLUMNS:
        if column_id not in columns:
            scores[column_id], missing[column_id] = None, "not in suite"
            continue
        score, why = column_score(raw, columns[column_id])
        scores[column_id] = score
        if why:
            missing[column_id] = why
    parts = [scores[c] for c in AVG_COLUMNS]
    scores["avg"] = fmean(parts) if all(p is not None for p in parts) else None  # type: ignore[arg-type]
    return scores, missing
