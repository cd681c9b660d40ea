"""Cheap faithfulness proxies: did the conversation keep the context's mathematics?

The MIND prompts ask to keep every number and formula of the context, so we measure how many
survive:

- ``number_recall``: share of the context's distinct numbers (``1,000`` = ``1000``) that appear
  in the conversation;
- ``latex_recall``: share of the context's LaTeX expressions (``$..$``, ``$$..$$``, ``\\(..\\)``,
  ``\\[..\\]``; shorter than ``min_latex_chars`` ignored) found in the conversation, compared
  with all whitespace removed;
- ``length_ratio``: conversation tokens / context tokens, too low (information lost) or too high
  (padding, hallucination).

A recall is only checked when the context has ``min_items`` numbers/expressions; a row without
its context passes (and is counted as such by the stage).
"""

from __future__ import annotations

import re

from mind_nemo.filter.config import FaithfulnessConfig
from mind_nemo.filter.rules.base import KEEP, Item, Verdict

_NUMBER = re.compile(r"(?<![\w.])(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)")
_LATEX = re.compile(r"\$\$(.+?)\$\$|\$([^$\n]+?)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.S)
_SPACE = re.compile(r"\s+")


def numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in _NUMBER.findall(text)}


def latex_expressions(text: str, min_chars: int = 1) -> set[str]:
    found = set()
    for match in _LATEX.finditer(text):
        expression = _SPACE.sub("", next(g for g in match.groups() if g is not None))
        if len(expression) >= min_chars:
            found.add(expression)
    return found


def recall(wanted: set[str], present: set[str] | str) -> float:
    if not wanted:
        return 1.0
    if isinstance(present, str):
        return sum(w in present for w in wanted) / len(wanted)
    return len(wanted & present) / len(wanted)


class FaithfulnessFilter:
    name = "faithfulness"

    def __init__(self, cfg: FaithfulnessConfig) -> None:
        self.cfg = cfg
        self._context_key: str | None = None
        self._context_sets: tuple[set[str], set[str]] = (set(), set())

    def _context(self, context: str) -> tuple[set[str], set[str]]:
        """Numbers and expressions of a context (the last one is cached: a context's seven
        conversations usually come one after another)."""
        if context is not self._context_key:
            self._context_key = context
            self._context_sets = (
                numbers(context),
                latex_expressions(context, self.cfg.min_latex_chars),
            )
        return self._context_sets

    def __call__(self, item: Item) -> Verdict:
        cfg = self.cfg
        if item.context is None:
            return KEEP
        wanted_numbers, wanted_latex = self._context(item.context)
        number_recall = recall(wanted_numbers, numbers(item.text))
        latex_recall = recall(wanted_latex, "".join(item.text.split())) if wanted_latex else 1.0
        item.metrics["number_recall"] = round(number_recall, 4)
        item.metrics["latex_recall"] = round(latex_recall, 4)
        if item.context_tokens:
            ratio = item.tokens / item.context_tokens
            item.metrics["length_ratio"] = round(ratio, 4)
            if ratio < cfg.min_length_ratio:
                return Verdict.drop("too_short_for_context")
            if ratio > cfg.max_length_ratio:
                return Verdict.drop("too_long_for_context")
        if len(wanted_numbers) >= cfg.min_items and number_recall < cfg.min_number_recall:
            return Verdict.drop("low_number_recall")
        if len(wanted_latex) >= cfg.min_items and latex_recall < cfg.min_latex_recall:
            return Verdict.drop("low_latex_recall")
        return KEEP
