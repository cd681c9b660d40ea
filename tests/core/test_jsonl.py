"""Crash-safe JSONL: torn tails are cut, whole lines kept; the shard store resumes by key."""

from __future__ import annotations

import json

import pytest

from mind_nemo.core.jsonl import JsonlAppender, iter_jsonl, repair_tail, write_json_atomic
from mind_nemo.core.records import Context, Conversation
from mind_nemo.synthesize.shard_store import ShardStore


def test_repair_tail_cuts_a_torn_last_line(tmp_path):
    path = tmp_path / "a.jsonl"
    whole = [json.dumps({"i": i, "pad": "x" * 50_000}) for i in range(3)]  # lines > one block
    path.write_text("\n".join(whole) + "\n" + '{"i": 3, "pad": "xx')
    removed = repair_tail(path)
    assert removed > 0
    assert [r["i"] for r in iter_jsonl(path)] == [0, 1, 2]
    assert repair_tail(path) == 0  # idempotent on a healthy file


def test_repair_tail_cuts_complete_but_invalid_line_and_keeps_valid(tmp_path):
    path = tmp_path / "b.jsonl"
    path.write_text('{"a": 1}\n{"a": \n')
    repair_tail(path)
    assert path.read_text() == '{"a": 1}\n'
    single = tmp_path / "c.jsonl"
    single.write_text('{"a": 1')  # only a torn line
    repair_tail(single)
    assert single.read_text() == ""


def test_appender_repairs_then_appends(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"a": 1}\n{"a"')
    with JsonlAppender(path) as out:
        out.append(json.dumps({"a": 2}))
    assert [r["a"] for r in iter_jsonl(path)] == [1, 2]


def test_write_json_atomic_leaves_no_temp_files(tmp_path):
    write_json_atomic(tmp_path / "m.json", {"x": 1})
    write_json_atomic(tmp_path / "m.json", {"x": 2})
    assert json.loads((tmp_path / "m.json").read_text()) == {"x": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def conv(doc: str, idx: int, style: str = "debate") -> Conversation:
    return Conversation(text="A: x\nB: y", conversational_style=style, document_id=doc,
                        context_index=idx, completion_tokens=5)  # fmt: skip


def test_shard_store_resume_dedup_and_failures(tmp_path):
    store = ShardStore(tmp_path, 0, 1)
    store.load()
    store.open()
    store.add_context(Context("d1", 0, "text", 0, 1, 0, 4))
    store.commit(conv("d1", 0))
    store.fail(("d1", 1, "debate", 0), "http_500", "boom", 3)
    store.close()
    again = ShardStore(tmp_path, 0, 1)
    again.load()
    assert again.done_keys == {("d1", 0, "debate", 0)}
    again.open()
    again.add_context(Context("d1", 0, "text", 0, 1, 0, 4))  # written by a past session: skip
    again.commit(conv("d1", 0))  # committed by a past session: refused
    again.close()
    assert len(list(iter_jsonl(again.conversations_path))) == 1
    assert len(list(iter_jsonl(again.contexts_path))) == 1
    again = ShardStore(tmp_path, 0, 1)
    again.load()
    assert set(again.failed) == {("d1", 1, "debate", 0)}
    assert again.context_keys == {("d1", 0)}
    again.open()
    again.commit(conv("d1", 1))  # a retried failure succeeds
    again.compact_failures()
    again.close()
    assert list(iter_jsonl(again.failures_path)) == []
    totals = again.totals()
    assert totals.conversations == 2 and totals.by_style["debate"]["completion_tokens"] == 10
    manifest = again.write_manifest("complete", totals, {})
    assert manifest["status"] == "complete" and len(manifest["conversations_sha256"]) == 64


def test_appender_refuses_to_write_after_close(tmp_path):
    """A thread that appends late (the planner, after the run closed its files) gets an error,
    never a write to whatever file now has the freed descriptor number."""
    appender = JsonlAppender(tmp_path / "rows.jsonl")
    appender.append_many(['{"a": 1}', '{"a": 2}'])
    appender.append_many([])
    appender.close()
    with pytest.raises(ValueError, match="after close"):
        appender.append('{"a": 3}')
    appender.sync()  # closed: nothing to sync, no error
    assert (tmp_path / "rows.jsonl").read_text() == '{"a": 1}\n{"a": 2}\n'
