"""Is it a conversation? At least two distinct speakers and enough turns, per style.

Parsing lives in :mod:`mind_nemo.filter.rules.speakers`; this module applies the thresholds and,
when asked, rewrites the speaker labels into one format (``Name: text``, a blank line between
turns) so a mixed bag of ``**Name:**``, headings and ``Q:``/``A:`` trains as one format.
Styles that are not dialogues (``rephrase``) are exempt.
"""

from __future__ import annotations

from mind_nemo.filter.config import StructureConfig
from mind_nemo.filter.rules.base import KEEP, Item, Verdict


class StructureFilter:
    name = "structure"

    def __init__(self, cfg: StructureConfig) -> None:
        self.cfg = cfg
        self.exempt = set(cfg.exempt_styles)

    def min_turns(self, style: str) -> int:
        return int(self.cfg.min_turns_by_style.get(style, self.cfg.min_turns))

    def __call__(self, item: Item) -> Verdict:
        if item.style in self.exempt:
            return KEEP
        dialogue = item.dialogue
        item.metrics["speakers"] = len(dialogue.speakers)
        item.metrics["turns"] = len(dialogue.spoken)
        if len(dialogue.speakers) < self.cfg.min_speakers:
            return Verdict.drop("too_few_speakers")
        if len(dialogue.spoken) < self.min_turns(item.style):
            return Verdict.drop("too_few_turns")
        return KEEP


class NormalizeSpeakers:
    """A repair, never a rejection: one label format for every conversation."""

    name = "normalize_speakers"

    def __init__(self, cfg: StructureConfig) -> None:
        self.exempt = set(cfg.exempt_styles)

    def __call__(self, item: Item) -> Verdict:
        if item.style in self.exempt or not item.dialogue.spoken:
            return KEEP
        text = item.dialogue.normalized()
        return KEEP if text == item.text else Verdict.repair(text, "normalized_speakers")
