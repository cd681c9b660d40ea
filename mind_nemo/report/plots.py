"""The report's five figures, each a PNG (bytes) drawn with matplotlib's Agg backend.

Every function takes the gathered :class:`~mind_nemo.report.data.ReportData` and returns PNG
bytes; a figure without data says so in its body instead of failing, so a report always
renders.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from mind_nemo.report.data import ReportData

DPI = 90


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=DPI)
    plt.close(fig)
    return buffer.getvalue()


def _empty(ax: plt.Axes, what: str) -> None:
    ax.text(0.5, 0.5, f"no data: {what}", ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def length_distribution(data: ReportData) -> bytes:
    fig, ax = plt.subplots(figsize=(8, 4.2))
    series = {s: r.items for s, r in sorted(data.lengths.items()) if r.items}
    if series:
        ax.hist(list(series.values()), bins=30, histtype="step", label=list(series), linewidth=1.5)
        ax.legend(fontsize=8)
        ax.set_xlabel("tokens per conversation" + (" (kept)" if data.kind == "filtered" else ""))
        ax.set_ylabel("conversations")
    else:
        _empty(ax, "no conversations")
    ax.set_title("Conversation length by style")
    return _png(fig)


def prompt_vs_completion(data: ReportData) -> bytes:
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    points = data.prompt_completion.items if data.prompt_completion else []
    if points:
        for style in sorted({p[2] for p in points}):
            mine = [p for p in points if p[2] == style]
            ax.scatter([p[0] for p in mine], [p[1] for p in mine], s=10, alpha=0.6, label=style)
        ax.set_xlabel("prompt tokens")
        ax.set_ylabel("completion tokens")
        ax.legend(fontsize=8)
    else:
        _empty(ax, "no generation records")
    ax.set_title("Prompt vs completion tokens (all generated)")
    return _png(fig)


def turns_per_conversation(data: ReportData) -> bytes:
    fig, ax = plt.subplots(figsize=(8, 4.2))
    series = {s: r.items for s, r in sorted(data.turns.items()) if r.items}
    if series:
        ax.boxplot(list(series.values()))
        ax.set_xticks(range(1, len(series) + 1), list(series), rotation=30, fontsize=8)
        ax.set_ylabel("turns")
    else:
        _empty(ax, "no conversations")
    ax.set_title("Turns per conversation" + (" (kept)" if data.kind == "filtered" else ""))
    return _png(fig)


def filter_reasons(data: ReportData) -> bytes:
    fig, ax = plt.subplots(figsize=(8, 4.5))
    styles = sorted(set(data.reasons) | set(data.kept))
    reasons = sorted({r for c in data.reasons.values() for r in c})
    if styles and (reasons or data.kept):
        left = [0] * len(styles)
        columns = [("kept", [data.kept[s] for s in styles])]
        columns += [(r, [data.reasons[s][r] for s in styles]) for r in reasons]
        cmap = plt.get_cmap("tab20")  # 20 distinct colours, cmap(i) is the i-th
        for i, (label, values) in enumerate(columns):
            ax.barh(styles, values, left=left, label=label, color=cmap(i % cmap.N))
            left = [a + b for a, b in zip(left, values, strict=True)]
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
        ax.set_xlabel("conversations")
    else:
        _empty(ax, "not a filtered run")
    ax.set_title("Kept and rejected (by reason) per style")
    return _png(fig)


def throughput(data: ReportData) -> bytes:
    fig, (rate, cumulative) = plt.subplots(1, 2, figsize=(10, 4))
    created = sorted(data.created.items) if data.created else []
    if len(created) >= 2 and created[-1][0] > created[0][0]:
        start, span = created[0][0], created[-1][0] - created[0][0]
        bins = min(30, max(2, len(created) // 2))
        width = span / bins
        tokens = [0] * bins
        for when, completion in created:
            tokens[min(int((when - start) / width), bins - 1)] += completion
        rate.stairs([t / width for t in tokens], [i * width for i in range(bins + 1)])
        rate.set_xlabel("seconds since first conversation")
        rate.set_ylabel("completion tokens/s")
    else:
        _empty(rate, "fewer than two timestamps")
    rate.set_title("Throughput from row timestamps")
    drawn = False
    for shard, points in sorted(data.timelines.items()):
        if points:
            cumulative.plot(
                [p["t"] for p in points],
                [p["completion_tokens"] for p in points],
                marker="o",
                label=shard,
            )
            drawn = True
    if drawn:
        cumulative.set_xlabel("seconds into the session")
        cumulative.set_ylabel("completion tokens (cumulative)")
        cumulative.legend(fontsize=7)
    else:
        _empty(cumulative, "no session timeline in the manifests")
    cumulative.set_title("Session timeline (manifests)")
    return _png(fig)


FIGURES: dict[str, tuple[str, Callable[[ReportData], bytes]]] = {
    "length_by_style": ("Conversation length distribution per style", length_distribution),
    "prompt_vs_completion": ("Prompt vs completion tokens", prompt_vs_completion),
    "turns_per_conversation": ("Turns per conversation", turns_per_conversation),
    "filter_reasons": ("Filter reasons per style", filter_reasons),
    "throughput": ("Throughput over time", throughput),
}
