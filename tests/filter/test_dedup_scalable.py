"""The scalable dedup path (on-disk band buckets) removes what the in-memory path removes.

A run with planted exact and near duplicates, within one shard, across shards and across
styles (plus a chain: a row near only to a row that goes, and an exact copy of a row that goes
as a near duplicate), is filtered both ways with the same parameters; the final conversations
and rejects must be byte-identical. The steps are also run one by one as job-array tasks, with
a sort buffer small enough to force the on-disk partitioning, and rerun to check they resume.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from mind_nemo.core.errors import UserError
from mind_nemo.filter.config import DedupConfig
from mind_nemo.filter.dedup.bands import EXACT, NEAR, PAIR, RECORD
from mind_nemo.filter.dedup.cluster import cluster
from mind_nemo.filter.dedup.pairs import sorted_parts
from tests.filter.helpers import (
    context_row,
    conversation_row,
    filter_run,
    good_conversation,
    make_run,
    read_jsonl,
)

ONLY_DEDUP = (
    "filter.structure.enabled=false",
    "filter.leakage.enabled=false",
    "filter.degeneration.enabled=false",
    "filter.faithfulness.enabled=false",
)
STYLES = ["teacher_student", "debate", "interview", "two_students"]


def edit(text: str, changes: int, seed: int) -> str:
    words = text.split(" ")
    rng = random.Random(seed)
    for position in rng.sample(range(len(words)), changes):
        words[position] = f"edited{seed}"
    return " ".join(words)


def planted_run(root):
    """Three shards; returns the run and what a first-seen-wins dedup must drop."""
    long = {d: " ".join(good_conversation(d, 0, "debate", s) for s in range(3)) for d in range(12)}
    shards: list[list[dict]] = [[], [], []]
    contexts = [[context_row(d, 0) for d in range(12)] for _ in range(3)]

    def add(shard: int, doc: int, style: str, text: str) -> None:
        sample = len(shards[shard])
        shards[shard].append(conversation_row(doc, 0, style, text=text, sample=sample))

    for d in range(12):  # originals, spread over the shards
        add(d % 3, d, STYLES[d % 4], long[d])
    add(0, 0, "teacher_student", long[0].upper())  # exact (case folded), same shard
    add(1, 3, "debate", long[0])  # exact, other shard, other style
    add(0, 1, "interview", edit(long[1], 2, 1))  # near, other shard, other style
    add(2, 4, "interview", edit(long[4], 1, 2))  # near, other shard
    add(2, 5, "two_students", edit(long[5], 3, 3))  # near, same shard
    add(2, 1, "debate", edit(long[1], 2, 1))  # exact copy of a near duplicate
    add(1, 7, "debate", edit(long[7], 150, 4))  # heavily edited: kept
    return make_run(root, shards, contexts)


def outputs(out):
    conv = {p.name: p.read_bytes() for p in sorted((out / "conversations").glob("*.jsonl"))}
    rej = {p.name: p.read_bytes() for p in sorted((out / "rejects").glob("*.jsonl"))}
    return conv, rej


def test_scalable_path_removes_the_same_conversations_as_memory(tmp_path):
    run = planted_run(tmp_path / "run")
    memory = filter_run(run, tmp_path / "mem", *ONLY_DEDUP, "dedup.mode=memory")
    scalable = filter_run(
        run, tmp_path / "scal", *ONLY_DEDUP, "dedup.mode=scalable", "dedup.ranges=5"
    )
    assert memory is not None and scalable is not None
    assert memory["dedup"]["mode"] == "memory" and scalable["dedup"]["mode"] == "scalable"
    assert (memory["dedup"]["exact"], memory["dedup"]["near"]) == (3, 3)
    assert scalable["reasons"] == memory["reasons"]
    assert scalable["by_style"] == memory["by_style"]
    assert outputs(tmp_path / "scal") == outputs(tmp_path / "mem")
    # rejects name the original by key, also across shards
    rejects = [r for p in sorted((tmp_path / "scal" / "rejects").glob("*")) for r in read_jsonl(p)]
    named = {r["document_id"]: r["duplicate_of"] for r in rejects if "duplicate_of" in r}
    assert named["doc-003"] == "doc-000#0/teacher_student/0"
    assert named["doc-004"] == "doc-004#0/teacher_student/1"


def test_array_steps_equal_one_process_and_resume(tmp_path):
    run = planted_run(tmp_path / "run")
    filter_run(run, tmp_path / "ref", *ONLY_DEDUP, "dedup.mode=memory")
    out = tmp_path / "array"
    common = (*ONLY_DEDUP, "dedup.mode=scalable", "dedup.ranges=7", "num_shards=2")
    for i in range(2):
        assert filter_run(run, out, *common, "step=shard", f"shard_id={i}") is None
    with pytest.raises(UserError, match="step=bucket is not done"):
        filter_run(run, out, *common, "step=cluster", "shard_id=0")
    for i in range(2):
        filter_run(run, out, *common, "step=bucket", f"shard_id={i}")
    filter_run(run, out, *common, "step=cluster", "shard_id=0")
    with pytest.raises(UserError, match="step=apply is not done"):
        filter_run(run, out, *common, "step=finalize", "shard_id=0")
    for i in range(2):
        filter_run(run, out, *common, "step=apply", f"shard_id={i}")
    markers = sorted((out / "work").glob("dedup-*/*.json"))
    stamps = {p: p.stat().st_mtime_ns for p in markers}
    for i in range(2):  # a rerun finds every step done and redoes nothing
        filter_run(run, out, *common, "step=bucket", f"shard_id={i}")
        filter_run(run, out, *common, "step=apply", f"shard_id={i}")
    filter_run(run, out, *common, "step=cluster", "shard_id=0")
    assert {p: p.stat().st_mtime_ns for p in markers} == stamps
    manifest = filter_run(run, out, *common, "step=finalize", "shard_id=0")
    assert manifest is not None and manifest["dedup"]["mode"] == "scalable"
    assert outputs(out) == outputs(tmp_path / "ref")


def test_local_workers_and_auto_mode(tmp_path):
    run = planted_run(tmp_path / "run")
    ref = filter_run(run, tmp_path / "ref", *ONLY_DEDUP, "dedup.mode=memory")
    auto_small = filter_run(run, tmp_path / "auto", *ONLY_DEDUP)
    assert auto_small is not None and auto_small["dedup"]["mode"] == "memory"
    auto_big = filter_run(
        run, tmp_path / "workers", *ONLY_DEDUP, "dedup.auto_max_rows=5", "dedup.workers=2"
    )
    assert auto_big is not None and auto_big["dedup"]["mode"] == "scalable"
    assert ref is not None and auto_big["reasons"] == ref["reasons"]
    assert outputs(tmp_path / "workers") == outputs(tmp_path / "ref")


def test_exact_only_and_near_only_match_memory(tmp_path):
    run = planted_run(tmp_path / "run")
    for n, flag in enumerate(("filter.dedup.near=false", "filter.dedup.exact=false")):
        mem = filter_run(run, tmp_path / f"m{n}", *ONLY_DEDUP, flag, "dedup.mode=memory")
        scal = filter_run(run, tmp_path / f"s{n}", *ONLY_DEDUP, flag, "dedup.mode=scalable")
        assert mem is not None and scal is not None
        assert scal["reasons"] == mem["reasons"], flag
        assert sum(scal["reasons"].values()) >= 3, flag
        assert outputs(tmp_path / f"s{n}") == outputs(tmp_path / f"m{n}")


def test_sorted_parts_split_big_ranges_without_splitting_buckets(tmp_path):
    rng = np.random.default_rng(0)
    data = np.zeros(5000, dtype=RECORD)
    data["key"] = rng.integers(0, 300, 5000).astype(np.uint64) * np.uint64(7)
    data["uid"] = rng.permutation(5000).astype(np.uint64)
    data["band"] = rng.integers(0, 3, 5000)
    path = tmp_path / "range.bin"
    data.tofile(path)
    parts = list(sorted_parts([path], 400, tmp_path / "scratch", divisor=7))
    assert len(parts) > 1 and all(len(p) <= 400 * 2 for p in parts)
    seen: set = set()
    for part in parts:
        keys = set(zip(part["band"].tolist(), part["key"].tolist(), strict=True))
        assert not keys & seen  # no bucket in two parts
        seen |= keys
        order = np.lexsort((part["uid"], part["key"], part["band"]))
        assert (order == np.arange(len(part))).all()
    assert sum(len(p) for p in parts) == 5000
    assert not (tmp_path / "scratch").exists() or not any((tmp_path / "scratch").rglob("*.bin"))


def test_cluster_keeps_first_and_does_not_chain(tmp_path):
    # rows 0..5 of one shard: 1~0, 2~1 only (stays: its partner went), 3 == 0 exactly,
    # 4~3 only (stays: 3 went), 5~2 (goes: 2 stayed)
    pairs = np.array(
        [(1, 0, NEAR), (2, 1, NEAR), (3, 0, EXACT), (4, 3, NEAR), (5, 2, NEAR), (1, 0, NEAR)],
        dtype=PAIR,
    )
    pairs[::-1].tofile(tmp_path / "p.bin")
    drops = [tmp_path / "d0.bin", tmp_path / "d1.bin"]
    counts = cluster([tmp_path / "p.bin"], [6, 2], drops, 1000, tmp_path / "scratch")
    got = np.fromfile(drops[0], dtype=[("row", "<u8"), ("original", "<u8"), ("kind", "u1")])
    assert [tuple(map(int, r)) for r in got] == [(1, 0, NEAR), (3, 0, EXACT), (5, 2, NEAR)]
    assert counts["exact"] == 1 and counts["near"] == 2
    assert drops[1].stat().st_size == 0


def test_banding_matches_datasketch():
    from datasketch import MinHashLSH

    from mind_nemo.filter.dedup.bands import banding

    cfg = DedupConfig(threshold=0.7, num_perm=64)
    lsh = MinHashLSH(threshold=0.7, num_perm=64)
    assert banding(cfg) == [tuple(map(int, r)) for r in lsh.hashranges]


def assert_same_as_one_memory_run(run, out, tmp_path) -> None:
    """``out`` (a scalable run of ``run``) has the reasons, duplicate counts and files of one
    in-memory filter process over the same run."""
    reference = filter_run(run, tmp_path / "single", *ONLY_DEDUP, "dedup.mode=memory")
    assert reference is not None
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["reasons"] == reference["reasons"]
    assert manifest["dedup"]["exact"] == reference["dedup"]["exact"] > 0
    assert manifest["dedup"]["near"] == reference["dedup"]["near"] > 0
    assert outputs(out) == outputs(tmp_path / "single")
