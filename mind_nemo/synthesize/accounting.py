"""Token and throughput accounting for a generation session, and the GPU-hours projection.

The numbers a data builder plans with: prompt, cached and completion tokens per style,
requests/s, output tokens/s, failures by reason, a throughput timeline, and what the same job
would cost at full scale (e.g. OpenWebMath's 14.7B tokens x 7 styles).

The projection takes its per-GPU rate from the setting ``projection.gpu_tokens_per_s``, never
from this run's measured rate: a demo on a laptop CPU with a 135M model measures ~20 tokens/s,
and dividing by that as if it were a GPU's rate gives six-figure "GPU-hours" that mean nothing.
The measured rate is reported beside it, labelled with the server that produced it. What the
run measured that does carry over is the mean completion length per conversation.
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
    gpu_tokens_per_s: float,
    mean_completion_tokens: float,
    context_tokens: int,
    target_corpus_tokens: float,
    styles: int,
    cluster_gpus: int,
    measured_tokens_per_s: float,
    measured_on: str,
) -> dict[str, float | str] | None:
    """GPU-hours and wall time to rewrite ``target_corpus_tokens`` into ``styles`` styles.

    Contexts = corpus tokens / context size; output tokens = contexts x styles x the mean
    completion length measured here; GPU-hours = output tokens / ``gpu_tokens_per_s`` (the
    configured per-GPU rate). ``measured_tokens_per_s`` (this run's output tokens/s, from
    ``measured_on``) is recorded for comparison only. ``None`` when no conversation was
    measured.
    """
    if gpu_tokens_per_s <= 0 or mean_completion_tokens <= 0:
        return None
    output_tokens = target_corpus_tokens / context_tokens * styles * mean_completion_tokens
    gpu_hours = output_tokens / gpu_tokens_per_s / 3600
    return {
        "target_corpus_tokens": target_corpus_tokens,
        "styles": styles,
        "mean_completion_tokens": round(mean_completion_tokens, 1),
        "projected_output_tokens": round(output_tokens),
        "gpu_tokens_per_s": gpu_tokens_per_s,
        "gpu_hours": round(gpu_hours, 1),
        "cluster_gpus": cluster_gpus,
        "wall_time_days": round(gpu_hours / cluster_gpus / 24, 2),
        "measured_output_tokens_per_s": round(measured_tokens_per_s, 2),
        "measured_on": measured_on,
    }


def describe_projection(projection: dict[str, Any]) -> list[str]:
    """The projection as the end summary prints it: the assumed rate named with its setting,
    the measured rate labelled as what it is."""
    return [
        f"projection:     {projection['target_corpus_tokens'] / 1e9:.1f}B tokens x "
        f"{projection['styles']} styles x {projection['mean_completion_tokens']:.0f} tokens per "
        f"conversation at {projection['gpu_tokens_per_s']:,.0f} tok/s per GPU (setting "
        f"projection.gpu_tokens_per_s) = {projection['gpu_hours']:,.0f} GPU-hours "
        f"({projection['wall_time_days']:,.1f} days on {projection['cluster_gpus']} GPUs)",
        f"                measured here: {projection['measured_output_tokens_per_s']:.1f} output "
        f"tok/s on {projection['measured_on']} (not a GPU rate unless that server is on GPUs)",
    ]
