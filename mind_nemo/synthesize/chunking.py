"""Cut documents into ~500-token contexts, the unit MIND turns into one conversation.

The MIND paper feeds the generator windows of about 500 tokens *of the generator's own
tokenizer*, so lengths here are counted with that tokenizer, not with characters or words. A
window that ends mid-sentence or mid-equation gives the model a broken premise to talk about, so
each cut is placed at the most natural boundary near the target: a blank line, else a sentence
end (``.?!`` or the end of a display-math block; cuts inside display math are avoided), else a
line break, else any whitespace, and only as a last resort between two tokens. A cut that would
leave a window much shorter than the target is not accepted; the next kind of boundary is tried
instead, so contexts stay close to the budget.

Each token boundary gets a rank (how good a cut it is) in one linear pass over the offsets, and
each cut is then found by binary search in per-rank lists, so chunking stays linear in the
document length however long the page is.

**Memory.** Web corpora hold the odd 20 MB page (a log, a dump, a table). One tokenizer call on
it makes the Rust encoding plus a Python list of millions of offset tuples: gigabytes. So a
document longer than :data:`PIECE_CHARS` is tokenised piece by piece, each piece ending at a
whitespace boundary near a paragraph break, and every token's offsets are shifted by its piece's
start; what is kept per token is 13 bytes in compact arrays (position, rank, one rank-list
entry), never a list of Python objects. A junction is accepted only where a probe shows the
tokenizer splits the text there anyway (tokenising the text around it whole and in two halves
gives the same tokens), so the tokens, and thus the contexts, are those of one call over the
whole document; where no such junction is found near the target (no whitespace for a whole
piece) the piece is cut anyway and a token or two at that point may differ. Documents up to
:data:`PIECE_CHARS` (nearly all pages) are tokenised in one call, exactly as before.

**Speed.** The tokenizer is called through the ``tokenizers`` library directly
(:mod:`mind_nemo.core.tokenizer`; a transformers tokenizer is unwrapped to its backend), many
documents per call (:meth:`Chunker.split_batch`, which runs in the synthesize stage's producer
thread while the Rust side releases the GIL). A document that fits in one context needs no
boundary ranks at all; the others of one batch are ranked together, with a few numpy passes
over their characters and tokens (:mod:`mind_nemo.synthesize.boundary_ranks`, imported only
then, so a run on pre-cut contexts never loads numpy), the same ranks the streaming per-token
loop gives (that loop is kept for documents tokenised in pieces, and the tests compare the two).

**Display math** (``$$..$$``, ``\\[..\\]``, equation environments) is paired in one linear pass.
An unmatched delimiter must not turn the prose after it into "math" (that would forbid the
sentence cuts there), so a span cannot cross a blank line (TeX refuses a paragraph break inside
display math too) and cannot exceed :data:`MAX_MATH_CHARS`; an opener that runs into either is
dropped and the next delimiter is considered afresh.
"""

from __future__ import annotations

import bisect
import contextlib
import gc
import json
import math
import re
from array import array
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from tokenizers import Encoding

from mind_nemo.core.records import Context, Document, text_hash
from mind_nemo.core.tokenizer import FastTokenizer, as_fast
from mind_nemo.synthesize.config import ChunkConfig

#: Bump when a change to this module changes the contexts of some document.
CHUNKER_VERSION = 1
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

#: Longest text given to the tokenizer in one call; longer documents are tokenised in pieces
#: of at most this many characters (the tokenizer needs ~200 bytes per character transiently).
PIECE_CHARS = 1 << 17
#: Characters either side of a piece junction that the probe tokenises to check it.
PROBE_CHARS = 256
#: Junction candidates probed per piece before cutting at the best one unchecked.
MAX_PROBES = 8
#: A display-math span longer than this is taken for an unmatched opener and ignored. Long
#: ``align`` blocks stay under it; an unmatched ``$$`` pairing with one far away does not.
MAX_MATH_CHARS = 3000

#: Characters that may close a sentence after its final punctuation: ``said." Then``.
_CLOSERS = "\"')]}\u201d\u2019\u00bb*_"
_SENTENCE_END = ".?!"
_WHITESPACE = re.compile(r"\s+")
#: A blank line: two line breaks with nothing but spaces or tabs between them.
_BLANK_LINE = re.compile(r"\n[^\S\n]*\n")
#: Delimiters of display math we avoid cutting inside: ``$$``, ``\[ \]`` and environments.
_MATH_DELIMITER = re.compile(
    r"\$\$|\\\[|\\\]"
    r"|\\(begin|end)\{(equation|align|alignat|gather|multline|eqnarray|displaymath)\*?\}"
)


@dataclass
class _Tokenised:
    """A document's tokenisation reduced to what cutting needs, in compact arrays.

    ``char_pos[i]`` is the character position of the boundary before token ``i`` (``i`` in
    ``0..n``), non-decreasing, with ``char_pos[0] == 0`` and ``char_pos[n] == len(text)`` so
    that consecutive spans tile the text even when offsets have gaps or overlaps.
    ``ranks[i]`` says how good a cut boundary ``i`` is (see ``RANK_*``); ``by_rank[r]`` lists
    the boundaries of rank ``r`` in increasing order.
    """

    num_tokens: int
    char_pos: array
    ranks: bytearray
    by_rank: list[array]


def _piece_offsets(text: str, tokenizer: Any) -> list[tuple[int, int]]:
    """One tokenizer call: each token's ``(start, end)`` character offsets within ``text``."""
    return as_fast(tokenizer).offsets(text)


def _splits_cleanly(text: str, cut: int, tokenizer: Any) -> bool:
    """True if tokenising around ``cut`` whole or as two halves gives the same tokens."""
    lo, hi = max(0, cut - PROBE_CHARS), min(len(text), cut + PROBE_CHARS)
    whole = [tuple(o) for o in _piece_offsets(text[lo:hi], tokenizer)]
    left = [tuple(o) for o in _piece_offsets(text[lo:cut], tokenizer)]
    shift = cut - lo
    right = [(a + shift, b + shift) for a, b in _piece_offsets(text[cut:hi], tokenizer)]
    return whole == left + right


def _junction_candidates(text: str, lo: int, hi: int) -> list[int]:
    """Where to try ending a piece within ``(lo, hi]``, best first: the last whitespace runs
    holding a blank line, then the last other runs; each at its start (after the word before
    it, where byte-level BPE tokenizers always split), then at its end.

    Only the end of the range is scanned at first (4 KiB, growing fourfold until a blank line
    turns up), so finding a junction costs little even in pages with hardly any.
    """
    span = 4096
    while True:
        start = max(lo, hi - span)
        paragraphs: list[tuple[int, int]] = []
        others: list[tuple[int, int]] = []
        for run in _WHITESPACE.finditer(text, start, hi):
            a, b = run.span()
            group = paragraphs if text.count("\n", a, b) >= 2 else others
            group.append((a, b))
            del group[:-MAX_PROBES]  # keep only the latest few
        if paragraphs or start == lo:
            runs = [*reversed(paragraphs), *reversed(others)]
            return [p for run in runs for p in run if lo < p <= hi]
        span *= 4


def _piece_ends(text: str, tokenizer: Any) -> Iterator[int]:
    """End positions of the pieces ``text`` is tokenised in (the last is ``len(text)``)."""
    start, length = 0, len(text)
    while length - start > PIECE_CHARS:
        hi = start + PIECE_CHARS
        candidates = _junction_candidates(text, start + PIECE_CHARS // 2, hi)
        cut = next(
            (c for c in candidates[:MAX_PROBES] if _splits_cleanly(text, c, tokenizer)),
            candidates[0] if candidates else hi,
        )
        yield cut
        start = cut
    yield length


def _iter_pieces(text: str, tokenizer: Any) -> Iterator[tuple[int, list[tuple[int, int]]]]:
    """``(piece_start, offsets within the piece)`` for the pieces ``text`` is tokenised in
    (see the module doc); only one piece's offsets exist at a time."""
    start = 0
    for end in _piece_ends(text, tokenizer):
        piece = text[start:end] if start or end < len(text) else text
        yield start, _piece_offsets(piece, tokenizer)
        start = end


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
    unmatched opener). An open span is dropped when a blank line or more than
    :data:`MAX_MATH_CHARS` separate it from the next delimiter, which is then considered as
    an opener itself; each stretch of text is searched for blank lines once.
    """
    spans: list[tuple[int, int]] = []
    closer: str | None = None
    opened_at = checked_to = 0
    for match in _MATH_DELIMITER.finditer(text):
        token = match.group(0)
        if closer is not None and (
            match.start() - opened_at > MAX_MATH_CHARS
            or _BLANK_LINE.search(text, checked_to, match.start())
        ):
            closer = None
        if closer is None:
            closer = _closer_for(match)
            opened_at = match.start()
        elif token == closer:
            spans.append((opened_at, match.end()))
            closer = None
        checked_to = match.end()
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


class _Ranker:
    """Ranks clean boundaries given in increasing position, in one sweep over the whitespace
    runs (found lazily, never listed) and the display-math spans of ``text``."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.maths = _display_math_spans(text)
        self.math_ends = {end for _, end in self.maths}
        self.m = 0
        self.runs = _WHITESPACE.finditer(text)
        self.run = next(self.runs, None)
        self.run_rank: int | None = None

    def rank(self, pos: int) -> int:
        run = self.run
        while run is not None and run.end() < pos:
            run = next(self.runs, None)
            self.run_rank = None
        self.run = run
        maths = self.maths
        while self.m < len(maths) and maths[self.m][1] <= pos:
            self.m += 1
        if run is None or run.start() > pos:
            return RANK_TOKEN
        if self.m < len(maths) and maths[self.m][0] < pos:
            return RANK_MATH_SPACE
        if self.run_rank is None:
            a, b = run.span()
            self.run_rank = _whitespace_rank(self.text, a, b, a in self.math_ends)
        return self.run_rank


def _no_tokens(length: int) -> _Tokenised:
    """A text with no tokens at all: one boundary, at the end."""
    by_rank = [array("i") for _ in range(NUM_RANKS)]
    by_rank[RANK_TOKEN].append(0)
    return _Tokenised(0, array("q", [length]), bytearray([RANK_TOKEN]), by_rank)


def _tokenise(text: str, tokenizer: Any) -> _Tokenised:
    """Tokenise ``text`` and rank all its token boundaries, streaming over the offsets.

    Boundary ``i`` sits at the start of token ``i`` (kept from drifting backwards); it is clean
    when that token starts at or after the end of every earlier token: byte-level BPE can split
    one character over two tokens, whose offsets then overlap, and a cut there would not
    re-tokenise to the same tokens.
    """
    length = len(text)
    char_pos = array("q")
    ranks = bytearray()
    by_rank = [array("i") for _ in range(NUM_RANKS)]
    rank_at = _Ranker(text).rank
    index = pos = furthest_end = 0
    for base, offsets in _iter_pieces(text, tokenizer):
        for a, b in offsets:  # the hot loop: millions of tokens for a huge page
            start, end = base + a, base + b
            clean = start >= furthest_end
            if index:
                pos = min(max(pos, start), length)
            rank = rank_at(pos) if clean or not index else RANK_UNCLEAN
            by_rank[rank].append(index)
            char_pos.append(pos)
            ranks.append(rank)
            index += 1
            if end > furthest_end:
                furthest_end = end
    if index == 0:
        return _no_tokens(length)
    rank = rank_at(length)
    by_rank[rank].append(index)
    char_pos.append(length)
    ranks.append(rank)
    return _Tokenised(index, char_pos, ranks, by_rank)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for a moment.

    A batch's offsets come from the tokenizer as one tuple per token, hundreds of thousands of
    them, alive only until numpy has copied them. Each 700 new tuples would start a collection
    and some of those a full one over every object of the process: on the bench's documents
    that was 0.17 CPU-s of collections in a 2,006-request run, against 0.04 s from pre-cut
    contexts. Tuples of ints hold no cycles, so nothing is left for the collector to find. The
    switch is process-wide; it is off for a few milliseconds per batch, and the loop's garbage
    is collected as soon as it is back on.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _latest(indices: Sequence[int], lo: int, hi: int) -> int | None:
    """The largest value of the sorted sequence ``indices`` within ``[lo, hi]``, if any."""
    k = bisect.bisect_right(indices, hi) - 1
    if k >= 0 and indices[k] >= lo:
        return indices[k]
    return None


class Chunker:
    """Cuts documents into contexts of at most ``cfg.context_tokens`` tokens of ``tokenizer``.

    ``tokenizer`` is a :class:`~mind_nemo.core.tokenizer.FastTokenizer`, a
    ``tokenizers.Tokenizer`` or a transformers fast tokenizer (it has to return offsets).
    ``threads()`` says, before each batch, over how many threads to spread its encode (the
    tokenizer releases the GIL): the synthesize stage asks for every core only while requests
    wait for the plan, and for one while the plan is ahead, so that the event loop keeps a core.
    """

    def __init__(
        self, tokenizer: Any, cfg: ChunkConfig, threads: Callable[[], int] = lambda: 1
    ) -> None:
        self.tokenizer: FastTokenizer = as_fast(tokenizer)
        self.cfg = cfg
        self.threads = threads
        self._pool: ThreadPoolExecutor | None = None
        self._pool_size = 0

    def _encode(self, texts: list[str]) -> list[Encoding]:
        """One batch encode, spread over ``threads()`` threads in slices of about equal length
        (the encodings are those of one call: each text is encoded on its own either way)."""
        n = min(self.threads(), len(texts))
        if n <= 1:
            return self.tokenizer.encode_batch(texts)
        if self._pool_size < n - 1:  # grown once, then reused (idle threads just wait)
            if self._pool is not None:
                self._pool.shutdown(wait=False)
            self._pool = ThreadPoolExecutor(n - 1, thread_name_prefix="encode")
            self._pool_size = n - 1
        assert self._pool is not None
        total, reached = sum(map(len, texts)), 0
        ends: list[int] = []
        for i, text in enumerate(texts):
            reached += len(text)
            if reached * n >= total * (len(ends) + 1) and len(ends) < n - 1:
                ends.append(i + 1)
        slices = [texts[a:b] for a, b in zip([0, *ends], [*ends, len(texts)], strict=True)]
        others = [self._pool.submit(self.tokenizer.encode_batch, part) for part in slices[1:]]
        encodings = self.tokenizer.encode_batch(slices[0])
        for future in others:
            encodings.extend(future.result())
        return encodings

    def __call__(self, document: Document) -> list[Context]:
        """Split one document; whitespace-only documents give no contexts."""
        return self.split_batch([document])[0]

    def split_batch(self, documents: Sequence[Document]) -> list[list[Context]]:
        """Split many documents with one tokenizer call for all those that fit in one piece,
        and one ranking pass for all of those longer than a context (the contexts are those
        of splitting each alone)."""
        whole = [
            i
            for i, doc in enumerate(documents)
            if len(doc.text) <= PIECE_CHARS and doc.text.strip()
        ]
        encodings: dict[int, Encoding] = {}
        if whole:
            batch = self._encode([documents[i].text for i in whole])
            encodings = dict(zip(whole, batch, strict=True))
        fits = {i for i, e in encodings.items() if 0 < len(e) <= self.cfg.context_tokens}
        ranked: dict[int, _Tokenised] = {}
        if to_rank := [i for i in encodings if i not in fits]:
            from mind_nemo.synthesize.boundary_ranks import tokenise_encoded  # numpy: only here

            texts = [documents[i].text for i in to_rank]
            with _collector_paused():  # a tuple per token, freed right after
                ranks = tokenise_encoded(texts, [encodings[i].offsets for i in to_rank])
            ranked = dict(zip(to_rank, ranks, strict=True))
        out: list[list[Context]] = []
        for i, document in enumerate(documents):
            if not document.text.strip():
                out.append([])
            elif i in fits:  # no boundary to choose
                n, length = len(encodings[i]), len(document.text)
                out.append([Context(document.id, 0, document.text, 0, n, 0, length)])
            elif i in ranked:
                out.append(self._split(document, ranked[i]))
            else:  # a huge page: tokenised in pieces, streaming
                out.append(self._split(document, _tokenise(document.text, self.tokenizer)))
        return out

    def _split(self, document: Document, tok: _Tokenised) -> list[Context]:
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


def split_fingerprint(tokenizer: Any, cfg: ChunkConfig) -> str:
    """Names the way documents are split (settings and tokenizer): two splits with the same
    fingerprint give the same contexts, so a document's noted context count stays valid."""
    settings = json.dumps(vars(cfg), sort_keys=True)
    digest = as_fast(tokenizer).definition_digest
    return text_hash(f"{CHUNKER_VERSION}\x00{settings}\x00{digest}")
