"""Boundary ranks of a document tokenised in one call, in a few numpy passes.

:mod:`mind_nemo.synthesize.chunking` ranks every token boundary (how good a place to cut it
is) before choosing cuts. For a document tokenised in one call this module does it
vectorised over the characters and the offsets, giving the same ranks as the streaming
per-token loop there (the tests compare the two). It lives apart so that numpy is imported
only when some document needs cutting: a run on pre-cut contexts never needs it.
"""

from __future__ import annotations

import itertools
from array import array

import numpy as np

from mind_nemo.synthesize.chunking import (
    _CLOSERS,
    _SENTENCE_END,
    NUM_RANKS,
    RANK_LINE,
    RANK_MATH_SPACE,
    RANK_PARAGRAPH,
    RANK_SENTENCE,
    RANK_SPACE,
    RANK_TOKEN,
    RANK_UNCLEAN,
    _display_math_spans,
    _no_tokens,
    _Tokenised,
)

#: Character classes for the vectorised ranking, looked up by code point (every character
#: ``\\s`` matches, and every closer and sentence end, is below U+3001; higher code points
#: share the last, empty entry).
_IS_SPACE, _IS_CLOSER, _IS_SENTENCE_END = 1, 2, 4
_CLASS_LIMIT = 0x3001
_CLASSES = np.zeros(_CLASS_LIMIT + 1, dtype=np.uint8)
_CLASSES[[c for c in range(_CLASS_LIMIT) if chr(c).isspace()]] |= _IS_SPACE
_CLASSES[[ord(c) for c in _CLOSERS]] |= _IS_CLOSER
_CLASSES[[ord(c) for c in _SENTENCE_END]] |= _IS_SENTENCE_END


def _sentence_end_before(classes: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Vectorised :func:`_follows_sentence_end` for every position in ``starts``, given the
    class of every character."""
    result = np.zeros(len(starts), dtype=bool)
    skipping = np.ones(len(starts), dtype=bool)  # only closers seen so far
    for back in range(1, 6):
        index = starts - back
        valid = index >= 0
        kind = np.where(valid, classes[np.maximum(index, 0)], 0)
        result |= skipping & (kind & _IS_SENTENCE_END).astype(bool)
        skipping &= (kind & _IS_CLOSER).astype(bool)
    return result


def _clean_ranks(text: str, positions: np.ndarray) -> np.ndarray:
    """The rank :class:`_Ranker` gives a clean boundary at each of ``positions``, in a few
    numpy passes over the characters instead of a Python loop over the tokens."""
    ranks = np.full(len(positions), RANK_TOKEN, dtype=np.uint8)
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    classes = _CLASSES[np.minimum(codes, _CLASS_LIMIT)]
    edges = np.diff((classes & _IS_SPACE).astype(np.int8), prepend=0, append=0)
    run_starts, run_ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    if not len(run_starts) or not len(positions):
        return ranks
    # The run a position touches: the first ending at or after it, if it starts at or before.
    k = np.minimum(np.searchsorted(run_ends, positions, side="left"), len(run_ends) - 1)
    in_run = (run_ends[k] >= positions) & (run_starts[k] <= positions)
    newline_count = np.concatenate(([0], np.cumsum(codes == 10)))
    cr_count = np.concatenate(([0], np.cumsum(codes == 13)))
    newlines = newline_count[run_ends] - newline_count[run_starts]
    has_cr = cr_count[run_ends] > cr_count[run_starts]
    maths = _display_math_spans(text)
    sentence = _sentence_end_before(classes, run_starts)
    if maths:
        sentence |= np.isin(run_starts, np.array([end for _, end in maths]))
    run_rank = np.select(
        [newlines >= 2, sentence, (newlines == 1) | has_cr],
        [RANK_PARAGRAPH, RANK_SENTENCE, RANK_LINE],
        RANK_SPACE,
    ).astype(np.uint8)
    ranks[in_run] = run_rank[k[in_run]]
    if maths:  # whitespace strictly inside a display-math span
        math_starts = np.array([a for a, _ in maths])
        math_ends = np.array([b for _, b in maths])
        j = np.minimum(np.searchsorted(math_ends, positions, side="right"), len(maths) - 1)
        inside = (math_ends[j] > positions) & (math_starts[j] < positions)
        ranks[in_run & inside] = RANK_MATH_SPACE
    return ranks


def tokenise_encoded(text: str, offsets: list[tuple[int, int]]) -> _Tokenised:
    """:func:`_tokenise` for a text tokenised in one call, vectorised (same boundaries and
    ranks; see that function for what they mean)."""
    length, n = len(text), len(offsets)
    if n == 0:
        return _no_tokens(length)
    flat = itertools.chain.from_iterable(offsets)  # faster than np.array on tuples
    offs = np.fromiter(flat, dtype=np.int64, count=2 * n).reshape(n, 2)
    starts, ends = offs[:, 0], offs[:, 1]
    pos = np.empty(n + 1, dtype=np.int64)
    pos[0], pos[n] = 0, length
    if n > 1:
        pos[1:n] = np.minimum(np.maximum.accumulate(starts[1:]), length)
    furthest = np.concatenate(([0], np.maximum.accumulate(ends)[:-1]))
    ranked = np.append(starts >= furthest, True)
    ranked[0] = True
    ranks = np.full(n + 1, RANK_UNCLEAN, dtype=np.uint8)
    ranks[ranked] = _clean_ranks(text, pos[ranked])
    by_rank = []
    for rank in range(NUM_RANKS):
        indices = array("i")
        indices.frombytes(np.flatnonzero(ranks == rank).astype(np.int32).tobytes())
        by_rank.append(indices)
    char_pos = array("q")
    char_pos.frombytes(pos.tobytes())
    return _Tokenised(n, char_pos, bytearray(ranks.tobytes()), by_rank)
