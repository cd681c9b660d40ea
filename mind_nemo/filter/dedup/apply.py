"""One shard's drops -> its final conversations and rejects (the ``step=apply`` work).

The drops file lists, in row order, each staged row that goes, why, and the position id of the
row it duplicates; the original's key is read from its shard's key files, so no other shard's
rows are opened. The rewrite itself is the in-memory path's (``finalize.rewrite_shard``), so
both paths write the same bytes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mind_nemo.filter.dedup.bands import DROP, REASONS, ROW_BITS, ROW_MASK
from mind_nemo.filter.dedup.paths import DedupPaths
from mind_nemo.filter.dedup.split import KeyReader
from mind_nemo.filter.finalize import rewrite_shard
from mind_nemo.filter.tally import Tally


def apply_shard(paths: DedupPaths, shards: list[str], shard: str) -> dict[str, Any]:
    """Rewrite ``shard``; its per-shard summary and tally (kept rows and duplicates only)."""
    drops = np.fromfile(paths.drops(shard), dtype=DROP)
    shard_drops = {
        int(row): (REASONS[int(kind)], int(original))
        for row, original, kind in zip(
            drops["row"].tolist(), drops["original"].tolist(), drops["kind"].tolist(), strict=True
        )
    }
    keys = KeyReader(paths, shards)
    tally = Tally()
    try:
        summary = rewrite_shard(
            paths.layout,
            shard,
            shard_drops,
            tally,
            lambda original: keys.key(original >> ROW_BITS, original & ROW_MASK),
        )
    finally:
        keys.close()
    return {"summary": summary, "by_style": tally.to_dict()}
