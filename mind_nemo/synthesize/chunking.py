"""Cut documents into ~500-token contexts, the unit MIND turns into one conversation.

The MIND paper feeds the generator windows of about 500 tokens *of the generator's own
tokenizer*, so lengths here are counted with that tokenizer, not with characters or words. A
window that ends mid-sentence or mid-equation gives the model a broken premise to talk about, so
each cut is placed at the most natural boundary near the target: a blank line, else a sentence
end (``.?!`` or the end of a display-math block; cuts inside display math are avoided), else a
line break, else any whitespace, and only as a last resort between two tokens. A cut that would
leave a window much shorter than the target is not accepted; the next kind of boundary is tried
instead, so contexts stay close to the budget.

The document is tokenised once. Each token boundary gets a rank (how good a cut it is) in one
linear pass over the offsets, and each cut is then found by binary search in per-rank lists, so
chunking stays linear in the document length however long the page is.
"""

from __future__ import annotations

import bisect
import math
import re
from dataclasses import dataclass
from typing import Any

from mind_nemo.core.errors import UserError
from mind_nemo.core.records import Context, Document
from mind_nemo.synthesize.config import ChunkConfig

#: A cut must leave a context of at least this fraction of ``context_tokens`` (the search only
#: looks at the last 40% of the window) before a worse kind of boundary is tried.
MIN_FILL = 0.6

#: Boundary ranks, best first. A lower rank is a more natural place to cut.
RANK_PARAGRAPH = 0
RANK_SENTENCE = 1
RANK_LINE = 2
RANK_SPACE = 3
#: Whitespace inside display math: better than splitting a token, worse than any cut outside.
RANK_MATH_SPACE = 4
#: Between two tokens with no whitespace around (e.g. inside a long word or LaTeX blob).
RANK_TOKEN = 5
#: Between two tokens whose character offsets overlap (one character split over two tokens).
RANK_UNCLEAN = 6
NUM_RANKS = 7

#: Characters that may close a sentence after its final punctuation: ``said." Then``.
_CLOSERS = "\"')]}\u201d\u2019\u00bb*_"
_SENTENCE_END = ".?!"
_WHITESPACE = re.compile(r"\s+")
#: Delimiters of display math we avoid cutting inside: ``$$``, ``\[ \]`` and environments.
_MATH_DELIMITER = re.compile(
    r"\$\$|\\\[|\\\]"
    r"|\\(begin|end)\{(equation|align|alignat|gather|multline|eqnarray|displaymath)\*?\}"
)
#: A display-math block longer than this is taken for an unmatched opener and ignored.
_MAX_MATH_CHARS = 8000


def validate_chunk_config(cfg: ChunkConfig) -> None:
    """Raise :class:`UserError` (one line) if ``cfg`` cannot produce sensible contexts."""
    if cfg.context_tokens <= 0:
        raise UserError(f"chunking.context_tokens must be > 0, got {cfg.context_tokens}")
    if cfg.overlap_tokens < 0:
        raise UserError(f"chunking.overlap_tokens must be >= 0, got {cfg.overlap_tokens}")
    if cfg.overlap_tokens >= cfg.context_tokens:
        raise UserError(
            f"chunking.overlap_tokens ({cfg.overlap_tokens}) must be smaller than "
            f"chunking.context_tokens ({cfg.context_tokens})"
        )
    if cfg.min_tokens < 0:
        raise UserError(f"chunking.min_tokens must be >= 0, got {cfg.min_tokens}")


@dataclass
class _Tokenised:
    """A document's tokenisation reduced to what cutting needs.

    ``char_pos[i]`` is the character position of the boundary before token ``i`` (``i`` in
    ``0..n``), non-decreasing, with ``char_pos[0] == 0`` and ``char_pos[n] == len(text)`` so
    that consecutive spans tile the text even when offsets have gaps or overlaps.
    ``ranks[i]`` says how good a cut boundary ``i`` is (see ``RANK_*``).
    """

    num_tokens: int
    char_pos: list[int]
    ranks: list[int]
    by_rank: list[list[int]]


def _offsets(text: str, tokenizer: Any) -> list[tuple[int, int]]:
    """Tokenise ``text`` once and return each token's ``(start, end)`` character offsets."""
    try:
        encoding = tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, verbose=False
        )
    except NotImplementedError as err:
        raise UserError(
            "chunking needs a fast (Rust) Hugging Face tokenizer that returns offsets"
        ) from err
    return [(int(a), int(b)) for a, b in encoding["offset_mapping"]]


def _boundary_positions(
    offsets: list[tuple[int, int]], length: int
) -> tuple[list[int], list[bool]]:
    """Character position of every token boundary and whether it is clean.

    A boundary is clean when the next token starts at or after the end of every earlier token;
    byte-level BPE can split one character over two tokens, whose offsets then overlap, and a
    cut there would not re-tokenise to the same tokens.
    """
    n = len(offsets)
    char_pos = [0] * (n + 1)
    clean = [True] * (n + 1)
    furthest_end = 0
    for i, (start, end) in enumerate(offsets):
        if i > 0:
            char_pos[i] = min(max(char_pos[i - 1], start), length)
            clean[i] = start >= furthest_end
        furthest_end = max(furthest_end, end)
    char_pos[n] = length
    return char_pos, clean


def _closer_for(match: re.Match[str]) -> str | None:
    """The delimiter that closes the display math opened by ``match`` (None: not an opener)."""
    token = match.group(0)
    if token == "$$":
        return "$$"
    if token == "\\[":
        return "\\]"
    if match.group(1) == "begin":
        return token.replace("\\begin", "\\end", 1)
    return None


def _display_math_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of display math (``$$..$$``, ``\\[..\\]``, equation environments).

    One pass pairing delimiters (linear, unlike a lazy regex that rescans after every
    unmatched opener); an opener left unclosed for ``_MAX_MATH_CHARS`` is dropped.
    """
    spans: list[tuple[int, int]] = []
    closer: str | None = None
    opened_at = 0
    for match in _MATH_DELIMITER.finditer(text):
        token = match.group(0)
        if closer is not None and match.start() - opened_at > _MAX_MATH_CHARS:
            closer = None
        if closer is None:
            closer = _closer_for(match)
            opened_at = match.start()
        elif token == closer:
            spans.append((opened_at, match.end()))
            closer = None
    return spans


def _follows_sentence_end(text: str, pos: int) -> bool:
    """True if the non-whitespace text just before ``pos`` ends with ``.``, ``?`` or ``!``
    (possibly followed by closing quotes or brackets)."""
    i = pos - 1
    while i >= 0 and pos - i <= 4 and text[i] in _CLOSERS:
        i -= 1
    return i >= 0 and text[i] in _SENTENCE_END


def _whitespace_rank(text: str, start: int, end: int, after_math: bool) -> int:
    """Rank of a cut anywhere in the whitespace run ``text[start:end]``.

    ``after_math`` says the run directly follows a display-math block, which ends a sentence
    as surely as a full stop does (and often replaces one).
    """
    newlines = text.count("\n", start, end)
    if newlines >= 2:
        return RANK_PARAGRAPH
    if after_math or _follows_sentence_end(text, start):
        return RANK_SENTENCE
    if newlines == 1 or "\r" in text[start:end]:
        return RANK_LINE
    return RANK_SPACE


def _rank_boundaries(text: str, char_pos: list[int], clean: list[bool]) -> list[int]:
    """Rank every token boundary in one sweep over whitespace runs and display-math spans."""
    maths = _display_math_spans(text)
    math_ends = {end for _, end in maths}
    runs = [m.span() for m in _WHITESPACE.finditer(text)]
    run_ranks = [_whitespace_rank(text, a, b, a in math_ends) for a, b in runs]
    ranks = [RANK_TOKEN] * len(char_pos)
    r = m = 0
    for i, pos in enumerate(char_pos):
        if not clean[i]:
            ranks[i] = RANK_UNCLEAN
            continue
        while r < len(runs) and runs[r][1] < pos:
            r += 1
        while m < len(maths) and maths[m][1] <= pos:
            m += 1
        if r < len(runs) and runs[r][0] <= pos:
            inside_math = m < len(maths) and maths[m][0] < pos
            ranks[i] = RANK_MATH_SPACE if inside_math else run_ranks[r]
    return ranks


def _tokenise(text: str, tokenizer: Any) -> _Tokenised:
    """Tokenise ``text`` and rank all its token boundaries."""
    offsets = _offsets(text, tokenizer)
    char_pos, clean = _boundary_positions(offsets, len(text))
    ranks = _rank_boundaries(text, char_pos, clean)
    by_rank: list[list[int]] = [[] for _ in range(NUM_RANKS)]
    for i, rank in enumerate(ranks):
        by_rank[rank].append(i)
    return _Tokenised(len(offsets), char_pos, ranks, by_rank)


def _latest(indices: list[int], lo: int, hi: int) -> int | None:
    """The largest value of the sorted list ``indices`` within ``[lo, hi]``, if any."""
    k = bisect.bisect_right(indices, hi) - 1
    if k >= 0 and indices[k] >= lo:
        return indices[k]
    return None


class Chunker:
    """Cuts documents into contexts of at most ``cfg.context_tokens`` tokens of ``tokenizer``.

    ``tokenizer`` must be a fast Hugging Face tokenizer (it has to return offsets).
    """

    def __init__(self, tokenizer: Any, cfg: ChunkConfig) -> None:
        validate_chunk_config(cfg)
        self.tokenizer = tokenizer
        self.cfg = cfg

    def __call__(self, document: Document) -> list[Context]:
        """Split one document; whitespace-only documents give no contexts."""
        text = document.text
        if not text.strip():
            return []
        tok = _tokenise(text, self.tokenizer)
        spans = self._token_spans(tok)
        return [
            self._context(document, index, start, end, tok)
            for index, (start, end) in enumerate(spans)
        ]

    def _token_spans(self, tok: _Tokenised) -> list[tuple[int, int]]:
        """Greedy left-to-right ``(token_start, token_end)`` spans covering all tokens."""
        n = tok.num_tokens
        spans: list[tuple[int, int]] = []
        start = 0
        while True:
            if n - start <= self.cfg.context_tokens:
                spans.append((start, n))
                return spans
            cut = self._choose_cut(tok, start)
            spans.append((start, cut))
            start = self._next_start(tok, start, cut)

    def _choose_cut(self, tok: _Tokenised, start: int) -> int:
        """The best boundary to end a context that begins at token ``start``.

        The search window is the last ``1 - MIN_FILL`` of the budget; boundary kinds are tried
        best first, and the latest boundary of the first kind found wins.

        Short trailing pieces are handled here, by looking ahead: a piece is only cut off when
        the rest does not fit in one context, so merging a short tail back would always exceed
        the budget. Instead, among boundaries of the same kind, one that leaves at least
        ``min_tokens`` for the rest is preferred. A better kind of boundary still wins even if
        it leaves a short tail, and a short tail that cannot be avoided stays its own context.
        """
        size = self.cfg.context_tokens
        hi = start + size
        lo = start + max(1, math.ceil(MIN_FILL * size))
        tail_cap = min(hi, tok.num_tokens - self.cfg.min_tokens)
        for rank in range(NUM_RANKS):
            indices = tok.by_rank[rank]
            cut = _latest(indices, lo, tail_cap) if tail_cap >= lo else None
            if cut is None:
                cut = _latest(indices, lo, hi)
            if cut is not None:
                return cut
        return hi  # unreachable: every boundary has a rank, and hi itself is a boundary

    def _next_start(self, tok: _Tokenised, start: int, cut: int) -> int:
        """Where the context after ``[start, cut)`` begins: ``overlap_tokens`` before ``cut``,
        nudged by a few tokens to the best nearby boundary so it starts on a word."""
        overlap = self.cfg.overlap_tokens
        if overlap == 0:
            return cut
        target = max(cut - overlap, start + 1)
        slack = min(overlap // 4, 16)
        lo = max(start + 1, target - slack)
        hi = min(cut, target + slack)
        return min(range(lo, hi + 1), key=lambda i: (tok.ranks[i], abs(i - target), i))

    @staticmethod
    def _context(document: Document, index: int, start: int, end: int, tok: _Tokenised) -> Context:
        """Build the record for tokens ``[start, end)`` with its exact character span."""
        char_start = tok.char_pos[start]
        char_end = tok.char_pos[end]
        return Context(
            document_id=document.id,
            index=index,
            text=document.text[char_start:char_end],
            token_start=start,
            token_end=end,
            char_start=char_start,
            char_end=char_end,
        )


def split_into_contexts(document: Document, tokenizer: Any, cfg: ChunkConfig) -> list[Context]:
    """Cut ``document`` into contexts of at most ``cfg.context_tokens`` tokens (see module doc)."""
    return Chunker(tokenizer, cfg)(document)
