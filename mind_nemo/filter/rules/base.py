"""What every filter sees and returns: an :class:`Item` in, a :class:`Verdict` out.

A filter is a callable ``item -> Verdict``. ``Verdict.keep`` with no ``reason`` lets the item
through; a ``reason`` rejects it (the stage counts reasons per style and writes the row to the
rejects file). A filter that repairs the text instead (strips a preamble, normalises speaker
labels) returns ``keep=True`` with the new ``text`` and ``notes`` naming the repair; the chain
applies it, keeps the original in ``text_original`` and counts the notes.

:class:`Item` caches what several filters need (the parsed dialogue, the token count) and
forgets it when the text changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from mind_nemo.filter.rules.speakers import Dialogue, parse_dialogue

TokenCounter = Callable[[str], int]


def count_words(text: str) -> int:
    """Token count stand-in for unit tests and benchmarks (the stage uses the real tokenizer)."""
    return len(text.split())


@dataclass(frozen=True)
class Verdict:
    keep: bool
    reason: str | None = None
    #: Replacement text (a repair); ``None`` leaves the text alone.
    text: str | None = None
    #: Counter names for the repairs, e.g. ``("stripped_preamble",)``.
    notes: tuple[str, ...] = ()

    @classmethod
    def drop(cls, reason: str) -> Verdict:
        return cls(False, reason)

    @classmethod
    def repair(cls, text: str, *notes: str) -> Verdict:
        return cls(True, None, text, notes)


KEEP = Verdict(True)


class Filter(Protocol):
    name: str

    def __call__(self, item: Item) -> Verdict: ...


@dataclass
class Item:
    """One conversation on its way through the chain."""

    text: str
    style: str
    row: dict[str, Any] = field(default_factory=dict)
    #: The context the conversation was generated from (None when the run lacks it).
    context: str | None = None
    context_tokens: int | None = None
    count_tokens: TokenCounter = count_words
    notes: list[str] = field(default_factory=list)
    #: Measurements filters took on the way (written to the kept row as ``quality``).
    metrics: dict[str, float] = field(default_factory=dict)
    #: Fields to add to the output row (e.g. ``judge_scores``).
    fields: dict[str, Any] = field(default_factory=dict)
    original_text: str | None = None
    _dialogue: Dialogue | None = None
    _tokens: int | None = None

    @property
    def dialogue(self) -> Dialogue:
        if self._dialogue is None:
            self._dialogue = parse_dialogue(self.text)
        return self._dialogue

    @property
    def tokens(self) -> int:
        """Generator tokens: the server's count while the text is untouched, else counted."""
        if self._tokens is None:
            reported = int(self.row.get("completion_tokens") or 0)
            unchanged = self.original_text is None
            self._tokens = reported if reported > 0 and unchanged else self.count_tokens(self.text)
        return self._tokens

    def apply(self, verdict: Verdict) -> None:
        """Take a repair: new text, original kept once, caches dropped."""
        if verdict.text is None or verdict.text == self.text:
            return
        if self.original_text is None:
            self.original_text = self.text
        self.text = verdict.text
        self._dialogue = None
        self._tokens = None
        self.notes.extend(verdict.notes)
