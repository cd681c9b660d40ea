"""Counters per style: what came in, what was kept (with its tokens), why the rest went.

Every input row lands in exactly one place: ``kept`` or one ``rejected`` reason, so
``input == kept + sum(rejected)`` for every style, in every shard and in the run manifest.
``notes`` count repairs on kept rows (stripped preambles, normalised labels, ...).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

TOKEN_FIELDS = ("tokens", "prompt_tokens", "completion_tokens")


@dataclass
class StyleTally:
    input: int = 0
    kept: int = 0
    rejected: Counter = field(default_factory=Counter)
    notes: Counter = field(default_factory=Counter)
    tokens: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "kept": self.kept,
            "rejected": sum(self.rejected.values()),
            "reasons": dict(sorted(self.rejected.items())),
            "notes": dict(sorted(self.notes.items())),
            "tokens": self.tokens,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StyleTally:
        return cls(
            input=int(data["input"]),
            kept=int(data["kept"]),
            rejected=Counter(data.get("reasons", {})),
            notes=Counter(data.get("notes", {})),
            **{name: int(data.get(name, 0)) for name in TOKEN_FIELDS},
        )


@dataclass
class Tally:
    by_style: dict[str, StyleTally] = field(default_factory=dict)

    def style(self, name: str) -> StyleTally:
        return self.by_style.setdefault(name, StyleTally())

    def seen(self, style: str) -> None:
        self.style(style).input += 1

    def reject(self, style: str, reason: str) -> None:
        self.style(style).rejected[reason] += 1

    def keep(self, style: str, row: dict[str, Any], notes: list[str] | None = None) -> None:
        tally = self.style(style)
        tally.kept += 1
        for name in TOKEN_FIELDS:
            setattr(tally, name, getattr(tally, name) + int(row.get(name) or 0))
        tally.notes.update(notes or ())

    def merge(self, other: Tally) -> None:
        for name, theirs in other.by_style.items():
            mine = self.style(name)
            mine.input += theirs.input
            mine.kept += theirs.kept
            mine.rejected.update(theirs.rejected)
            mine.notes.update(theirs.notes)
            for field_name in TOKEN_FIELDS:
                setattr(mine, field_name, getattr(mine, field_name) + getattr(theirs, field_name))

    def reasons(self) -> Counter:
        total: Counter = Counter()
        for tally in self.by_style.values():
            total.update(tally.rejected)
        return total

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {name: t.to_dict() for name, t in sorted(self.by_style.items())}

    @classmethod
    def from_dict(cls, data: dict[str, dict[str, Any]]) -> Tally:
        return cls({name: StyleTally.from_dict(d) for name, d in data.items()})
