"""Exact and near-duplicate detection (MinHash LSH) and the external sort behind the variants."""

from __future__ import annotations

import random

import numpy as np

from mind_nemo.core.external_sort import external_sort
from mind_nemo.filter.config import DedupConfig
from mind_nemo.filter.rules.dedup import (
    NearDuplicateIndex,
    SignatureWriter,
    Signer,
    fingerprint,
    map_signatures,
    read_fingerprints,
)
from tests.filter.helpers import good_conversation


def test_fingerprint_folds_case_and_whitespace_only():
    assert fingerprint("Teacher: 2 + 2  =\n4") == fingerprint("teacher: 2 + 2 = 4 ")
    assert fingerprint("Teacher: 2 + 2 = 4") != fingerprint("Teacher: 2 + 2 = 5")


def near_copy(text: str, changes: int, seed: int = 0) -> str:
    words = text.split()
    rng = random.Random(seed)
    for position in rng.sample(range(len(words)), changes):
        words[position] = "changed"
    return " ".join(words)


def test_near_duplicates_found_first_seen_wins_and_distinct_texts_kept(tmp_path):
    cfg = DedupConfig()
    signer = Signer(cfg)
    base = good_conversation(1, 0, "debate") * 3  # long enough that one edited word is small
    texts = [
        base,  # 0 original
        good_conversation(2, 0, "debate"),  # 1 different context
        near_copy(base, 1),  # 2 near copy of 0
        good_conversation(1, 0, "interview"),  # 3 same context, other style
        near_copy(base, 60, seed=1),  # 4 heavily edited: not a duplicate
    ]
    writer = SignatureWriter(tmp_path / "s.fp", tmp_path / "s.sig")
    for text in texts:
        writer.add(fingerprint(text), signer.signature(text))
    writer.close()
    assert len(read_fingerprints(tmp_path / "s.fp")) == 5
    signatures = map_signatures(tmp_path / "s.sig", cfg.num_perm, signer.dtype)
    assert signatures.shape == (5, cfg.num_perm)
    index = NearDuplicateIndex(cfg, signer)
    base_uid = index.add_shard(signatures)
    found = [index.check_and_add(base_uid + i) for i in range(5)]
    assert found == [None, None, 0, None, None]


def test_index_spans_shards_with_global_uids(tmp_path):
    cfg = DedupConfig()
    signer = Signer(cfg)
    text = good_conversation(4, 1, "two_students")
    first = np.stack([signer.signature(good_conversation(9, 0, "debate")), signer.signature(text)])
    second = np.stack([signer.signature(text)])
    index = NearDuplicateIndex(cfg, signer)
    a = index.add_shard(first)
    b = index.add_shard(second)
    assert (a, b) == (0, 2)
    assert [index.check_and_add(0), index.check_and_add(1), index.check_and_add(2)] == [
        None,
        None,
        1,
    ]


def test_external_sort_spills_merges_and_is_stable(tmp_path):
    rng = random.Random(0)
    records = [((f"d{rng.randrange(50):02d}", rng.randrange(5)), {"n": i}) for i in range(2000)]
    out = list(external_sort(iter(records), tmp_path / "sort", buffer_rows=97, fan_in=4))
    assert [r[0] for r in out] == sorted(r[0] for r in records)
    # equal keys keep their input order
    by_key: dict = {}
    for key, payload in out:
        by_key.setdefault(key, []).append(payload["n"])
    assert all(ns == sorted(ns) for ns in by_key.values())
    assert not list((tmp_path / "sort").iterdir())  # spill files are removed


def test_external_sort_in_memory_when_it_fits(tmp_path):
    records = [((3, "b"), {}), ((1, "a"), {}), ((2, "z"), {})]
    out = list(external_sort(iter(records), tmp_path / "sort", buffer_rows=10))
    assert [k for k, _ in out] == [(1, "a"), (2, "z"), (3, "b")]
    assert not list((tmp_path / "sort").iterdir())
