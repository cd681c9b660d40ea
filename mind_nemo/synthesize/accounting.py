"""Token and throughput accounting for a generation session, and the GPU-hours projection.

The numbers a data builder plans with: prompt, cached and completion tokens per style,
requests/s, output tokens/s, failures by reason, a throughput timeline, and what the same job
would cost at full scale (e.g. OpenWebMath's 14.7B tokens x 7 styles) given the measured output
tokens/s per GPU.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class StyleTally:
    requests: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    failures: int = 0


@dataclass
class SessionStats:
    """What this process did (not counting work committed by earlier sessions)."""

    started: float = field(default_factory=time.monotonic)
    by_style: dict[str, StyleTally] = field(default_factory=dict)
    failure_reasons: Counter = field(default_factory=Counter)
    timeline: list[tuple[float, int, int]] = field(default_factory=list)
    timeline_every_s: float = 5.0
    _last_mark: float = 0.0

    def style(self, name: str) -> StyleTally:
        return self.by_style.setdefault(name, StyleTally())

    def record_success(self, style: str, prompt: int, cached: int, completion: int) -> None:
        tally = self.style(style)
        tally.requests += 1
        tally.prompt_tokens += prompt
        tally.cached_tokens += cached
        tally.completion_tokens += completion
        self._maybe_mark()

    def record_failure(self, style: str, reason: str) -> None:
        self.style(style).failures += 1
        self.failure_reasons[reason] += 1

    @property
    def elapsed_s(self) -> float:
        return max(time.monotonic() - self.started, 1e-9)

    @property
    def completed(self) -> int:
        return sum(t.requests for t in self.by_style.values())

    @property
    def failed(self) -> int:
        return sum(t.failures for t in self.by_style.values())

    @property
    def completion_tokens(self) -> int:
        return sum(t.completion_tokens for t in self.by_style.values())

    @property
    def prompt_tokens(self) -> int:
        return sum(t.prompt_tokens for t in self.by_style.values())

    @property
    def cached_tokens(self) -> int:
        return sum(t.cached_tokens for t in self.by_style.values())

    def _maybe_mark(self) -> None:
        now = self.elapsed_s
        if now - self._last_mark >= self.timeline_every_s:
            self._last_mark = now
            self.timeline.append((round(now, 2), self.completed, self.completion_tokens))

    def summary(self) -> dict[str, Any]:
        elapsed = self.elapsed_s
        return {
            "wall_time_s": round(elapsed, 2),
            "requests": self.completed,
            "failures": self.failed,
            "failure_reasons": dict(self.failure_reasons),
            "prompt_tokens": self.prompt_tokens,
            "cached_tokens": self.cached_tokens,
            "completion_tokens": self.completion_tokens,
            "requests_per_s": round(self.completed / elapsed, 3),
            "output_tokens_per_s": round(self.completion_tokens / elapsed, 2),
            "by_style": {name: vars(t).copy() for name, t in sorted(self.by_style.items())},
            "timeline": [
                {"t": t, "requests": n, "completion_tokens": c} for t, n, c in self.timeline
            ],
        }


def project_full_run(
    *,
    output_tokens_per_s: float,
    gpus: int,
    mean_completion_tokens: float,
    context_tokens: int,
    target_corpus_tokens: float,
    styles: int,
    cluster_gpus: int,
) -> dict[str, float] | None:
    """GPU-hours and wall time to rewrite ``target_corpus_tokens`` into ``styles`` styles.

    Contexts = corpus tokens / context size; output tokens = contexts x styles x the mean
    completion length measured here. Throughput per GPU is what this run measured divided by
    the GPUs serving it. ``None`` when there is nothing measured to project from.
    """
    if output_tokens_per_s <= 0 or gpus <= 0 or mean_completion_tokens <= 0:
        return None
    per_gpu = output_tokens_per_s / gpus
    output_tokens = target_corpus_tokens / context_tokens * styles * mean_completion_tokens
    gpu_hours = output_tokens / per_gpu / 3600
    return {
        "target_corpus_tokens": target_corpus_tokens,
        "styles": styles,
        "projected_output_tokens": round(output_tokens),
        "output_tokens_per_s_per_gpu": round(per_gpu, 2),
        "gpu_hours": round(gpu_hours, 1),
        "cluster_gpus": cluster_gpus,
        "wall_time_days": round(gpu_hours / cluster_gpus / 24, 2),
    }
