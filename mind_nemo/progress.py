"""A progress bar for long stages and the small summary table they print at the end."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from tqdm import tqdm

from mind_nemo.accounting import SessionStats


class GenerationProgress:
    """rows/s from tqdm itself; output tokens/s and failures in the postfix; ETA when a total
    is known (a ``limit`` was given)."""

    def __init__(self, stats: SessionStats, total: int | None, enabled: bool = True) -> None:
        self.stats = stats
        self.bar = tqdm(
            total=total,
            unit="conv",
            desc="synthesize",
            disable=not enabled,
            file=sys.stderr,
            dynamic_ncols=True,
            mininterval=0.5,
        )

    def update(self) -> None:
        self.bar.update(1)
        self.bar.set_postfix(
            tok_s=f"{self.stats.completion_tokens / self.stats.elapsed_s:.1f}",
            failed=self.stats.failed,
            refresh=False,
        )

    def close(self) -> None:
        self.bar.close()


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain aligned text table (numbers right-aligned) for terminals and logs."""
    cells = [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]

    def line(values: Sequence[str], raw: Sequence[Any] | None = None) -> str:
        parts = []
        for i, value in enumerate(values):
            numeric = raw is not None and isinstance(raw[i], (int, float))
            parts.append(value.rjust(widths[i]) if numeric else value.ljust(widths[i]))
        return "  ".join(parts).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out += [line(c, r) for c, r in zip(cells, rows, strict=True)]
    return "\n".join(out)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
