"""Exact and near-duplicate detection: text fingerprints and MinHash LSH (datasketch).

Dedup has to see every shard, so it is split in two (see ``README.md`` in this folder):

1. while a shard is filtered, each surviving conversation gets an exact fingerprint (blake2b
   of its case- and whitespace-folded text) and a MinHash signature over word shingles; both are
   appended to fixed-width binary files next to the shard's staging rows (row *i* of the
   staging file = record *i* of the signature files);
2. one pass over all shards, in shard order, keeps the first conversation of every exact or
   near-duplicate group. Signatures are memory-mapped, so memory holds the LSH index and the
   exact-fingerprint set, not the signatures.

A near-duplicate candidate from LSH is confirmed with the estimated Jaccard similarity of the
two signatures, so what is dropped really is above ``threshold``; of several confirmed
candidates the earliest is named. This in-memory index grows with the corpus; the scalable
path that finds the same duplicates in bounded memory is :mod:`mind_nemo.filter.dedup`.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import re
import zlib
from pathlib import Path

import numpy as np
from datasketch import LeanMinHash, MinHash, MinHashLSH

from mind_nemo.filter.config import DedupConfig

FINGERPRINT_BYTES = 16
_WORDS = re.compile(r"\w+")


def fingerprint(text: str) -> bytes:
    """Exact-duplicate key: blake2b of the text with case and whitespace folded."""
    folded = " ".join(text.casefold().split())
    return hashlib.blake2b(folded.encode("utf-8"), digest_size=FINGERPRINT_BYTES).digest()


def shingles(text: str, n: int) -> list[bytes]:
    """Word n-grams (the whole text as one shingle when it has fewer than n words). Repeats are
    kept: a minimum does not care, and building a set costs more than hashing them twice."""
    words = _WORDS.findall(text.casefold())
    if len(words) < n:
        return [" ".join(words).encode("utf-8")]
    return [" ".join(words[i : i + n]).encode("utf-8") for i in range(len(words) - n + 1)]


class Signer:
    """MinHash signatures with fixed permutations (one ``MinHash`` is built and reused)."""

    def __init__(self, cfg: DedupConfig) -> None:
        self.cfg = cfg
        # crc32 (C, deterministic across processes) hashes the shingles; datasketch's default
        # sha1 wrapper costs twice as much per shingle and buys nothing here.
        self._template = MinHash(num_perm=cfg.num_perm, seed=cfg.seed, hashfunc=zlib.crc32)
        self.scheme = self._template.scheme
        self.dtype = self._template.hashvalues.dtype

    def signature(self, text: str) -> np.ndarray:
        minhash = self._template.copy()
        minhash.update_batch(shingles(text, self.cfg.shingle_words))
        return minhash.hashvalues

    def lean(self, hashvalues: np.ndarray) -> LeanMinHash:
        return LeanMinHash(seed=self.cfg.seed, hashvalues=hashvalues, scheme=self.scheme)


class SignatureWriter:
    """Append fingerprints and signatures of one shard's kept rows to two binary files."""

    def __init__(self, fingerprints: Path, signatures: Path) -> None:
        fingerprints.parent.mkdir(parents=True, exist_ok=True)
        self._fp = open(fingerprints, "wb")  # noqa: SIM115 - closed in close()
        self._sig = open(signatures, "wb")  # noqa: SIM115
        self.rows = 0

    def add(self, fp: bytes, hashvalues: np.ndarray | None) -> None:
        self._fp.write(fp)
        if hashvalues is not None:
            self._sig.write(hashvalues.tobytes())
        self.rows += 1

    def close(self) -> None:
        for f in (self._fp, self._sig):
            f.flush()
            os.fsync(f.fileno())
            f.close()


def read_fingerprints(path: Path) -> list[bytes]:
    data = path.read_bytes() if path.exists() else b""
    return [data[i : i + FINGERPRINT_BYTES] for i in range(0, len(data), FINGERPRINT_BYTES)]


def map_signatures(path: Path, num_perm: int, dtype: np.dtype) -> np.ndarray:
    """The signature file as a read-only ``(rows, num_perm)`` array, paged in on demand."""
    width = num_perm * np.dtype(dtype).itemsize
    if not path.exists() or path.stat().st_size == 0:
        return np.zeros((0, num_perm), dtype=dtype)
    rows = path.stat().st_size // width
    return np.memmap(path, dtype=dtype, mode="r", shape=(rows, num_perm))


class NearDuplicateIndex:
    """First-seen-wins near-duplicate detection over whole shards of signatures, in order.

    A row's uid is its global position (shard offset + row), so confirming a candidate needs no
    per-row bookkeeping beyond what the LSH index itself stores.
    """

    def __init__(self, cfg: DedupConfig, signer: Signer) -> None:
        self.threshold = cfg.threshold
        self.signer = signer
        self.lsh = MinHashLSH(threshold=cfg.threshold, num_perm=cfg.num_perm)
        self._bases: list[int] = []
        self._shards: list[np.ndarray] = []
        self.size = 0

    def add_shard(self, signatures: np.ndarray) -> int:
        """Register a shard's signature array; return the uid of its row 0."""
        base = self.size
        self._bases.append(base)
        self._shards.append(signatures)
        self.size += len(signatures)
        return base

    def _signature(self, uid: int) -> np.ndarray:
        shard = bisect.bisect_right(self._bases, uid) - 1
        return np.asarray(self._shards[shard][uid - self._bases[shard]])

    def check_and_add(self, uid: int) -> int | None:
        """The uid this row duplicates, or None (then it is indexed as a new original)."""
        hashvalues = self._signature(uid)
        lean = self.signer.lean(hashvalues)
        # Earliest candidate first, so the row it duplicates does not depend on set order (and
        # is the one the scalable path names too).
        for candidate in sorted(self.lsh.query(lean)):
            similarity = float(np.mean(self._signature(candidate) == hashvalues))
            if similarity >= self.threshold:
                return int(candidate)
        self.lsh.insert(uid, lean, check_duplication=False)
        return None
