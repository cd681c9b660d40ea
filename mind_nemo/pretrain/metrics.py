"""Training metrics to ``metrics.jsonl`` (one whole line per event) and TensorBoard.

Only the rank that holds the loss writes: the last pipeline stage's first tensor- and
data-parallel rank. A resumed run appends: it first writes a ``resumed_from`` line, so a reader
that keeps the last row per step sees the resumed values for re-done steps.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from mind_nemo.core.jsonl import iter_jsonl, repair_tail


class MetricsLogger:
    """Append-only JSONL + TensorBoard scalars; a no-op on ranks that do not log."""

    def __init__(self, out_dir: Path, enabled: bool, tensorboard: bool) -> None:
        self.enabled = enabled
        self.path = out_dir / "metrics.jsonl"
        self.writer = None
        if enabled:
            out_dir.mkdir(parents=True, exist_ok=True)
            repair_tail(self.path)
            if tensorboard:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(log_dir=str(out_dir / "tensorboard"))

    def log(self, step: int, values: dict[str, Any]) -> None:
        if not self.enabled:
            return
        row: dict[str, Any] = {"step": step, "time": round(time.time(), 3)}
        for key, value in values.items():
            row[key] = None if isinstance(value, float) and math.isnan(value) else value
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        if self.writer is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)) and not math.isnan(value):
                    tag = key if key.startswith("val_") else f"train/{key}"
                    self.writer.add_scalar(tag.replace("val_", "val/"), value, step)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Every complete row of a ``metrics.jsonl`` (a torn last line from a kill is skipped)."""
    return list(iter_jsonl(path))


def last_per_step(rows: list[dict[str, Any]], key: str) -> dict[int, float]:
    """``step -> value`` for rows that have ``key``, later rows winning (resumed runs)."""
    return {r["step"]: r[key] for r in rows if r.get(key) is not None}
