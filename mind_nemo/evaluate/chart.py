"""Bar chart of the comparison: our runs per column, the paper's reported range behind them.

Eleven paper rows plus ours as bars would be unreadable, so the paper is drawn as a grey band
per column from its lowest to its highest reported score (raw OWM to all conversations, most
of the time), with our runs as grouped bars in front: one glance says whether a run landed in
the paper's range.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def draw_chart(table: dict[str, Any], path: Path) -> None:
    """Write the chart PNG for a table built by :func:`mind_nemo.evaluate.table.build_table`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = list(table["columns"])
    labels = list(table["columns"].values())
    ours = [r for r in table["rows"] if not r["reference"]]
    paper = [r for r in table["rows"] if r["reference"]]
    width = 0.8 / max(1, len(ours))
    fig, ax = plt.subplots(figsize=(max(7, 1.6 * len(columns)), 4.5))
    for i, column in enumerate(columns):
        reported = [r["columns"][column] for r in paper if r["columns"].get(column) is not None]
        if reported:
            low, high = min(reported), max(reported)
            ax.bar(i, high - low, bottom=low, width=0.9, color="0.85", zorder=0,
                   label="paper, reported range" if i == 0 else None)  # fmt: skip
    for j, row in enumerate(ours):
        xs = [i - 0.4 + width * (j + 0.5) for i in range(len(columns))]
        values = [row["columns"].get(c) for c in columns]
        heights = [v if v is not None else 0.0 for v in values]
        bars = ax.bar(xs, heights, width=width * 0.95, label=row["label"], zorder=2)
        for bar, value in zip(bars, values, strict=True):
            text = "n/a" if value is None else f"{value:.1f}"
            ax.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=7, xytext=(0, 2),
                        textcoords="offset points")  # fmt: skip
    ax.set_xticks(range(len(columns)), labels)
    ax.set_ylabel("score (%)")
    ax.set_ylim(0, 100)
    ax.set_title("MIND evaluation: our runs vs the paper's reported range")
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(axis="y", alpha=0.3, zorder=-1)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
