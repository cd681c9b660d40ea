"""The quality scorecard: per style, what the generator wrote and how much of it holds up.

Measured on the report's context sample (:mod:`.sample`: every conversation of at most
``sample_contexts`` contexts, kept and rejected alike, so the scorecard describes what the model
produced, and the kept share says how much of it survives). The kept share and reasons are exact
counts over the whole run. Each measure reuses the filter's own code, so the report and the
filter cannot disagree on what a number, a speaker or a shingle is:

- tokens (mean, median, p95) beside the paper's reported averages
  (:mod:`mind_nemo.evaluate.paper`); a ``LONGEST`` row takes each context's longest conversation;
- turns and speakers: the filter's dialogue parse (:mod:`mind_nemo.filter.rules.speakers`);
- number recall: share of the context's mathematical numbers the conversation keeps, and
  invented numbers: numbers spoken in the conversation that appear nowhere in the context
  (:mod:`mind_nemo.filter.rules.faithfulness`);
- context overlap: share of the context's distinct word 3-grams found in the conversation;
- distinct-1/2: distinct word uni/bigrams over all n-grams of the style's conversations;
- near duplicates across styles: conversations whose word-shingle Jaccard similarity with another
  style's conversation of the same context reaches the dedup threshold
  (:mod:`mind_nemo.filter.rules.dedup` shingles, its default threshold);
- loops: conversations the degeneration rule flags at its default thresholds, measured whatever
  filter the run used (``filter=paper`` does not drop them).
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from mind_nemo.evaluate.paper import PAPER_LONGEST_MEAN_TOKENS, PAPER_SINGLE_STYLE_MEAN_TOKENS
from mind_nemo.filter.config import DedupConfig, DegenerationConfig
from mind_nemo.filter.rules.base import Item
from mind_nemo.filter.rules.dedup import shingles
from mind_nemo.filter.rules.degeneration import DegenerationFilter
from mind_nemo.filter.rules.faithfulness import math_numbers, numbers, recall
from mind_nemo.report.data import ReportData
from mind_nemo.report.sample import SampledContext, SampledConversation

LONGEST = "LONGEST (per context)"
#: Styles that are not conversations (left out of LONGEST and the near-duplicate comparison).
NOT_DIALOGUE = frozenset({"rephrase"})
OVERLAP_N = 3


@dataclass
class StyleScores:
    tokens: list[int] = field(default_factory=list)
    turns: list[int] = field(default_factory=list)
    speakers: list[int] = field(default_factory=list)
    number_recall: list[float] = field(default_factory=list)
    invented: list[int] = field(default_factory=list)
    overlap: list[float] = field(default_factory=list)
    loops: int = 0
    near_duplicates: int = 0
    #: n -> hashes of every word n-gram said (8 bytes each: a style's sample fits in MBs).
    ngrams: dict[int, list[np.ndarray]] = field(default_factory=lambda: {1: [], 2: []})

    @property
    def count(self) -> int:
        return len(self.tokens)

    def distinct(self, n: int) -> float | None:
        grams = np.concatenate(self.ngrams[n]) if self.ngrams[n] else np.zeros(0, np.int64)
        return len(np.unique(grams)) / len(grams) if len(grams) else None


def _score(
    scores: StyleScores,
    conv: SampledConversation,
    wanted: set[str],
    context_numbers: set[str],
    context_grams: set[bytes],
    degeneration: DegenerationFilter,
) -> None:
    item = Item(text=conv.text, style=conv.style)
    scores.loops += not degeneration.measure(item).keep
    dialogue = item.dialogue
    spoken = dialogue.spoken
    said = "\n".join(t.text for t in spoken) if spoken else conv.text
    scores.tokens.append(conv.tokens)
    scores.turns.append(len(spoken))
    scores.speakers.append(len(dialogue.speakers))
    said_numbers = numbers(said)
    if wanted:
        scores.number_recall.append(recall(wanted, said_numbers))
    scores.invented.append(len(said_numbers - context_numbers))
    if context_grams:
        mine = set(shingles(said, OVERLAP_N))
        scores.overlap.append(len(mine & context_grams) / len(context_grams))
    words = said.casefold().split()
    for n, grams in scores.ngrams.items():
        ngrams = zip(*(words[i:] for i in range(n)), strict=False)
        grams.append(np.fromiter(map(hash, ngrams), dtype=np.int64))


def _near_duplicates(context: SampledContext, threshold: float, n: int) -> list[bool]:
    """For each conversation of ``context``: does another style's reach ``threshold``?"""
    sets = [set(shingles(c.text, n)) for c in context.conversations]
    found = [False] * len(sets)
    for i, a in enumerate(sets):
        for j in range(i + 1, len(sets)):
            ci, cj = context.conversations[i], context.conversations[j]
            if ci.style == cj.style or NOT_DIALOGUE & {ci.style, cj.style}:
                continue
            union = len(a | sets[j])
            if union and len(a & sets[j]) / union >= threshold:
                found[i] = found[j] = True
    return found


def score_sample(sample: list[SampledContext]) -> dict[str, StyleScores]:
    """Per-style scores of the sample, plus the ``LONGEST`` row (tokens only)."""
    by_style: dict[str, StyleScores] = {}
    longest = StyleScores()
    degeneration, dedup = DegenerationFilter(DegenerationConfig()), DedupConfig()
    for context in sample:
        wanted, everything = math_numbers(context.text), numbers(context.text)
        grams = set(shingles(context.text, OVERLAP_N))
        dupes = _near_duplicates(context, dedup.threshold, dedup.shingle_words)
        for conv, dupe in zip(context.conversations, dupes, strict=True):
            scores = by_style.setdefault(conv.style, StyleScores())
            _score(scores, conv, wanted, everything, grams, degeneration)
            scores.near_duplicates += dupe
        dialogues = [c for c in context.conversations if c.style not in NOT_DIALOGUE]
        if dialogues:
            longest.tokens.append(max(c.tokens for c in dialogues))
    if longest.tokens:
        by_style[LONGEST] = longest
    return by_style


def _p95(values: list[int]) -> float:
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))])


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.0%}" if whole else "-"


def _mean(values: list[float] | list[int]) -> float | None:
    return statistics.fmean(values) if values else None


def _median(values: list[int]) -> float | None:
    return statistics.median(values) if values else None


def paper_tokens(style: str) -> str:
    if style == LONGEST:
        return f"{PAPER_LONGEST_MEAN_TOKENS} (mean)"
    low, high = PAPER_SINGLE_STYLE_MEAN_TOKENS
    return f"{low}–{high} (style means)" if style not in NOT_DIALOGUE else "-"


def _kept(data: ReportData, style: str) -> tuple[str, str]:
    """Kept share and top reasons, exact over the whole run (filtered runs only)."""
    if data.kind != "filtered" or style == LONGEST:
        return "-", "-"
    kept, reasons = data.kept[style], data.reasons.get(style, Counter())
    total = kept + sum(reasons.values())
    top = ", ".join(f"{r} {n}" for r, n in reasons.most_common(3)) or "-"
    return (f"{kept}/{total} ({kept / total:.0%})" if total else "-"), top


LENGTH_HEADERS = [
    "style", "sampled", "tokens mean", "median", "p95", "paper tokens", "turns (median)",
    "speakers (median)", "kept", "top reasons",
]  # fmt: skip
QUALITY_HEADERS = [
    "style", "number recall", "invented numbers / conv.", "context 3-gram overlap",
    "distinct-1", "distinct-2", "near-dup. across styles", "loops",
]  # fmt: skip


def scorecard_rows(data: ReportData, scores: dict[str, StyleScores]) -> tuple[list, list]:
    """Rows of the two scorecard tables (length and structure; faithfulness and diversity)."""
    styles = sorted(set(scores) - {LONGEST} | set(data.kept) | set(data.reasons))
    if LONGEST in scores:
        styles.append(LONGEST)
    length, quality = [], []
    for style in styles:
        s = scores.get(style, StyleScores())
        kept, top = _kept(data, style)
        mean, median = _mean(s.tokens), _median(s.tokens)
        length.append([
            style, s.count, _fmt(mean, 0), _fmt(median, 0), _fmt(_p95(s.tokens), 0)
            if s.tokens else "-", paper_tokens(style), _fmt(_median(s.turns), 0),
            _fmt(_median(s.speakers), 0), kept, top,
        ])  # fmt: skip
        if style == LONGEST:
            continue
        quality.append([
            style, _fmt(_mean(s.number_recall)), _fmt(_mean(s.invented), 1),
            _fmt(_mean(s.overlap)), _fmt(s.distinct(1)), _fmt(s.distinct(2)),
            _share(s.near_duplicates, s.count), _share(s.loops, s.count),
        ])  # fmt: skip
    return length, quality
