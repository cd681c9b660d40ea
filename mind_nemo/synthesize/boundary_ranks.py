"""Boundary ranks of documents each tokenised in one call, in a few numpy passes per batch.

:mod:`mind_nemo.synthesize.chunking` ranks every token boundary (how good a place to cut it
is) before choosing cuts. For documents each tokenised in one call this module does it
vectorised over the characters and the offsets of a whole batch of them, giving the same ranks
as the streaming per-token loop there (the tests compare the two). It lives apart so that numpy
is imported only when some document needs cutting: a run on pre-cut contexts never needs it.
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Iterator, Sequence

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


def _clean_ranks(text: str, positions: np.ndarray, maths: list[tuple[int, int]]) -> np.ndarray:
    """The rank :class:`_Ranker` gives a clean boundary at each of ``positions``, in a few
    numpy passes over the characters instead of a Python loop over the tokens (``maths``: the
    display-math spans of ``text``)."""
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


def tokenise_encoded(
    texts: Sequence[str], offsets: Sequence[list[tuple[int, int]]]
) -> list[_Tokenised]:
    """:func:`_tokenise` for texts each tokenised in one call, vectorised over the whole batch
    (same boundaries and ranks; see that function for what they mean).

    The texts are ranked as one string, joined by a NUL (a character of no class, so no
    whitespace run, sentence end or closer crosses from one text into the next), so the numpy
    passes run once per batch rather than once per text: per call, their fixed cost was most
    of the ranking time for texts of a few thousand characters.
    """
    todo = [i for i, o in enumerate(offsets) if len(o)]
    if not todo:
        return [_no_tokens(len(text)) for text in texts]
    lengths = np.array([len(texts[i]) for i in todo], dtype=np.int64)
    counts = np.array([len(offsets[i]) for i in todo], dtype=np.int64)
    bases = np.concatenate(([0], np.cumsum(lengths + 1)[:-1]))  # each text, then one NUL
    total = int(counts.sum())
    flat = itertools.chain.from_iterable(itertools.chain.from_iterable(offsets[i] for i in todo))
    offs = np.fromiter(flat, dtype=np.int64, count=2 * total).reshape(total, 2)
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))  # each text's first token
    doc_of_token = np.repeat(np.arange(len(todo)), counts)
    shift = bases[doc_of_token]
    starts, ends = offs[:, 0] + shift, offs[:, 1] + shift
    # Boundary before each token: its start, never moving backwards; a text's first is at 0.
    starts_fixed = starts.copy()
    starts_fixed[first] = bases
    ends_of_text = bases + lengths
    token_pos = np.minimum(np.maximum.accumulate(starts_fixed), ends_of_text[doc_of_token])
    # Clean: the token starts at or after the end of every earlier token of its text.
    furthest = np.concatenate(([0], np.maximum.accumulate(ends)[:-1]))
    token_clean = starts >= furthest
    token_clean[first] = True
    # Boundaries: a text's tokens, then its end; block ``k`` starts at first[k] + k.
    size = total + len(todo)
    token_slot = np.arange(total) + doc_of_token
    end_slot = first + counts + np.arange(len(todo))
    pos = np.empty(size, dtype=np.int64)
    pos[token_slot], pos[end_slot] = token_pos, ends_of_text
    clean = np.ones(size, dtype=bool)
    clean[token_slot] = token_clean
    maths = [
        (int(base) + a, int(base) + b)
        for base, i in zip(bases, todo, strict=True)
        for a, b in _display_math_spans(texts[i])
    ]
    ranks = np.full(size, RANK_UNCLEAN, dtype=np.uint8)
    ranks[clean] = _clean_ranks("\x00".join(texts[i] for i in todo), pos[clean], maths)
    ranked = _per_text(ranks, pos, bases, counts)  # one per text with tokens, in order
    pairs = zip(texts, offsets, strict=True)
    return [next(ranked) if len(o) else _no_tokens(len(t)) for t, o in pairs]


def _per_text(
    ranks: np.ndarray, pos: np.ndarray, bases: np.ndarray, counts: np.ndarray
) -> Iterator[_Tokenised]:
    """Cut the batch's boundary arrays (text ``k`` holds ``counts[k] + 1`` boundaries, its
    characters start at ``bases[k]`` in the joined string) back into one result per text."""
    block_ends = np.cumsum(counts + 1)
    block_starts = block_ends - (counts + 1)
    local_pos = pos - np.repeat(bases, counts + 1)
    by_rank_all = [np.flatnonzero(ranks == rank).astype(np.int32) for rank in range(NUM_RANKS)]
    bounds = [
        (np.searchsorted(g, block_starts), np.searchsorted(g, block_ends)) for g in by_rank_all
    ]
    for k in range(len(counts)):
        a, b = int(block_starts[k]), int(block_ends[k])
        by_rank = []
        for everywhere, (lows, highs) in zip(by_rank_all, bounds, strict=True):
            indices = array("i")
            indices.frombytes((everywhere[lows[k] : highs[k]] - a).tobytes())
            by_rank.append(indices)
        char_pos = array("q")
        char_pos.frombytes(local_pos[a:b].tobytes())
        yield _Tokenised(int(counts[k]), char_pos, bytearray(ranks[a:b].tobytes()), by_rank)
