"""LONGEST / ALL / CONCAT / RAW on a small hand-made run with known answers, grouped correctly
even when a context's conversations are far apart and the sort has to spill to disk."""

from __future__ import annotations

import pytest

from mind_nemo.filter.config import VariantsConfig
from mind_nemo.filter.variants import build_variants
from tests.filter.helpers import read_parts


def conv(doc: str, index: int, style: str, tokens: int, sample: int = 0) -> dict:
    return {
        "text": f"<{doc}/{index}/{style}/{sample}>",
        "conversational_style": style,
        "document_id": doc,
        "context_index": index,
        "sample": sample,
        "tokens": tokens,
    }


def ctx(doc: str, index: int, tokens: int) -> dict:
    return {
        "document_id": doc,
        "index": index,
        "text": f"[{doc}/{index}]",
        "token_start": 10,
        "token_end": 10 + tokens,
    }


CONTEXTS = [ctx("b", 0, 50), ctx("a", 1, 40), ctx("a", 0, 30), ctx("c", 0, 20)]
CONVERSATIONS = [
    conv("a", 0, "debate", 100),
    conv("b", 0, "interview", 90),
    conv("a", 0, "two_students", 100),  # ties with debate; two_students comes first in the paper
    conv("a", 1, "teacher_student", 70),
    conv("b", 0, "rephrase", 500),  # not a conversation: excluded from the variants
    conv("b", 0, "teacher_student", 60),
    conv("a", 1, "interview", 71),  # straggler of a/1 far from its sibling
    conv("a", 1, "interview", 75, sample=1),
    conv("z", 0, "debate", 80),  # its context is missing from the run
]


@pytest.fixture(params=[100_000, 2], ids=["in-memory", "spilling"])
def built(request, tmp_path):
    cfg = VariantsConfig(sort_buffer_rows=request.param, rows_per_file=3, separator="\n--\n")
    stats = build_variants(iter(CONVERSATIONS), iter(CONTEXTS), cfg, tmp_path, lambda t: 0)
    return tmp_path, stats


def test_longest_picks_the_most_tokens_per_context(built):
    out, _ = built
    rows = read_parts(out / "variants" / "longest")
    assert [
        (r["document_id"], r["context_index"], r["conversational_style"], r["sample"], r["tokens"])
        for r in rows
    ] == [
        ("a", 0, "two_students", 0, 100),
        ("a", 1, "interview", 1, 75),
        ("b", 0, "interview", 0, 90),
        ("z", 0, "debate", 0, 80),
    ]
    assert rows[0]["text"] == "<a/0/two_students/0>"
    assert rows[0]["key"] == "a#0/two_students/0"


def test_all_keeps_every_conversation_but_excluded_styles(built):
    out, stats = built
    rows = read_parts(out / "variants" / "all")
    assert sorted(r["text"] for r in rows) == sorted(
        c["text"] for c in CONVERSATIONS if c["conversational_style"] != "rephrase"
    )
    assert stats["all"]["tokens"] == 100 + 90 + 100 + 70 + 60 + 71 + 75 + 80
    assert stats["all"]["by_style"]["interview"] == 3


def test_concat_is_the_context_then_its_conversations_in_paper_order(built):
    out, stats = built
    rows = {
        (r["document_id"], r["context_index"]): r for r in read_parts(out / "variants" / "concat")
    }
    assert set(rows) == {("a", 0), ("a", 1), ("b", 0)}  # c/0 has none, z/0 has no context
    assert rows[("a", 0)]["text"] == "[a/0]\n--\n<a/0/two_students/0>\n--\n<a/0/debate/0>"
    assert rows[("b", 0)]["styles"] == ["teacher_student", "interview"]
    assert rows[("a", 1)]["keys"] == ["a#1/teacher_student/0", "a#1/interview/0", "a#1/interview/1"]
    assert rows[("a", 1)]["tokens"] == 40 + 70 + 71 + 75
    assert stats["concat"]["tokens"] == (30 + 200) + (40 + 216) + (50 + 150)


def test_raw_is_every_context(built):
    out, stats = built
    rows = read_parts(out / "variants" / "raw")
    assert [(r["document_id"], r["context_index"], r["tokens"]) for r in rows] == [
        ("a", 0, 30),
        ("a", 1, 40),
        ("b", 0, 50),
        ("c", 0, 20),
    ]
    assert (stats["raw"]["rows"], stats["raw"]["tokens"]) == (4, 140)


def test_parts_rotate_and_manifest_lists_their_checksums(built):
    out, stats = built
    parts = sorted((out / "variants" / "all").glob("part-*.jsonl"))
    assert [p.name for p in parts] == ["part-00000.jsonl", "part-00001.jsonl", "part-00002.jsonl"]
    assert set(stats["all"]["files"]) == {f"variants/all/{p.name}" for p in parts}
    assert not list(out.glob("variants.*"))  # no partial or old folder left behind
    assert not list((out / "variants").rglob(".*"))


def test_only_requested_variants_are_written(tmp_path):
    cfg = VariantsConfig(names=["longest"])
    stats = build_variants(iter(CONVERSATIONS), iter(CONTEXTS), cfg, tmp_path, lambda t: 0)
    assert list(stats) == ["longest"]
    assert [p.name for p in (tmp_path / "variants").iterdir()] == ["longest"]


def test_context_without_token_span_is_counted_with_the_tokenizer(tmp_path):
    context = {"document_id": "a", "index": 0, "text": "one two three"}
    stats = build_variants(
        iter([]),
        iter([context]),
        VariantsConfig(names=["raw"]),
        tmp_path,
        lambda text: len(text.split()),
    )
    assert stats["raw"]["tokens"] == 3
