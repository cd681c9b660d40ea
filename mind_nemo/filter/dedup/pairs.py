"""One hash range of band buckets -> duplicate pairs (the ``step=bucket`` work of one range).

The range's records (from every shard) are sorted by bucket, then uid; every bucket with two or
more rows becomes pairs ``(later row j, earlier row i)``:

- the exact-fingerprint bucket: every later row is an exact duplicate of its first row;
- an LSH band bucket: each row is compared with the earlier rows of the bucket (at most
  ``max_bucket_compare``; exact copies of an earlier member are skipped when exact dedup is
  on, since they go as exact duplicates anyway) and a pair is kept when the estimated Jaccard
  of the two signatures reaches ``threshold`` (the in-memory index's confirmation).

Memory is bounded by ``sort_buffer_rows``: a range that holds more records is first scattered
into sub-ranges by another slice of the key (buckets never straddle two), recursively; only a
single bucket bigger than the buffer is loaded whole (logged).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mind_nemo.filter.config import DedupConfig
from mind_nemo.filter.dedup.bands import EXACT, EXACT_BAND, NEAR, PAIR, RECORD, ROW_BITS, ROW_MASK
from mind_nemo.filter.dedup.record_files import READ_ROWS, read_chunks, scatter

log = logging.getLogger(__name__)


def sorted_parts(
    paths: list[Path], buffer_rows: int, scratch: Path, divisor: int, level: int = 0
) -> Iterator[np.ndarray]:
    """The records of ``paths`` as in-memory sorted parts, each holding whole buckets."""
    total = sum(p.stat().st_size for p in paths) // RECORD.itemsize
    if total <= buffer_rows or level >= 4:
        if total > buffer_rows:
            log.warning("a bucket of %d records exceeds sort_buffer_rows; loading it whole", total)
        chunks = list(read_chunks(paths, RECORD))
        data = np.concatenate(chunks) if chunks else np.empty(0, dtype=RECORD)
        tie = np.where(data["band"] == EXACT_BAND, data["fp"], np.uint64(0))
        yield data[np.lexsort((data["uid"], tie, data["key"], data["band"]))]
        return
    parts = math.ceil(total * 1.25 / buffer_rows)
    folder = scratch / f"level{level}"
    folder.mkdir(parents=True, exist_ok=True)
    files = [folder / f"part-{p:05d}.bin" for p in range(parts)]
    scatter(
        read_chunks(paths, RECORD),
        lambda chunk: ((chunk["key"] // np.uint64(divisor)) % np.uint64(parts)).astype(np.int64),
        files,
    )
    for f in files:
        yield from sorted_parts([f], buffer_rows, folder / f.stem, divisor * parts, level + 1)
        f.unlink()
    shutil.rmtree(folder, ignore_errors=True)


class SignatureLookup:
    """Signature rows by position id, read with ``pread`` from the shards' signature files (a
    memory map would leave every page it touched in this process's RSS)."""

    def __init__(self, files: list[Path], cfg: DedupConfig, dtype: np.dtype) -> None:
        self.files, self.cfg, self.dtype = files, cfg, np.dtype(dtype)
        self.width = cfg.num_perm * self.dtype.itemsize
        self._fds: dict[int, int] = {}

    def rows(self, uids: np.ndarray) -> np.ndarray:
        out = bytearray(len(uids) * self.width)
        for k, uid in enumerate(uids.tolist()):
            shard, row = uid >> ROW_BITS, uid & ROW_MASK
            if shard not in self._fds:
                self._fds[shard] = os.open(self.files[shard], os.O_RDONLY)
            data = os.pread(self._fds[shard], self.width, row * self.width)
            if len(data) != self.width:
                raise RuntimeError(f"{self.files[shard]}: no signature for row {row}")
            out[k * self.width : (k + 1) * self.width] = data
        return np.frombuffer(bytes(out), dtype=self.dtype).reshape(len(uids), self.cfg.num_perm)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def _near_pairs(
    group: np.ndarray, lookup: SignatureLookup, cfg: DedupConfig
) -> list[tuple[int, int]]:
    if cfg.exact:  # a later exact copy of a member is an exact duplicate: not compared
        _, first = np.unique(group["fp"], return_index=True)
        group = group[np.sort(first)]
    if len(group) < 2:
        return []
    uids = group["uid"]
    sigs = lookup.rows(uids)
    found: list[tuple[int, int]] = []
    for t in range(1, len(group)):
        earlier = sigs[: min(t, cfg.max_bucket_compare)]
        similar = np.flatnonzero((earlier == sigs[t]).mean(axis=1) >= cfg.threshold)
        found.extend((int(uids[t]), int(uids[i])) for i in similar)
    return found


def range_pairs(
    paths: list[Path],
    out: Path,
    lookup: SignatureLookup,
    cfg: DedupConfig,
    buffer_rows: int,
    scratch: Path,
    ranges: int,
) -> dict[str, int]:
    """Write the range's pairs to ``out`` (unsorted, maybe repeated); return counts."""
    counts = {"records": 0, "buckets": 0, "exact_pairs": 0, "near_pairs": 0}
    shutil.rmtree(scratch, ignore_errors=True)
    with open(out, "wb") as f:
        for data in sorted_parts(paths, buffer_rows, scratch, ranges):
            counts["records"] += len(data)
            if len(data) < 2:
                continue
            tie = np.where(data["band"] == EXACT_BAND, data["fp"], np.uint64(0))
            same = (
                (data["band"][1:] == data["band"][:-1])
                & (data["key"][1:] == data["key"][:-1])
                & (tie[1:] == tie[:-1])
            )
            starts = np.flatnonzero(~np.concatenate(([False], same)))
            ends = np.append(starts[1:], len(data))
            multi = np.flatnonzero(ends - starts > 1)
            counts["buckets"] += len(multi)
            pairs: list[tuple[int, int, int]] = []
            for g in multi:
                group = data[starts[g] : ends[g]]
                if group["band"][0] == EXACT_BAND:
                    first = int(group["uid"][0])
                    pairs.extend((int(j), first, EXACT) for j in group["uid"][1:])
                    counts["exact_pairs"] += len(group) - 1
                else:
                    near = _near_pairs(group, lookup, cfg)
                    pairs.extend((j, i, NEAR) for j, i in near)
                    counts["near_pairs"] += len(near)
                if len(pairs) >= READ_ROWS:
                    f.write(np.array(pairs, dtype=PAIR).tobytes())
                    pairs = []
            if pairs:
                f.write(np.array(pairs, dtype=PAIR).tobytes())
    shutil.rmtree(scratch, ignore_errors=True)
    return counts
