"""Tests for ``mind_nemo.synthesize.chunking`` with the real embedded (SmolLM2) tokenizer.

The invariants checked everywhere: no context over budget, spans tile the document exactly,
each context's text is its slice of the document, and indices run 0..n-1.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from typing import Any

import pytest

from mind_nemo.core.errors import UserError
from mind_nemo.core.records import Context, Document
from mind_nemo.synthesize.chunking import Chunker, split_into_contexts
from mind_nemo.synthesize.config import ChunkConfig
from tests.helpers import REPO

SAMPLE = REPO / "mind_nemo" / "data" / "sample_owm.jsonl"
WORDS = [
    *("the", "of", "a", "integral", "derivative", "function", "prime", "number", "matrix"),
    *("we", "let", "show", "that", "proof", "limit", "series", "sum", "converges", "bounded"),
    *("continuous", "vector", "space", "field", "group", "ring", "order"),
]


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from mind_nemo.servers.embedded_model import load_embedded_tokenizer

    return load_embedded_tokenizer()


def _sentence(rng: random.Random, lo: int = 5, hi: int = 25) -> str:
    words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))
    return words.capitalize() + rng.choice(".?!")


def _paragraphs(seed: int, count: int, max_sentences: int = 5) -> str:
    rng = random.Random(seed)
    paras = [
        " ".join(_sentence(rng) for _ in range(rng.randint(1, max_sentences))) for _ in range(count)
    ]
    return "\n\n".join(paras)


def _num_tokens(tokenizer: Any, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _check_invariants(doc: Document, contexts: list[Context], cfg: ChunkConfig) -> None:
    """Budget, exact slices, indices; contiguous tiling when there is no overlap."""
    assert [c.index for c in contexts] == list(range(len(contexts)))
    for c in contexts:
        assert c.document_id == doc.id
        assert 0 < c.num_tokens <= cfg.context_tokens
        assert c.text == doc.text[c.char_start : c.char_end]
    if not contexts:
        return
    assert contexts[0].char_start == 0 and contexts[0].token_start == 0
    assert contexts[-1].char_end == len(doc.text)
    for prev, nxt in itertools.pairwise(contexts):
        if cfg.overlap_tokens == 0:
            assert nxt.char_start == prev.char_end
            assert nxt.token_start == prev.token_end
        else:
            assert prev.token_start < nxt.token_start <= prev.token_end
            assert prev.char_start <= nxt.char_start <= prev.char_end


def _inner_cuts(contexts: list[Context]) -> list[int]:
    return [c.char_end for c in contexts[:-1]]


def _run_around(text: str, pos: int) -> tuple[int, int]:
    """The maximal whitespace run ``text[a:b]`` with ``a <= pos <= b`` (empty if none)."""
    a, b = pos, pos
    while a > 0 and text[a - 1].isspace():
        a -= 1
    while b < len(text) and text[b].isspace():
        b += 1
    return a, b


def _cut_kinds(text: str, contexts: list[Context]) -> list[tuple[str, str]]:
    """For each inner cut: (the whitespace run it sits in, the text just before that run)."""
    kinds = []
    for cut in _inner_cuts(contexts):
        a, b = _run_around(text, cut)
        kinds.append((text[a:b], text[max(0, a - 3) : a]))
    return kinds


def test_long_document_respects_budget_and_fills_it(tokenizer: Any) -> None:
    cfg = ChunkConfig()
    doc = Document("long", _paragraphs(seed=0, count=300))
    contexts = split_into_contexts(doc, tokenizer, cfg)
    _check_invariants(doc, contexts, cfg)
    assert len(contexts) > 10
    body = [c.num_tokens for c in contexts[:-1]]
    assert min(body) >= 0.6 * cfg.context_tokens
    assert sum(body) / len(body) >= 0.8 * cfg.context_tokens


def test_cuts_land_on_paragraph_breaks(tokenizer: Any) -> None:
    cfg = ChunkConfig()
    doc = Document("paras", _paragraphs(seed=1, count=200))
    contexts = split_into_contexts(doc, tokenizer, cfg)
    _check_invariants(doc, contexts, cfg)
    for run, before in _cut_kinds(doc.text, contexts):
        assert run.count("\n") >= 2, repr(before + run)


def test_sentence_fallback_in_one_huge_paragraph(tokenizer: Any) -> None:
    cfg = ChunkConfig()
    rng = random.Random(2)
    doc = Document("one-para", " ".join(_sentence(rng) for _ in range(400)))
    contexts = split_into_contexts(doc, tokenizer, cfg)
    _check_invariants(doc, contexts, cfg)
    assert len(contexts) > 5
    for run, before in _cut_kinds(doc.text, contexts):
        assert run and before[-1] in ".?!", repr(before + run)


def test_no_cut_inside_display_math(tokenizer: Any) -> None:
    cfg = ChunkConfig(context_tokens=120)
    rng = random.Random(3)
    blocks = []
    for i in range(60):
        blocks.append(_sentence(rng))
        # Sentence ends inside the math must not be used as cuts.
        blocks.append(f"$$ a_{i} = b. \\quad c = d! \\quad e ? $$")
        blocks.append(f"\\[ x_{i} = 1. \\quad y = 2. \\]")
    doc = Document("math", " ".join(blocks))
    contexts = split_into_contexts(doc, tokenizer, cfg)
    _check_invariants(doc, contexts, cfg)
    spans = [m.span() for m in re.finditer(r"\$\$.*?\$\$|\\\[.*?\\\]", doc.text)]
    for cut in _inner_cuts(contexts):
        assert not any(a < cut < b for a, b in spans), repr(doc.text[cut - 30 : cut + 30])
    for run, before in _cut_kinds(doc.text, contexts):
        assert run and (before[-1] in ".?!" or before[-2:] in ("$$", "\\]")), repr(before)


def test_line_break_then_whitespace_fallbacks(tokenizer: Any) -> None:
    cfg = ChunkConfig(context_tokens=100)
    rng = random.Random(4)
    lines = "\n".join(" ".join(rng.choice(WORDS) for _ in range(8)) for _ in range(100))
    doc = Document("lines", lines)
    contexts = split_into_contexts(doc, tokenizer, cfg)
    _check_invariants(doc, contexts, cfg)
    for run, before in _cut_kinds(doc.text, contexts):
        assert "\n" in run, repr(before + run)

    words = Document("words", " ".join(rng.choice(WORDS) for _ in range(1000)))
    contexts = split_into_contexts(words, tokenizer, cfg)
    _check_invariants(words, contexts, cfg)
    for c in contexts[:-1]:
        assert words.text[c.char_end].isspace()
        assert c.num_tokens >= 0.6 * cfg.context_tokens


@pytest.mark.parametrize(
    "text",
    ["x" * 3000, "\\frac{a_{1}}{b^{2}}+\\sqrt{c}" * 300],
    ids=["xxx", "latex-blob"],
)
def test_hard_cut_for_text_without_whitespace(tokenizer: Any, text: str) -> None:
    cfg = ChunkConfig()
    doc = Document("blob", text)
    contexts = split_into_contexts(doc, tokenizer, cfg)
    _check_invariants(doc, contexts, cfg)
    assert len(contexts) >= 2
    assert contexts[0].num_tokens == cfg.context_tokens


def test_overlap_shares_about_overlap_tokens(tokenizer: Any) -> None:
    cfg = ChunkConfig(context_tokens=200, overlap_tokens=40)
    doc = Document("overlap", _paragraphs(seed=5, count=150))
    contexts = split_into_contexts(doc, tokenizer, cfg)
    _check_invariants(doc, contexts, cfg)
    assert len(contexts) > 5
    for prev, nxt in itertools.pairwise(contexts):
        shared = prev.token_end - nxt.token_start
        assert abs(shared - cfg.overlap_tokens) <= 10
        assert doc.text[nxt.char_start : prev.char_end] in prev.text
        assert nxt.text.startswith(doc.text[nxt.char_start : prev.char_end])


def test_short_tail_avoided_by_cutting_earlier(tokenizer: Any) -> None:
    cfg = ChunkConfig(context_tokens=100, min_tokens=30)
    doc = Document("tail", "x" * 420)  # 105 tokens: a greedy hard cut would leave 5
    contexts = split_into_contexts(doc, tokenizer, cfg)
    _check_invariants(doc, contexts, cfg)
    assert [c.num_tokens for c in contexts] == [75, 30]


def test_short_tail_kept_when_it_cannot_be_merged(tokenizer: Any) -> None:
    cfg = ChunkConfig(context_tokens=100, min_tokens=50)
    doc = Document("tail", "x" * 420)  # cutting at 55 would break the 60% fill rule
    contexts = split_into_contexts(doc, tokenizer, cfg)
    _check_invariants(doc, contexts, cfg)
    assert [c.num_tokens for c in contexts] == [100, 5]


def _para(tokens: int) -> str:
    """A sentence of exactly ``tokens`` SmolLM2 tokens ("The cat cat ... cat.")."""
    return "The" + " cat" * (tokens - 2) + "."


def test_short_tail_avoided_among_equal_boundaries(tokenizer: Any) -> None:
    cfg = ChunkConfig(context_tokens=100, min_tokens=30)
    doc = Document("paras", f"{_para(60)}\n\n{_para(25)}\n\n{_para(15)}")
    assert _num_tokens(tokenizer, doc.text) == 104
    contexts = split_into_contexts(doc, tokenizer, cfg)
    _check_invariants(doc, contexts, cfg)
    # Both paragraph breaks are in the window; the later one would leave a 15-token tail.
    assert [c.num_tokens for c in contexts] == [62, 42]
    assert contexts[1].text.startswith("The cat")


def test_better_boundary_beats_tail_length(tokenizer: Any) -> None:
    cfg = ChunkConfig(context_tokens=100, min_tokens=30)
    doc = Document("mixed", f"{_para(65)} {_para(20)}\n\n{_para(15)}")
    contexts = split_into_contexts(doc, tokenizer, cfg)
    _check_invariants(doc, contexts, cfg)
    # A sentence end at 65 would avoid the short tail, but the paragraph break wins.
    assert contexts[0].text.endswith(".\n\n")
    assert contexts[1].text == _para(15)


def test_short_document_yields_one_context(tokenizer: Any) -> None:
    cfg = ChunkConfig()
    doc = Document("short", "  Let $x = 1$. ")
    contexts = split_into_contexts(doc, tokenizer, cfg)
    _check_invariants(doc, contexts, cfg)
    assert len(contexts) == 1
    assert contexts[0].text == doc.text
    assert contexts[0].num_tokens < cfg.min_tokens


@pytest.mark.parametrize("text", ["", "   ", "\n\n\t \n"])
def test_empty_document_yields_nothing(tokenizer: Any, text: str) -> None:
    assert split_into_contexts(Document("empty", text), tokenizer, ChunkConfig()) == []


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"context_tokens": 0}, "context_tokens"),
        ({"context_tokens": -5}, "context_tokens"),
        ({"overlap_tokens": -1}, "overlap_tokens"),
        ({"context_tokens": 100, "overlap_tokens": 100}, "overlap_tokens"),
        ({"context_tokens": 100, "overlap_tokens": 150}, "overlap_tokens"),
        ({"min_tokens": -1}, "min_tokens"),
    ],
)
def test_invalid_config_raises_user_error(tokenizer: Any, settings: dict, message: str) -> None:
    with pytest.raises(UserError, match=message) as info:  # ChunkConfig checks itself
        split_into_contexts(Document("d", "text"), tokenizer, ChunkConfig(**settings))
    assert "\n" not in str(info.value)


def test_retokenised_context_matches_num_tokens(tokenizer: Any) -> None:
    cfg = ChunkConfig()
    text = _paragraphs(seed=6, count=100) + "\n\nUnicode: é中文 😀 ∫∑ $$\\alpha^2$$ done."
    doc = Document("retok", text)
    contexts = split_into_contexts(doc, tokenizer, cfg)
    _check_invariants(doc, contexts, cfg)
    for c in contexts:
        assert abs(_num_tokens(tokenizer, c.text) - c.num_tokens) <= 3


def test_unicode_and_odd_whitespace_tile_exactly(tokenizer: Any) -> None:
    cfg = ChunkConfig(context_tokens=16, min_tokens=2)
    rng = random.Random(7)
    pieces = ["😀", "é", "中文", "∫", " ", "\n", "\r\n", "\t", "x", ". ", "$$", "\\[", "  "]
    doc = Document("odd", "".join(rng.choice(pieces) for _ in range(2000)))
    contexts = split_into_contexts(doc, tokenizer, cfg)
    _check_invariants(doc, contexts, cfg)
    assert "".join(c.text for c in contexts) == doc.text


def test_deterministic_and_chunker_matches_function(tokenizer: Any) -> None:
    cfg = ChunkConfig(context_tokens=150, overlap_tokens=20)
    doc = Document("det", _paragraphs(seed=8, count=80))
    first = split_into_contexts(doc, tokenizer, cfg)
    chunker = Chunker(tokenizer, cfg)
    assert chunker(doc) == first
    assert chunker(doc) == split_into_contexts(doc, tokenizer, cfg)


@pytest.mark.skipif(not SAMPLE.is_file(), reason="sample corpus not present")
def test_sample_corpus_invariants(tokenizer: Any) -> None:
    cfg = ChunkConfig()
    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line]
    assert rows
    for i, row in enumerate(rows):
        doc = Document(str(row.get("id", i)), row["text"])
        contexts = split_into_contexts(doc, tokenizer, cfg)
        _check_invariants(doc, contexts, cfg)
        assert (len(contexts) == 0) == (not doc.text.strip())
        for c in contexts[:-1]:
            assert c.num_tokens >= 0.6 * cfg.context_tokens


def _page_with_unmatched_dollars(seed: int, count: int) -> str:
    """Paragraphs with an unmatched ``$$`` in the first and a well-formed ``$$..$$`` in every
    tenth: paired naively, each stretch between real formulas would count as display math."""
    rng = random.Random(seed)
    paras = []
    for i in range(count):
        text = " ".join(_sentence(rng) for _ in range(rng.randint(1, 5)))
        if i == 0:
            text += " In plain TeX, $$ opens display math."
        elif i % 10 == 0:
            text += f" Hence $$ x_{{{i}}} = {i} $$ as claimed."
        paras.append(text)
    return "\n\n".join(paras)


def test_unmatched_display_math_cannot_swallow_paragraphs(tokenizer: Any) -> None:
    cfg = ChunkConfig()
    doc = Document("unmatched", _page_with_unmatched_dollars(seed=1, count=200))
    contexts = split_into_contexts(doc, tokenizer, cfg)
    _check_invariants(doc, contexts, cfg)
    assert len(contexts) > 10
    for run, before in _cut_kinds(doc.text, contexts):
        assert run.count("\n") >= 2, repr(before + run)


def test_unmatched_display_math_in_one_long_paragraph_keeps_sentence_cuts(tokenizer: Any) -> None:
    cfg = ChunkConfig(context_tokens=200)
    rng = random.Random(9)
    head, body, tail = (" ".join(_sentence(rng) for _ in range(n)) for n in (5, 60, 100))
    doc = Document("one-para", f"{head} A lone $$ here. {body} So $$ y = 2 $$ holds. {tail}")
    # Farther than a display block can be (3000), nearer than the old limit (8000).
    assert 3000 < doc.text.index("$$ y") - doc.text.index("$$ here") < 8000
    contexts = split_into_contexts(doc, tokenizer, cfg)
    _check_invariants(doc, contexts, cfg)
    for run, before in _cut_kinds(doc.text, contexts):
        assert run and before[-1] in ".?!", repr(before + run)


def test_display_math_spans_stop_at_blank_lines_and_length() -> None:
    from mind_nemo.synthesize.chunking import MAX_MATH_CHARS, _display_math_spans

    text = "a $$ b\n \nc $$x$$ d \\[ y \\] e"
    assert [text[a:b] for a, b in _display_math_spans(text)] == ["$$x$$", "\\[ y \\]"]
    env = "\\begin{align} a &= b \\\\\n c &= d \\end{align}"
    assert [env[a:b] for a, b in _display_math_spans(env)] == [env]
    far = "$$" + "z " * MAX_MATH_CHARS + "$$ w $$ v"  # the first $$ is dropped, too far
    assert [far[a:b] for a, b in _display_math_spans(far)] == ["$$ w $$"]


@pytest.mark.parametrize("piece", [500, 3000])
def test_piecewise_tokenisation_gives_the_same_contexts(
    tokenizer: Any, monkeypatch: pytest.MonkeyPatch, piece: int
) -> None:
    from mind_nemo.synthesize import chunking

    cfg = ChunkConfig(context_tokens=150, overlap_tokens=20)
    text = _paragraphs(seed=10, count=60) + "\n\nUnicode: é中文 😀 ∫∑ $$\\alpha^2$$ done.\n"
    doc = Document("pieces", text * 3)
    whole = split_into_contexts(doc, tokenizer, cfg)
    monkeypatch.setattr(chunking, "PIECE_CHARS", piece)
    assert list(chunking._piece_ends(doc.text, tokenizer))[:-1]  # really cut in pieces
    assert split_into_contexts(doc, tokenizer, cfg) == whole


def test_piecewise_tokenisation_without_whitespace_still_tiles(
    tokenizer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mind_nemo.synthesize import chunking

    monkeypatch.setattr(chunking, "PIECE_CHARS", 700)
    cfg = ChunkConfig(context_tokens=100)
    doc = Document("blob", "\\frac{a_{1}}{b^{2}}+\\sqrt{c}" * 200)
    contexts = split_into_contexts(doc, tokenizer, cfg)
    _check_invariants(doc, contexts, cfg)
    assert "".join(c.text for c in contexts) == doc.text
