"""The paper's length rule and the two ways a generation can be broken before we read it.

- ``empty``: no text, or only whitespace;
- ``truncated``: the server stopped at the token limit (finish reason ``length``), so the
  conversation ends mid-sentence;
- ``too_short``: under ``min_tokens`` generator tokens (the MIND paper drops conversations
  under 50 tokens).
"""

from __future__ import annotations

from mind_nemo.filter.config import LengthConfig
from mind_nemo.filter.rules.base import KEEP, Item, Verdict


class EmptyFilter:
    name = "empty"

    def __call__(self, item: Item) -> Verdict:
        return KEEP if item.text.strip() else Verdict.drop("empty")


class TruncatedFilter:
    name = "truncated"

    def __call__(self, item: Item) -> Verdict:
        if str(item.row.get("finish_reason") or "") == "length":
            return Verdict.drop("truncated")
        return KEEP


class MinTokensFilter:
    name = "too_short"

    def __init__(self, cfg: LengthConfig) -> None:
        self.min_tokens = cfg.min_tokens

    def __call__(self, item: Item) -> Verdict:
        return Verdict.drop("too_short") if item.tokens < self.min_tokens else KEEP
