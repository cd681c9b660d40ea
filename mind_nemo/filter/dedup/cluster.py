"""All duplicate pairs -> which rows go (``step=cluster``): first seen wins, in row order.

This is the in-memory path's rule replayed on the pairs: rows are visited in position order
(shard order, then staged row order); a row with an exact pair goes as an exact duplicate of
its group's first row; otherwise it goes as a near duplicate of the earliest *kept* row it is
paired with; a row with no such pair stays. So the kept row of every group is its first in
that order, and a row similar only to rows that went stays (as in the in-memory index, which
holds kept rows only). Unlike a union-find, nothing is merged transitively.

Memory: one ``drop`` bit per staged row (29 MB for 231M rows) plus one sorted part of the
pairs; pairs are scattered by row range into parts of at most ``sort_buffer_rows`` first.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import BinaryIO

import numpy as np

from mind_nemo.filter.dedup.bands import DROP, EXACT, PAIR, ROW_BITS, ROW_MASK
from mind_nemo.filter.dedup.record_files import READ_ROWS, read_chunks, scatter


def _global(ids: np.ndarray, bases: np.ndarray) -> np.ndarray:
    shard = (ids >> np.uint64(ROW_BITS)).astype(np.int64)
    return bases[shard] + (ids & np.uint64(ROW_MASK)).astype(np.int64)


def cluster(
    pair_files: list[Path],
    shard_rows: list[int],
    drop_files: list[Path],
    buffer_rows: int,
    scratch: Path,
) -> dict[str, int]:
    """Write one drops file per shard (rows in order); return the counts."""
    bases = np.concatenate(([0], np.cumsum(shard_rows, dtype=np.int64)))
    total_rows = int(bases[-1])
    total_pairs = sum(p.stat().st_size for p in pair_files if p.is_file()) // PAIR.itemsize
    parts = max(1, math.ceil(total_pairs * 1.25 / buffer_rows))
    span = max(1, math.ceil(total_rows / parts))
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    files = [scratch / f"part-{p:05d}.bin" for p in range(parts)]
    scatter(read_chunks(pair_files, PAIR), lambda chunk: _global(chunk["j"], bases) // span, files)

    dropped = np.zeros((total_rows + 7) // 8, dtype=np.uint8)
    counts = {"pairs": 0, "exact": 0, "near": 0}
    with DropWriter(drop_files) as writer:
        for f in files:
            data = np.fromfile(f, dtype=PAIR)
            f.unlink()
            if not len(data):
                continue
            data = np.unique(data)  # the same pair from several bands
            data = data[np.lexsort((data["i"], data["kind"], data["j"]))]
            counts["pairs"] += len(data)
            jg, ig = _global(data["j"], bases).tolist(), _global(data["i"], bases).tolist()
            kinds, js, is_ = data["kind"].tolist(), data["j"].tolist(), data["i"].tolist()
            current = -1
            for k, j in enumerate(jg):
                if j == current:  # already decided
                    continue
                i, kind = ig[k], kinds[k]
                if kind != EXACT and dropped[i >> 3] & (1 << (i & 7)):
                    continue  # that partner went: look at the next one
                dropped[j >> 3] |= 1 << (j & 7)
                current = j
                writer.add(js[k] >> ROW_BITS, js[k] & ROW_MASK, is_[k], kind)
                counts["exact" if kind == EXACT else "near"] += 1
    shutil.rmtree(scratch, ignore_errors=True)
    return counts


class DropWriter:
    """Drops arrive in row order, so shard after shard: one open file at a time."""

    def __init__(self, files: list[Path]) -> None:
        self.files = files
        self.shard = -1
        self.buffer: list[tuple[int, int, int]] = []
        self._out: BinaryIO | None = None

    def _switch(self, shard: int) -> None:
        self._flush()
        if self._out is not None:
            self._out.close()
        while self.shard < shard:
            self.shard += 1
            path = self.files[self.shard]
            path.parent.mkdir(parents=True, exist_ok=True)
            out = open(path, "wb")  # noqa: SIM115
            self._out = out
            if self.shard < shard:
                out.close()

    def _flush(self) -> None:
        if self.buffer and self._out is not None:
            self._out.write(np.array(self.buffer, dtype=DROP).tobytes())
        self.buffer = []

    def add(self, shard: int, row: int, original: int, kind: int) -> None:
        if shard != self.shard:
            self._switch(shard)
        self.buffer.append((row, original, kind))
        if len(self.buffer) >= READ_ROWS:
            self._flush()

    def __enter__(self) -> DropWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._switch(len(self.files) - 1)
        if self._out is not None:
            self._out.close()
