"""Find who speaks when, from the text's own structure rather than from a list of words.

Models write a conversation as lines that open with a speaker label, and they vary the label
freely: ``Teacher:``, ``**Subject Matter Expert:**``, ``First Student:``, ``Dr. Smith:``,
``jgens:`` (a forum handle), ``### Interviewer``, ``Q:``. The same texts also hold lines that
*look* like labels and are not speakers: ``Step 1:`` inside a worked solution, ``**Turn 3**``
headings, a ``Note:`` line. A stop-list of words cannot tell ``Problem Solver:`` from
``Problem 2:``, so the parse reads the layout instead:

1. **Candidates.** Any line that could open a turn: ``Label: text`` or a line holding only a
   label (``### Label``, ``**Label**``, ``Label:``), with or without emphasis (``**L:**``,
   ``**L**:``, ``*L*:``, ``__L__:``, ``[L]:``), a list/quote/number marker, a stage direction
   ``(smiling)``. A label is one to four words: title case (``Subject Matter Expert``,
   ``Professor A``, ``Student 2``, ``Dr. Lee``), or a single handle in any case (``jgens``,
   ``pi_lover42``). A sentence that ends in a colon (``So the answer is:``) is not title case.
2. **Enumerations are headings.** A family ``Stem N`` whose numbers each occur once (``Turn 1``,
   ``Turn 2``, ...) or run up in chains of consecutive labels (``Step 1``, ``Step 2`` inside a
   turn) numbers parts of the text; it is not a set of speakers when other speakers exist. A
   heading line of such a family is dropped from the turns (it is layout, not speech), and
   ``Turn 2: Alex: ...`` or ``### Turn 2 (Alex)`` gives the turn to Alex.
3. **Speakers recur.** A label is a speaker when it opens at least two turns. With three or
   more, a label that never starts a paragraph while two others always do, or that is plain
   while two others are always marked up, is a sub-label inside turns (``Answer:``), not a
   speaker. A three-turn exchange (one recurring label and exactly one other) is a dialogue
   too; labels that never recur make no dialogue (``Example:``, ``Note:``, ``Solution:``).
4. **Turns.** A speaker's label opens a turn; the lines after it, up to the next speaker's
   label, are the turn. Lines before the first turn are the ``preamble`` (leakage decides
   whether it is meta text); separators (``---``) between turns are layout.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

_EMPH = r"(?:\*\*|__|\*|_)"
#: One word of a label: letters/digits, inner ``. - ' _`` allowed (``Know-all``, ``pi_lover``).
_WORD = r"[^\W_](?:[^\W_]|['’.\-_](?=[^\W_]))*\.?"
_LABEL = rf"@?{_WORD}(?:[ \t]+{_WORD}){{0,3}}"
_PAREN = r"(?:[ \t]*\((?P<paren>[^()\n]{1,40})\))?"
_MARKER = r"(?:(?:[-+*>]|\d{1,3}[.)])[ \t]+)?"
_INLINE = re.compile(
    rf"^[ \t]*{_MARKER}(?P<open>{_EMPH}|\[)?(?P<name>{_LABEL}){_PAREN}[ \t]*"
    rf"(?P<close>{_EMPH}|\])?[ \t]*[:：](?:(?P<after>{_EMPH})[ \t]*|[ \t]+|$)(?P<rest>.*)$"
)
_HEADING = re.compile(r"^[ \t]*#{1,6}[ \t]+(?P<body>.+?)[ \t]*#*[ \t]*$")
_BOLD_LINE = re.compile(r"^[ \t]*(?:\*\*|__)(?P<body>[^*\n]+?)(?:\*\*|__)[ \t]*[:：]?[ \t]*$")
#: A heading's text: an optional enumerator (``Turn 2 -``), then a label.
_BODY = re.compile(
    rf"^(?:{_WORD}[ \t]+\d+[ \t]*[:.|\-–—][ \t]*)?(?P<name>{_LABEL}){_PAREN}[ \t]*[:：]?$"
)
_ENUM = re.compile(r"^(?P<stem>.+) (?P<n>\d+)$")
_SEPARATOR = re.compile(r"^[ \t]*(?:[-*_=~][ \t]*){3,}$")
_MAYBE = re.compile(r"[:：#]|\*\*|__")


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
        """One format for every speaker style: ``Name: text``, a blank line between turns.
        Only labels change; each turn's text is kept as written."""
        parts = [self.preamble] if self.preamble else []
        parts += [f"{self.names[t.speaker]}: {t.text}" for t in self.spoken]
        return "\n\n".join(parts)


@dataclass
class _Candidate:
    """A line that could open a turn."""

    line: int
    key: str
    name: str
    rest: str
    #: Written with emphasis, brackets or as a markdown heading.
    marked: bool
    #: ``Turn 2: Alex: ...``: the label inside the rest, used when ``key`` is an enumeration.
    inner: _Candidate | None = None


def speaker_key(name: str) -> str:
    return " ".join(name.casefold().lstrip("@").rstrip(".").split())


def _label_shape(name: str) -> bool:
    """Title case of up to four words, or one handle of any case (``jgens``), not a number."""
    words = name.lstrip("@").split()
    if not words or not words[0][0].isalpha():
        return False
    if len(words) == 1:
        return words[0][0].isupper() or len(words[0].rstrip(".")) >= 2
    return words[0][0].isupper() and all(w[0].isupper() or w[0].isdigit() for w in words[1:])


def _body_label(body: str) -> tuple[str, str | None] | None:
    """``(name, stage direction)`` of a heading's text, enumerator dropped."""
    body = body.strip().strip("*_").strip()
    match = _BODY.match(body)
    if not match or not _label_shape(match.group("name")):
        return None
    return " ".join(match.group("name").split()), match.group("paren")


def _candidate(number: int, line: str) -> _Candidate | None:
    if not _MAYBE.search(line):
        return None  # fast path: most lines cannot open a turn
    found: tuple[str, str | None] | None = None
    rest, marked = "", True
    start = line.lstrip()[:1]
    heading = None
    if start == "#":
        heading = _HEADING.match(line)
    elif start in ("*", "_"):
        heading = _BOLD_LINE.match(line)
    if heading:
        found = _body_label(heading.group("body"))
    if found is None:
        match = _INLINE.match(line)
        if not match or not _label_shape(match.group("name")):
            return None
        found = " ".join(match.group("name").split()), match.group("paren")
        rest = match.group("rest").strip()
        marked = bool(match.group("open") or match.group("close") or match.group("after"))
    name, paren = found
    inner = None
    if _ENUM.match(speaker_key(name)):
        # ``### Turn 2 (Alex)``: the speaker is in the parentheses; ``Turn 2: Alex: hi``: in
        # the rest. Either is used only if ``Turn N`` turns out to be an enumeration.
        if paren and not rest and _label_shape(paren.strip()) and len(paren.split()) <= 4:
            inner = _Candidate(number, speaker_key(paren), " ".join(paren.split()), "", marked)
        elif rest:
            inner = _candidate(number, rest)
    return _Candidate(number, speaker_key(name), name, rest, marked, inner)


def match_label(line: str) -> tuple[str, str] | None:
    """``(name, rest of the line)`` if ``line`` could open a turn, else None. Whether it does
    depends on the whole text (see :func:`parse_dialogue`)."""
    found = _candidate(0, line)
    return (found.name, found.rest) if found else None


def _enumerations(cands: list[_Candidate]) -> set[str]:
    """Keys of ``Stem N`` families that number parts of the text (see the module docstring)."""
    families: dict[str, list[tuple[int, int]]] = defaultdict(list)  # stem -> (position, N)
    for position, cand in enumerate(cands):
        match = _ENUM.match(cand.key)
        if match:
            families[match.group("stem")].append((position, int(match.group("n"))))
    found: set[str] = set()
    for stem, members in families.items():
        counts = Counter(n for _, n in members)
        if len(counts) < 2:
            continue
        at = dict(members)
        chained = sum(at.get(p - 1) == n - 1 or at.get(p + 1) == n + 1 for p, n in members)
        if max(counts.values()) == 1 or chained >= 0.75 * len(members):
            found |= {f"{stem} {n}" for n in counts}
    return found


def _paragraph_starts(lines: list[str], cands: list[_Candidate]) -> set[int]:
    """Candidate lines that open a paragraph: first line, after a blank line, a separator or a
    line holding only a label (``**Turn 2**``)."""
    label_only = {c.line for c in cands if not c.rest}
    first = next((i for i, line in enumerate(lines) if line.strip()), 0)
    starts = set()
    for cand in cands:
        i = cand.line
        before = lines[i - 1] if i > 0 else ""
        if i == first or not before.strip() or _SEPARATOR.match(before) or i - 1 in label_only:
            starts.add(i)
    return starts


def _sub_labels(lines: list[str], cands: list[_Candidate], speakers: set[str]) -> set[str]:
    """Recurring labels that sit inside other speakers' turns (``Answer:`` after a working),
    judged by layout and markup against at least two labels that behave like speakers."""
    by_key: dict[str, list[_Candidate]] = defaultdict(list)
    for cand in cands:
        if cand.key in speakers:
            by_key[cand.key].append(cand)
    starts = _paragraph_starts(lines, cands)
    para = {k: sum(c.line in starts for c in cs) / len(cs) for k, cs in by_key.items()}
    marked = {k: sum(c.marked for c in cs) / len(cs) for k, cs in by_key.items()}
    for rate, low, high in ((para, 0.0, 0.75), (marked, 0.0, 1.0)):
        strong = {k for k in by_key if rate[k] >= high}
        weak = {k for k in by_key if rate[k] <= low}
        if len(strong) >= 2 and weak:
            return weak
    return set()


def parse_dialogue(text: str) -> Dialogue:
    """Split ``text`` into turns (see the module docstring for the rules)."""
    lines = text.splitlines()
    cands = [c for i, line in enumerate(lines) if (c := _candidate(i, line))]
    enums = _enumerations(cands)
    # ``Turn 2: Alex: ...``: once ``Turn N`` is known to number turns, Alex's label counts.
    cands = [c.inner if c.key in enums and c.inner else c for c in cands]
    counts = Counter(c.key for c in cands)
    speakers = {k for k, n in counts.items() if n >= 2 and k not in enums}
    if len(speakers) < 2:  # numbered speakers in a round (Speaker 1, 2, 3, 1, 2, 3, ...)
        speakers |= {k for k in enums if counts[k] >= 2}
    if len(speakers) >= 3:
        speakers -= _sub_labels(lines, cands, speakers)
    once = {k for k, n in counts.items() if n == 1 and k not in enums}
    if len(speakers) == 1 and len(once) == 1:  # pose, solve, check
        speakers |= once
    if len(speakers) < 1:
        return Dialogue(text.strip())
    opening = {c.line: c for c in cands if c.key in speakers}
    headings = {c.line for c in cands if c.key in enums and not c.rest and c.line not in opening}
    names: dict[str, str] = {}
    for cand in cands:
        if cand.key in speakers:
            names.setdefault(cand.key, cand.name.lstrip("@"))
    preamble: list[str] = []
    turns: list[Turn] = []
    body: list[str] = []

    def close() -> None:
        if turns:
            while body and (not body[-1].strip() or _SEPARATOR.match(body[-1])):
                body.pop()
            turns[-1].text = "\n".join(body).strip()

    for number, line in enumerate(lines):
        opener = opening.get(number)
        if opener is not None:
            close()
            turns.append(Turn(opener.key, "", number))
            body = [opener.rest] if opener.rest else []
        elif number in headings:
            continue
        elif turns:
            body.append(line)
        else:
            preamble.append(line)
    close()
    return Dialogue("\n".join(preamble).strip(), turns, names)
