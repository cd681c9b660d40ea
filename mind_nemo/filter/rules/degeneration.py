"""Degenerate generations: a model stuck in a loop repeats word n-grams and whole lines.

Two ratios, both "share of units that repeat an earlier unit":

- ``repeated_ngram_ratio``: over word n-grams of what the speakers say (labels left out, so
  ``Teacher:`` at every turn does not count as repetition);
- ``repeated_line_ratio``: over lines of at least ``min_line_chars`` characters of the same
  text (plus the preamble), so a label on a line of its own (``### Subject Matter Expert``,
  ``**Interviewer**``) or a ``**Turn 3**`` heading is layout, not a repeated line.

Too little text to judge (fewer than ``min_ngrams`` n-grams or ``min_lines`` lines) passes.

With ``drop=False`` (the chain's choice when ``degeneration.enabled=false``, as in
``filter=paper``) the ratios are still measured and a loop is kept but noted
(``degenerate:<reason>`` in the row's ``filter_notes`` and the manifest's per-style ``notes``),
so a run that follows the paper's rule still says how many loops it keeps.
"""

from __future__ import annotations

from mind_nemo.filter.config import DegenerationConfig
from mind_nemo.filter.rules.base import KEEP, Item, Verdict


def repeated_ngram_ratio(text: str, n: int, min_ngrams: int = 1) -> float:
    # Whitespace words (punctuation attached): a loop repeats its punctuation too, and
    # ``str.split`` is several times faster than a word regex.
    words = text.casefold().split()
    total = len(words) - n + 1
    if total < max(min_ngrams, 1):
        return 0.0
    distinct = len(set(zip(*(words[i:] for i in range(n)), strict=False)))
    return 1.0 - distinct / total


def repeated_line_ratio(text: str, min_chars: int, min_lines: int = 1) -> float:
    lines = [" ".join(line.casefold().split()) for line in text.splitlines()]
    lines = [line for line in lines if len(line) >= min_chars]
    if len(lines) < max(min_lines, 1):
        return 0.0
    return 1.0 - len(set(lines)) / len(lines)


class DegenerationFilter:
    name = "degeneration"

    def __init__(self, cfg: DegenerationConfig, drop: bool = True) -> None:
        self.cfg, self.drop = cfg, drop

    def __call__(self, item: Item) -> Verdict:
        verdict = self.measure(item)
        if verdict.keep or self.drop:
            return verdict
        item.notes.append(f"degenerate:{verdict.reason}")
        return KEEP

    def measure(self, item: Item) -> Verdict:
        cfg = self.cfg
        spoken = item.dialogue.spoken
        said = "\n".join(t.text for t in spoken) if spoken else item.text
        ngrams = repeated_ngram_ratio(said, cfg.ngram, cfg.min_ngrams)
        written = f"{item.dialogue.preamble}\n{said}" if spoken else said
        lines = repeated_line_ratio(written, cfg.min_line_chars, cfg.min_lines)
        item.metrics["repeated_ngram_ratio"] = round(ngrams, 4)
        item.metrics["repeated_line_ratio"] = round(lines, 4)
        if ngrams > cfg.max_repeated_ngram_ratio:
            return Verdict.drop("repeated_ngrams")
        if lines > cfg.max_repeated_line_ratio:
            return Verdict.drop("repeated_lines")
        return KEEP
