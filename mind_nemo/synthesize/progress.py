"""The progress bar of a synthesize run: conversations/s, output tokens/s, failures, ETA."""

from __future__ import annotations

import sys

from tqdm import tqdm

from mind_nemo.synthesize.accounting import SessionStats


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
