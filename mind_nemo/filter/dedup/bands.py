"""The records the scalable dedup writes, and how a signature becomes band-bucket keys.

A row is named by its *position id*: ``shard index << 40 | staged row``. Ids sort in the order
the in-memory path walks rows (shard order, then row order), and a shard task can name its rows
without knowing how many rows the shards before it hold.

Bucket records carry one LSH band (or the exact fingerprint) of one row. The banding is
datasketch's for the same ``threshold`` and ``num_perm`` (``MinHashLSH.b``, ``.r``), so two rows
meet in a bucket exactly when the in-memory index would return one for the other; a band is
keyed by a 64-bit mix of its values instead of their bytes (a false meeting costs one extra
similarity check, never a wrong answer).
"""

from __future__ import annotations

import numpy as np
from datasketch import MinHashLSH

from mind_nemo.filter.config import DedupConfig

ROW_BITS = 40
ROW_MASK = (1 << ROW_BITS) - 1
#: ``band`` of the exact-fingerprint record (LSH bands are 0..b-1).
EXACT_BAND = 255
#: Pair kinds, in the order the cluster step looks at them (an exact match wins).
EXACT, NEAR = 0, 1

RECORD = np.dtype([("key", "<u8"), ("uid", "<u8"), ("fp", "<u8"), ("band", "u1")])
PAIR = np.dtype([("j", "<u8"), ("i", "<u8"), ("kind", "u1")])
DROP = np.dtype([("row", "<u8"), ("original", "<u8"), ("kind", "u1")])
REASONS = {EXACT: "duplicate_exact", NEAR: "near_duplicate"}

_MUL = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def position_id(shard_index: int, row: int) -> int:
    return (shard_index << ROW_BITS) | row


def banding(cfg: DedupConfig) -> list[tuple[int, int]]:
    """The ``(start, end)`` signature slice of each band, as datasketch picks them."""
    lsh = MinHashLSH(threshold=cfg.threshold, num_perm=cfg.num_perm)
    return [(int(a), int(b)) for a, b in lsh.hashranges]


def _finish(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: spreads every input bit over the 64 output bits."""
    h = (h ^ (h >> np.uint64(30))) * _M1
    h = (h ^ (h >> np.uint64(27))) * _M2
    return h ^ (h >> np.uint64(31))


def band_keys(signatures: np.ndarray, band: int, start: int, end: int) -> np.ndarray:
    """A 64-bit key per row for ``signatures[:, start:end]`` (the band's index is mixed in)."""
    values = signatures[:, start:end].astype(np.uint64)
    h = np.full(len(values), ((band + 1) * int(_MUL)) % (1 << 64), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for column in range(values.shape[1]):
            h = _finish(h ^ values[:, column]) * _MUL
        return _finish(h)


def fingerprint_words(fingerprints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, 16)`` uint8 fingerprints as two little-endian uint64 halves."""
    halves = np.ascontiguousarray(fingerprints).view("<u8").reshape(len(fingerprints), 2)
    return halves[:, 0].copy(), halves[:, 1].copy()


def records(
    shard_index: int,
    first_row: int,
    fingerprints: np.ndarray,
    signatures: np.ndarray | None,
    bands: list[tuple[int, int]],
    exact: bool,
) -> np.ndarray:
    """Bucket records of consecutive rows: one per band (near) plus one exact record."""
    n = len(fingerprints)
    uid = (np.uint64(shard_index) << np.uint64(ROW_BITS)) + np.arange(
        first_row, first_row + n, dtype=np.uint64
    )
    low, high = fingerprint_words(fingerprints)
    parts = []
    if exact:
        part = np.empty(n, dtype=RECORD)
        part["key"], part["uid"], part["fp"], part["band"] = low, uid, high, EXACT_BAND
        parts.append(part)
    if signatures is not None:
        for band, (start, end) in enumerate(bands):
            part = np.empty(n, dtype=RECORD)
            part["key"] = band_keys(signatures, band, start, end)
            part["uid"], part["fp"], part["band"] = uid, low, band
            parts.append(part)
    return np.concatenate(parts) if parts else np.empty(0, dtype=RECORD)


def range_of(keys: np.ndarray, ranges: int) -> np.ndarray:
    return (keys % np.uint64(ranges)).astype(np.int64)
