"""The progress bar of a synthesize run: conversations/s, output tokens/s, failures, ETA.

It is updated once per answer, so it must cost next to nothing per call: the postfix (a
formatted string) is rebuilt at most twice a second, and a disabled bar costs one check. A
disabled bar is no tqdm at all: even with ``disable=True`` tqdm starts its monitor thread, and
importing it costs about 10 ms of start-up.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from mind_nemo.synthesize.accounting import SessionStats

#: Seconds between postfix refreshes (tqdm redraws at most this often anyway).
REFRESH_S = 0.5


class GenerationProgress:
    """rows/s from tqdm itself; output tokens/s and failures in the postfix; ETA when a total
    is known (a ``limit`` was given)."""

    def __init__(self, stats: SessionStats, total: int | None, enabled: bool = True) -> None:
        self.stats = stats
        self.enabled = enabled
        self._next_postfix = 0.0
        self.bar: Any = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total,
                unit="conv",
                desc="synthesize",
                file=sys.stderr,
                dynamic_ncols=True,
                mininterval=REFRESH_S,
            )

    def update(self) -> None:
        if not self.enabled:
            return
        self.bar.update(1)
        now = time.monotonic()
        if now >= self._next_postfix:
            self._next_postfix = now + REFRESH_S
            self.bar.set_postfix(
                tok_s=f"{self.stats.completion_tokens / self.stats.elapsed_s:.1f}",
                failed=self.stats.failed,
                refresh=False,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
