"""The MIND paper's reported scores (its OWM-4B results), the reference rows of our tables.

7B model pretrained on 700B tokens, then +50B tokens of continued pretraining on OpenWebMath's
4B-token subset (or its conversations) mixed 2:1 with general web text. Columns: GSM8K, MATH,
MMLU-STEM, MMLU, General Reasoning, Avg (mean of GSM8K, MATH, MMLU, GR).
"""

from __future__ import annotations

#: Row label -> (gsm8k, math, mmlu_stem, mmlu, general_reasoning, avg), in the paper's order.
PAPER_OWM4B: dict[str, tuple[float, float, float, float, float, float]] = {
    "raw": (12.96, 4.92, 39.39, 45.91, 52.90, 29.17),
    "rephrase": (11.68, 5.46, 39.71, 46.17, 53.58, 29.22),
    "two professors": (13.50, 4.52, 37.93, 45.25, 53.21, 29.12),
    "teacher-student": (22.74, 5.96, 40.72, 47.93, 54.84, 32.87),
    "two students": (21.30, 6.20, 41.90, 48.77, 54.32, 32.65),
    "layman-knowall": (17.74, 5.46, 41.96, 48.87, 54.89, 31.74),
    "debate": (23.96, 6.12, 40.18, 47.61, 54.76, 33.11),
    "interview": (20.92, 5.86, 40.53, 46.99, 54.73, 32.12),
    "problem solving": (24.72, 6.16, 41.36, 47.74, 54.90, 33.38),
    "longest": (25.78, 6.30, 42.72, 49.37, 54.86, 34.08),
    "all conversations": (26.38, 7.22, 42.53, 50.21, 55.41, 34.80),
}
PAPER_SOURCE = "MIND paper, OWM-4B, 7B model (reported)"
#: Column ids in the order of the tuples above.
PAPER_COLUMN_ORDER: tuple[str, ...] = (
    "gsm8k",
    "math",
    "mmlu_stem",
    "mmlu",
    "general_reasoning",
    "avg",
)


def row_id(label: str) -> str:
    """A row's id as experiment files name it: ``two professors`` -> ``two_professors``."""
    return label.replace(" ", "_").replace("-", "_")


def row_scores(row: str) -> dict[str, float]:
    """One reported row by its id (``raw``, ``debate``, ``all_conversations`` ...): column id ->
    score. Experiment files read their ``paper`` scores through this (a resolver registered by
    :mod:`mind_nemo.submit.config`), so the numbers are written only here."""
    by_id = {row_id(label): scores for label, scores in PAPER_OWM4B.items()}
    if row not in by_id:
        raise ValueError(f"no reported row {row!r}; rows: {', '.join(by_id)}")
    return dict(zip(PAPER_COLUMN_ORDER, by_id[row], strict=True))


def paper_rows() -> list[dict[str, object]]:
    """The reported rows as table rows: ``{"label", "source", "columns": {id: score}}``."""
    return [
        {
            "label": f"paper: {name}",
            "source": PAPER_SOURCE,
            "columns": dict(zip(PAPER_COLUMN_ORDER, scores, strict=True)),
        }
        for name, scores in PAPER_OWM4B.items()
    ]


#: Conversation lengths the paper reports for its generated data (tokens per conversation): the
#: LONGEST variant averages 653; the single styles average between 452 and 630 (the paper gives
#: the range, so no per-style figure is written here).
PAPER_LONGEST_MEAN_TOKENS = 653
PAPER_SINGLE_STYLE_MEAN_TOKENS = (452, 630)
