"""Prompt leakage and meta text: what the model said *about* the task instead of doing it.

Three kinds, handled differently:

- a preamble ("Sure! Here is a conversation between ...", a title line, the instruction echoed
  back) or a closing remark ("I hope this helps", "This dialogue covers ...") that sits outside
  the dialogue, in whole paragraphs at the start or end, or on lines glued to the first or last
  turn without a blank line: stripped when ``strip`` is on and a dialogue remains (notes
  ``stripped_preamble`` / ``stripped_closing``), else rejected (``meta_preamble`` /
  ``meta_closing``). A glued line before the first turn is outside the dialogue by position;
  one after the last turn's label could be speech, so it is cut only when it names the task
  ("this dialogue ...") or addresses the requester ("let me know ..."), or when every other
  turn is a single line (so a second line in the last one stands out);
- the style instruction echoed inside the text (shingles of the prompt's own words):
  ``instruction_echo``;
- the model talking about itself ("as an AI", "I'm a chatbot") anywhere: ``meta_text``, and a
  refusal before the first turn: ``refusal``. These cannot be cut out safely.
"""

from __future__ import annotations

import re

from mind_nemo.filter.config import LeakageConfig
from mind_nemo.filter.rules.base import KEEP, Item, Verdict
from mind_nemo.filter.rules.speakers import match_label

_META_NOUN = (
    r"(?:conversation|dialogue|dialog|debate|interview|discussion|lesson|transcript|exchange"
    r"|script|rewrite|rewritten (?:text|version)|version|role[- ]?play)"
)
#: Nouns that name the task's output unambiguously (``version`` or ``exchange`` may be maths).
_TASK_NOUN = r"(?:conversation|dialogue|dialog|debate|interview|discussion|transcript)"
_INTRO = [
    re.compile(rf"^(?:here(?:'s| is| are)|below is|below you will find|the following is)\b"
               rf".*\b{_META_NOUN}"),
    re.compile(r"^(?:i(?:'ll| will| have|'ve)|let me|let's|we(?:'ll| will))\s+(?:now\s+)?"
               r"(?:write|create|rewrite|turn|recast|present|generate|draft|compose)\b"),
    re.compile(rf"^(?:a |an |the )?{_TASK_NOUN}\b[^\n.]{{0,100}}$"),  # a title line
    re.compile(r"^title\s*:"),
]  # fmt: skip
#: Short one-line acknowledgements ("Sure!", "Certainly, here you go:").
_ACK = re.compile(
    r"^(?:sure|certainly|of course|okay|ok|absolutely|great|alright|no problem|here you go)\b"
)
_OUTRO = [
    re.compile(r"^(?:i hope|hope this|hopefully,? this)\b"),
    re.compile(rf"^(?:this|the above|in this|in the above) (?:{_TASK_NOUN}|exchange|rewrite"
               r"|rewritten text|lesson)\b"),
    re.compile(rf"^the {_TASK_NOUN} (?:above|ends|covers|shows|highlights|demonstrates)"),
    re.compile(r"^(?:let me know|feel free|if you (?:have|need|want|would))\b"),
    re.compile(rf"^notes?\s*:.*\b(?:{_META_NOUN}|prompt|instructions?|text above)\b"),
    re.compile(rf"^end of (?:the )?{_META_NOUN}"),
]  # fmt: skip
_SEPARATOR = re.compile(r"^[-*_=~]{3,}$")
#: A closing line that talks about the task or to the requester, not to the other speaker.
_ABOUT_TASK = re.compile(
    rf"\b{_TASK_NOUN}\b|^(?:let me know|feel free|if you (?:have|need|want|would))\b"
)
_SELF = re.compile(
    r"\bas an ai\b|\bas a (?:large )?language model\b|\bi(?:'m| am) smollm\b"
    r"|\bi(?:'m| am) (?:just |only )?(?:an?|the|your) (?:helpful |friendly |virtual )?"
    r"(?:ai|chatbot|language model|ai assistant|math assistant|assistant)\b"
    r"(?! (?:professor|teacher|coach|lecturer|principal|manager|editor|director))"
    r"|\btrained by (?:openai|hugging ?face|meta|google|anthropic|nvidia)\b"
)
_REFUSAL = re.compile(
    r"\bi(?:'m| am) sorry,? but i (?:can(?:'t|not)|am unable|'m unable)"
    r"|\bi can(?:'t|not) (?:help|assist|comply|fulfill|complete) (?:with )?(?:that|this|your)"
    r"|\bi(?:'m| am) (?:unable|not able) to (?:help|assist|complete|fulfill)"
)
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_WORDS = re.compile(r"[a-z0-9']+")


def paragraph_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of every non-blank paragraph (paragraphs end at a blank line)."""
    spans, start = [], 0
    for match in _PARAGRAPH_BREAK.finditer(text):
        if text[start : match.start()].strip():
            spans.append((start, match.start()))
        start = match.end()
    if text[start:].strip():
        spans.append((start, len(text)))
    return spans


def fold(text: str) -> str:
    """Casefold, straighten quotes, drop markdown decoration at the start."""
    return text.casefold().replace("’", "'").lstrip("#*_> \t")


def word_shingles(text: str, n: int) -> set[tuple[str, ...]]:
    words = _WORDS.findall(fold(text))
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def instruction_text(user_template: str, system: str = "") -> str:
    """The words of a style prompt that are not the context."""
    return f"{system}\n{user_template.replace('{context}', ' ')}"


class LeakageFilter:
    name = "leakage"

    def __init__(self, cfg: LeakageConfig, instructions: dict[str, str] | None = None) -> None:
        self.cfg = cfg
        n = cfg.instruction_ngram
        self.shingles = {s: word_shingles(t, n) for s, t in (instructions or {}).items()}
        #: Words that start an instruction shingle: only those positions are looked at.
        self.starts = {s: {g[0] for g in grams} for s, grams in self.shingles.items()}

    def echo_hits(self, style: str, text: str) -> int:
        """How many distinct instruction shingles ``text`` contains."""
        shingles = self.shingles.get(style)
        if not shingles:
            return 0
        n, starts = self.cfg.instruction_ngram, self.starts[style]
        words = _WORDS.findall(fold(text))
        found = {
            gram
            for i in range(len(words) - n + 1)
            if words[i] in starts and (gram := tuple(words[i : i + n])) in shingles
        }
        return len(found)

    def _is_echo(self, style: str, text: str) -> bool:
        return self.echo_hits(style, text) > self.cfg.max_instruction_hits

    def _is_meta(self, paragraph: str, patterns: list[re.Pattern[str]]) -> bool:
        if len(paragraph) > self.cfg.max_meta_chars:
            return False
        folded = fold(paragraph)
        one_short_line = "\n" not in paragraph.strip() and len(paragraph) <= 160
        if patterns is _INTRO and one_short_line and _ACK.match(folded):
            return True
        return any(p.search(folded) for p in patterns)

    def __call__(self, item: Item) -> Verdict:
        text = item.text
        folded = text.casefold().replace("’", "'")
        # A refusal opens the answer; inside a speaker's turn "I can't see why" is just speech.
        opening = item.dialogue.preamble if item.dialogue.turns else text[:300]
        if _REFUSAL.search(opening.casefold().replace("’", "'")):
            return Verdict.drop("refusal")
        if _SELF.search(folded):
            return Verdict.drop("meta_text")
        spans = paragraph_spans(text)
        paragraphs = [text[a:b] for a, b in spans]
        if not paragraphs:
            return KEEP
        echo = self._is_echo(item.style, text)
        head = self._run(item.style, paragraphs, _INTRO, echo)
        tail = self._run(item.style, paragraphs[head:][::-1], _OUTRO, echo)
        # Where the kept text starts and ends: after whole meta paragraphs, and after meta
        # lines glued to the first or last turn.
        start = spans[head][0] if head < len(spans) else len(text)
        end = spans[len(spans) - tail - 1][1] if tail < len(spans) - head else start
        glued_head, glued_tail = self._glued(item)
        offsets = [0]
        for line in text.splitlines(keepends=True):
            offsets.append(offsets[-1] + len(line))
        start = max(start, offsets[glued_head])
        end = min(end, offsets[len(offsets) - 1 - glued_tail]) if glued_tail else end
        body = [text[max(a, start) : min(b, end)] for a, b in spans if b > start and a < end]
        body = [p for p in body if p.strip()]
        if echo and any(self._is_echo(item.style, p) for p in body):
            return Verdict.drop("instruction_echo")
        cut_head = bool(text[:start].strip())
        cut_tail = bool(text[end:].strip())
        if not cut_head and not cut_tail:
            return KEEP
        reason = "instruction_echo" if echo else "meta_preamble" if cut_head else "meta_closing"
        if not self.cfg.strip or not body:
            return Verdict.drop(reason)
        body_has_turns = any(match_label(line) for p in body for line in p.splitlines())
        if item.dialogue.turns and not body_has_turns:  # the dialogue is in what we would cut
            return Verdict.drop(reason)
        notes: tuple[str, ...] = ("stripped_preamble",) if cut_head else ()
        notes += ("stripped_closing",) if cut_tail else ()
        return Verdict.repair(text[start:end].strip(), *notes)

    def _glued(self, item: Item) -> tuple[int, int]:
        """Lines of meta text glued to the dialogue (no blank line): how many to cut at the
        start of the text and at its end."""
        dialogue = item.dialogue
        if not dialogue.spoken:
            return 0, 0
        lines = item.text.splitlines()
        first, last = dialogue.turns[0].line, dialogue.turns[-1].line
        head = 0
        before = "\n".join(lines[:first]).strip()
        if before and self._is_meta_line(item.style, before, _INTRO):
            return first, self._glued_tail(item, lines, last)
        for i in range(first):
            line = lines[i].strip()
            if not line or _SEPARATOR.match(line):
                continue
            if not self._is_meta_line(item.style, line, _INTRO):
                break
            head = i + 1
        while 0 < head < first and (not lines[head].strip() or _SEPARATOR.match(lines[head])):
            head += 1
        return head, self._glued_tail(item, lines, last)

    def _glued_tail(self, item: Item, lines: list[str], last: int) -> int:
        dialogue = item.dialogue
        tail = 0
        single = all("\n" not in t.text for t in dialogue.spoken[:-1])
        for i in range(len(lines) - 1, last, -1):
            line = lines[i].strip()
            if not line or _SEPARATOR.match(line):
                continue
            if not self._is_meta_line(item.style, line, _OUTRO):
                break
            if not single and not _ABOUT_TASK.search(fold(line)):
                break
            tail = len(lines) - i
        while tail and len(lines) - tail - 1 > last:
            line = lines[len(lines) - tail - 1].strip()
            if line and not _SEPARATOR.match(line):
                break
            tail += 1
        return tail

    def _is_meta_line(self, style: str, line: str, patterns: list[re.Pattern[str]]) -> bool:
        return self._is_meta(line, patterns) or self._is_echo(style, line)

    def _run(
        self, style: str, paragraphs: list[str], patterns: list[re.Pattern[str]], echo: bool
    ) -> int:
        """How many paragraphs from the start of ``paragraphs`` are meta text (0 if none is
        more than a separator)."""
        count, meta = 0, False
        for paragraph in paragraphs:
            first_line, *others = paragraph.strip().splitlines()
            if _SEPARATOR.match(paragraph.strip()):
                count += 1
                continue
            if match_label(first_line) and not self._is_meta(first_line, patterns):
                break
            if any(match_label(line) for line in others):
                break  # turns glued to a meta line: :meth:`_glued` cuts the line alone
            if self._is_meta(paragraph, patterns) or (echo and self._is_echo(style, paragraph)):
                count, meta = count + 1, True
                continue
            break
        return count if meta else 0
