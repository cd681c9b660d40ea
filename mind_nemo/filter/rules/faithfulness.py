"""Cheap faithfulness proxies: did the conversation keep the context's mathematics?

The MIND prompts ask to keep every number and formula of the context, so we measure how many
survive:

- ``number_recall``: share of the context's distinct *mathematical* numbers (``1,000`` =
  ``1000``, ``2.50`` = ``2.5``) that appear anywhere in the conversation. Numbers in formulas
  always count; outside formulas, dates, times, years, addresses, room, page, section and
  citation numbers do not (a good dialogue need not repeat "Room 204, 10:30, March 3, 2021");
  see :func:`math_numbers`;
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
#: ``\label{eq:3}``, ``\cite{12}``: references inside a formula; any other command's name.
_LATEX_REF = re.compile(r"\\(?:label|ref|eqref|cite|tag|hspace|vspace)\*?\{[^{}]*\}")
_LATEX_COMMAND = re.compile(r"\\[A-Za-z]+")
_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
    r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?"
)
#: Words after which a number names a thing (a theorem, a page, a room), not a quantity.
_NAMING = (
    r"(?:theorem|thm|lemma|corollary|cor|proposition|prop|definition|def|section|sec|chapter"
    r"|ch|figure|fig|table|tab|example|exercise|ex|problem|question|part|step|appendix|remark"
    r"|algorithm|claim|conjecture|axiom|case|page|pages|pp|p|vol|volume|no|issue|item|line"
    r"|lecture|week|unit|lesson|grade|edition|room|rm|building|bldg|floor|office|suite|apt"
    r"|hall|gate|platform|route|exit|course|equation|eqn|eq|eqs|formula|identity|inequality"
    r"|arxiv|isbn|doi|math|stat|phys|cs|§)"
)
#: Numbers outside formulas that are not mathematics (removed before counting).
_NOT_MATH = re.compile(
    "|".join(
        [
            r"(?:https?://|www\.)\S+",  # links
            r"\b\d{4}-\d{1,2}-\d{1,2}\b|\b\d{1,2}/\d{1,2}/\d{2,4}\b|\b\d{1,2}\.\d{1,2}\.\d{4}\b",
            rf"\b{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?\b",  # March 3, 2021
            rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}(?:,?\s+\d{{4}})?\b",
            rf"\b{_MONTH}\s+\d{{4}}\b",
            r"\b\d{1,2}:\d{2}(?::\d{2})?(?:\s*[ap]\.?m\b\.?)?",  # 10:30, 9:15 a.m.
            r"\b\d{1,2}\s*(?:[ap]\.?m\b\.?|o'clock)",  # 3 pm
            r"\b(?:1[5-9]|20)\d\d\s*[-–]\s*(?:(?:1[5-9]|20)\d\d|\d\d)\b",  # 1990-1995
            r"\b\d{4}s\b|\b\d+(?:st|nd|rd|th)\b",  # 1990s, 19th
            r"\[\d{1,3}(?:\s*[,;–-]\s*\d{1,3})*\]",  # citations [12], [3, 5]
            rf"(?i:\b{_NAMING}\.?\s*#?\s*\(?\d+(?:[.\-–]\d+)*[a-z]?\)?)",  # Theorem 2.1
            r"(?i:\b(?:in|from|by|see|and|of|using|into|to)\s+\(\d{1,2}(?:\.\d+)?[a-z]?\))",  # (3)
            r"\(\d{1,2}(?:\.\d+)?\)[ \t]*$",  # an equation's number at the end of its line
            r"\b\d{1,5}\s+(?:[A-Z][a-z]+\s+){1,3}(?:Street|St|Avenue|Ave|Road|Rd|Boulevard"
            r"|Blvd|Lane|Ln|Drive|Dr|Way|Place|Pl|Square|Sq|Court|Ct|Terrace|Parkway)\b\.?",
            r"\b[A-Z]{2}\s+\d{5}(?:-\d{4})?\b",  # postal code
            r"\(?\b\d{3}\)?[-.\s]\d{3}[-.]\d{4}\b",  # phone
        ]
    ),
    re.M,
)
_OPERATOR = "+-−×*/=^<>≤≥≈·÷%!²³"
#: A year (1500-2099) counts only next to an operator or a unit: ``2019 = 3 \cdot 673``.
_YEAR = re.compile(r"^(?:1[5-9]|20)\d\d$")
_UNIT = re.compile(
    r"\s*(?:%|°|percent|degrees?|radians?|rad|cm|mm|km|kg|mg|ml|m|g|s|meters?|metres?|miles?"
    r"|feet|ft|inches|pounds?|lbs?|liters?|litres?|units?|dollars?|cents?|times)\b"
)


def _canonical(number: str) -> str:
    """``1,000`` -> ``1000``; ``2.50`` -> ``2.5``; ``3.0`` -> ``3``; ``07`` -> ``7``."""
    whole, _, fraction = number.replace(",", "").partition(".")
    whole, fraction = whole.lstrip("0") or "0", fraction.rstrip("0")
    return f"{whole}.{fraction}" if fraction else whole


def numbers(text: str) -> set[str]:
    """Every number in ``text`` (what a conversation may have kept)."""
    return {_canonical(n) for n in _NUMBER.findall(_LATEX_COMMAND.sub(" ", text))}


def _near_operator(text: str, start: int, end: int) -> bool:
    before = text[:start].rstrip()[-1:]
    after = text[end:].lstrip()[:1]
    return (
        bool(before and before in _OPERATOR)
        or bool(after and after in _OPERATOR)
        or bool(_UNIT.match(text, end))
    )


def math_numbers(text: str) -> set[str]:
    """The numbers of a context a faithful conversation should keep: every number inside a
    formula (``$..$``, ``$$..$$``, ``\\(..\\)``, ``\\[..\\]``, references such as
    ``\\label`` left out), and outside formulas every number except dates, times, years,
    citations and named things (``Theorem 2.1``, ``page 12``, ``Room 204``, ``eq. (3)``, an
    address). A year-like number counts next to an operator or a unit (``2019 = 3 \\cdot 673``,
    ``2000 m``)."""
    found: set[str] = set()

    def formula(match: re.Match[str]) -> str:
        body = next(g for g in match.groups() if g is not None)
        found.update(numbers(_LATEX_REF.sub(" ", body)))
        return " " * len(match.group(0))

    prose = _NOT_MATH.sub(lambda m: " " * len(m.group(0)), _LATEX.sub(formula, text))
    for match in _NUMBER.finditer(prose):
        value = _canonical(match.group(0))
        if _YEAR.match(value) and not _near_operator(prose, match.start(), match.end()):
            continue
        found.add(value)
    return found


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
                math_numbers(context),
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
