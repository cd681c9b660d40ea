"""Split one staged shard into band-bucket records per hash range, plus its row keys.

Runs in the shard's own task right after pass 1 (``step=shard`` with ``dedup.mode=scalable``,
or inside ``step=all``). Memory: one chunk of rows (``CHUNK_ROWS``) of signatures and
records, plus the shard's fingerprints (16 bytes a row). The row keys
(``document_id#context_index/style/sample``, one line per staged row, plus a fixed-width
offset index) let the apply step name the original of a duplicate that lives in another shard
without reading that shard's rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import BinaryIO

import numpy as np

from mind_nemo.core.records import key_string
from mind_nemo.core.run_folder import publish, temp_path
from mind_nemo.filter.config import DedupConfig
from mind_nemo.filter.dedup.bands import banding, range_of, records
from mind_nemo.filter.dedup.paths import DedupPaths
from mind_nemo.filter.rules.dedup import FINGERPRINT_BYTES
from mind_nemo.synthesize.shard_store import row_key

CHUNK_ROWS = 32_768


def split_shard(
    paths: DedupPaths,
    shard: str,
    shard_index: int,
    cfg: DedupConfig,
    signature_dtype: np.dtype,
    ranges: int,
) -> dict[str, int]:
    """Write the shard's range files and keys (temp names, then renamed); return counts."""
    fingerprints = np.fromfile(paths.layout.fingerprints(shard), dtype=np.uint8)
    fingerprints = fingerprints.reshape(-1, FINGERPRINT_BYTES)
    rows = len(fingerprints)
    width = cfg.num_perm * signature_dtype.itemsize
    sig_path = paths.layout.signatures(shard)
    if cfg.near and sig_path.stat().st_size != rows * width:
        raise RuntimeError(f"{shard}: staged signatures do not match staged rows")
    # Read in chunks, not memory-mapped: mapped pages would count towards this process's RSS.
    sig_file = open(sig_path, "rb") if cfg.near else None  # noqa: SIM115
    bands = banding(cfg)
    folder = paths.buckets(shard)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*"):
        old.unlink()
    targets = [paths.bucket_file(shard, r, ranges) for r in range(ranges)]
    outs: dict[int, BinaryIO] = {}
    written = 0
    try:
        for start in range(0, rows, CHUNK_ROWS):
            end = min(rows, start + CHUNK_ROWS)
            sigs = None
            if sig_file is not None:
                sigs = np.fromfile(
                    sig_file, dtype=signature_dtype, count=(end - start) * cfg.num_perm
                )
                sigs = sigs.reshape(end - start, cfg.num_perm)
            chunk = records(shard_index, start, fingerprints[start:end], sigs, bands, cfg.exact)
            where = range_of(chunk["key"], ranges)
            order = np.argsort(where, kind="stable")
            chunk, where = chunk[order], where[order]
            cuts = np.flatnonzero(np.diff(where)) + 1
            for part in np.split(np.arange(len(chunk)), cuts):
                if len(part) == 0:
                    continue
                r = int(where[part[0]])
                if r not in outs:
                    outs[r] = open(temp_path(targets[r]), "wb")  # noqa: SIM115
                outs[r].write(chunk[part].tobytes())
            written += len(chunk)
    finally:
        for out in outs.values():
            out.close()
        if sig_file is not None:
            sig_file.close()
    for r in outs:
        publish(temp_path(targets[r]), targets[r])
    _write_keys(paths, shard, rows)
    return {"rows": rows, "records": written, "ranges_written": len(outs)}


def _write_keys(paths: DedupPaths, shard: str, rows: int) -> None:
    keys, index = paths.keys(shard), paths.keys_index(shard)
    keys.parent.mkdir(parents=True, exist_ok=True)
    offsets = np.zeros(rows, dtype="<u8")
    position = 0
    with open(temp_path(keys), "wb") as out, open(paths.layout.staged_kept(shard), "rb") as f:
        for row, line in enumerate(f):
            if row >= rows:
                raise RuntimeError(f"{shard}: more staged rows than fingerprints")
            data = (key_string(row_key(json.loads(line))) + "\n").encode("utf-8")
            offsets[row] = position
            out.write(data)
            position += len(data)
    offsets.tofile(temp_path(index))
    publish(temp_path(keys), keys)
    publish(temp_path(index), index)


class KeyReader:
    """The key of any staged row of any shard, by position id (files opened on demand)."""

    def __init__(self, paths: DedupPaths, shards: list[str]) -> None:
        self.paths, self.shards = paths, shards
        self._open: dict[int, tuple[np.ndarray, BinaryIO]] = {}

    def key(self, shard_index: int, row: int) -> str:
        if shard_index not in self._open:
            if len(self._open) >= 64:
                _, (_, f) = self._open.popitem()
                f.close()
            shard = self.shards[shard_index]
            offsets = np.fromfile(self.paths.keys_index(shard), dtype="<u8")
            self._open[shard_index] = (offsets, open(self.paths.keys(shard), "rb"))  # noqa: SIM115
        offsets, f = self._open[shard_index]
        f.seek(int(offsets[row]))
        return f.readline().decode("utf-8").rstrip("\n")

    def close(self) -> None:
        for _, f in self._open.values():
            f.close()
        self._open.clear()


def bucket_files(paths: DedupPaths, shards: list[str], r: int, ranges: int) -> list[Path]:
    return [p for s in shards if (p := paths.bucket_file(s, r, ranges)).is_file()]
