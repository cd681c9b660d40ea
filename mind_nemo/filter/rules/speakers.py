"""Find who speaks when: parse the speaker formats models actually produce.

Recognised turn starts (one per line, anywhere in the text):

- ``Name: text`` with one to four words, each after the first capitalised or a number:
  ``Teacher:``, ``Professor A:``, ``Student 1:``, ``Dr. Lee:``, ``Know-all:``, ``Me:``;
- the same wrapped in emphasis or brackets: ``**Name:**``, ``**Name**:``, ``*Name*:``,
  ``__Name__:``, ``[Name]:``, after a list or quote marker (``- ``, ``> ``), with an optional
  stage direction ``Teacher (smiling):``;
- ``Q:`` / ``A:`` (single letters are names too);
- a markdown heading or a bold line holding only a name (``### Teacher``, ``**Student**``),
  whose turn is the lines below it.

Labels that are really section words (``Step 1:``, ``Example:``, ``Note:``, ``Solution:``) never
count. A label is a speaker when it starts at least two turns; if that leaves fewer than two
speakers, every label counts (a two-line exchange is still a dialogue). Lines before the first
turn are the ``preamble``; unlabelled lines continue the current turn.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

_EMPH = r"(?:\*\*|__|\*|_)"
_FIRST = r"[A-Z](?:[^\W_]|['’.\-](?=[^\W_]))*\.?"
_NEXT = r"[A-Z0-9](?:[^\W_]|['’.\-](?=[^\W_]))*\.?"
_NAME = rf"(?P<name>{_FIRST}(?:[ \t]+{_NEXT}){{0,3}})"
_PAREN = r"(?:[ \t]*\([^()\n]{0,40}\))?"
_INLINE = re.compile(
    rf"^[ \t]*(?:[-*>][ \t]+)?(?:{_EMPH}|\[)?{_NAME}{_PAREN}[ \t]*(?:{_EMPH}|\])?[ \t]*[:：]"
    rf"[ \t]*(?:{_EMPH})?(?:[ \t]+|$)(?P<rest>.*)$"
)
_HEADING = re.compile(
    rf"^[ \t]*#{{1,6}}[ \t]+(?:{_EMPH})?{_NAME}{_PAREN}(?:{_EMPH})?[ \t]*[:：]?[ \t]*(?:{_EMPH})?$"
)
_BOLD_LINE = re.compile(rf"^[ \t]*(?:\*\*|__){_NAME}{_PAREN}[ \t]*[:：]?(?:\*\*|__)[ \t]*$")

#: First words of labels that head sections, not speakers.
NOT_SPEAKERS = frozenset(
    """
    step steps example examples note notes solution solutions proof problem problems hint
    definition theorem lemma corollary remark exercise case part section chapter equation
    formula given result results conclusion summary input output explanation method title topic
    subject context text conversation dialogue dialog debate interview transcript scene setting
    source reference references where therefore thus so hence then first second third finally
    also but and now let here chat history key rule rules property claim goal task instruction
    instructions objective warning important tip caution figure table http https www worked
    recap overview introduction background
    """.split()  # noqa: SIM905 - a word list reads better as text
)


@dataclass
class Turn:
    speaker: str
    text: str
    line: int


@dataclass
class Dialogue:
    """The parse of one text: ``preamble`` (before the first turn) and the turns in order."""

    preamble: str
    turns: list[Turn] = field(default_factory=list)
    #: Display form of each speaker key, as first written (emphasis and brackets removed).
    names: dict[str, str] = field(default_factory=dict)

    @property
    def spoken(self) -> list[Turn]:
        """Turns that say something."""
        return [t for t in self.turns if t.text]

    @property
    def speakers(self) -> list[str]:
        """Distinct speakers of non-empty turns, in order of first appearance."""
        seen: dict[str, None] = {}
        for turn in self.spoken:
            seen.setdefault(self.names[turn.speaker], None)
        return list(seen)

    @property
    def first_turn_line(self) -> int | None:
        return self.turns[0].line if self.turns else None

    def normalized(self) -> str:
        """One format for every speaker style: ``Name: text``, a blank line between turns."""
        parts = [self.preamble] if self.preamble else []
        parts += [f"{self.names[t.speaker]}: {t.text}" for t in self.spoken]
        return "\n\n".join(parts)


def speaker_key(name: str) -> str:
    return " ".join(name.casefold().rstrip(".").split())


def match_label(line: str) -> tuple[str, str] | None:
    """``(name, rest of the line)`` if ``line`` starts a turn, else None."""
    if ":" not in line and "：" not in line and "#" not in line and "**" not in line:
        return None  # fast path: most lines cannot start a turn
    for pattern in (_INLINE, _HEADING, _BOLD_LINE):
        match = pattern.match(line)
        if match:
            name = " ".join(match.group("name").split())
            if name.split()[0].casefold().rstrip(".") in NOT_SPEAKERS:
                return None
            rest = match.groupdict().get("rest") or ""
            return name, rest.strip()
    return None


def parse_dialogue(text: str) -> Dialogue:
    """Split ``text`` into turns (see the module docstring for the rules)."""
    lines = text.splitlines()
    labels: dict[int, tuple[str, str]] = {}  # line -> (speaker key, rest of the line)
    names: dict[str, str] = {}
    for number, line in enumerate(lines):
        found = match_label(line)
        if found:
            key = speaker_key(found[0])
            labels[number] = (key, found[1])
            names.setdefault(key, found[0])
    counts = Counter(key for key, _ in labels.values())
    speakers = {key for key, n in counts.items() if n >= 2}
    if len(speakers) < 2:
        speakers = set(counts)
    preamble: list[str] = []
    turns: list[Turn] = []
    body: list[str] = []

    def close() -> None:
        if turns:
            turns[-1].text = "\n".join(body).strip()

    for number, line in enumerate(lines):
        label = labels.get(number)
        if label and label[0] in speakers:
            close()
            turns.append(Turn(label[0], "", number))
            body = [label[1]] if label[1] else []
        elif turns:
            body.append(line)
        else:
            preamble.append(line)
    close()
    return Dialogue(
        "\n".join(preamble).strip(), turns, {k: v for k, v in names.items() if k in speakers}
    )
