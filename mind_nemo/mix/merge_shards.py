"""Join the per-shard datasets of a source (one per SLURM array task) into one dataset.

Each array task tokenizes a contiguous run of a source's units into its own ``.bin/.idx``. Merging
appends them in shard order with megatron-core's ``IndexedDatasetBuilder.add_index`` (the
format's own concatenation: data copied block by block, indices offset), under temporary names
renamed on completion, exactly like a single-process write. Because shards own contiguous units,
the merged dataset is byte-identical to what one process would have written.
"""

from __future__ import annotations

import gc
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from mind_nemo.core.run_folder import file_sha256, publish, temp_path
from mind_nemo.mix.writer import marker_path, megatron_indexed_dataset, prefix_paths


def merge_datasets(parts: list[Path], prefix: Path, dtype: np.dtype) -> dict[str, Any]:
    """Concatenate the datasets at ``parts`` (prefixes, in order) into ``prefix``."""
    indexed = megatron_indexed_dataset()
    bin_path, idx_path = prefix_paths(prefix)
    temp_bin, temp_idx = temp_path(bin_path), temp_path(idx_path)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    builder = indexed.IndexedDatasetBuilder(str(temp_bin), dtype=np.dtype(dtype).type)
    # add_index runs gc.collect() after every part; with torch loaded a full collection takes
    # about a second. Freezing what exists now leaves it only the merge's own objects to scan.
    gc.freeze()
    try:
        for part in parts:
            builder.add_index(str(part))
        builder.finalize(str(temp_idx))
        publish(temp_bin, bin_path)
        publish(temp_idx, idx_path)
    except BaseException:
        builder.data_file.close()
        temp_bin.unlink(missing_ok=True)
        temp_idx.unlink(missing_ok=True)
        raise
    finally:
        gc.unfreeze()
    return {
        "prefix": str(prefix),
        "documents": len(builder.sequence_lengths),
        "bin_bytes": bin_path.stat().st_size,
        "bin_sha256": file_sha256(bin_path),
        "idx_sha256": file_sha256(idx_path),
    }


def sum_records(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals over the shard markers of one source."""
    skipped: Counter[str] = Counter()
    for record in records:
        skipped.update(record.get("skipped", {}))
    seconds = max((float(r.get("seconds") or 0) for r in records), default=0.0)
    tokens = sum(int(r["tokens"]) for r in records)
    return {
        "tokens": tokens,
        "input_bytes": sum(int(r.get("input_bytes") or 0) for r in records),
        "filtered": sum(int(r.get("filtered") or 0) for r in records),
        "skipped": dict(sorted(skipped.items())),
        "shards": len(records),
        "seconds": round(seconds, 3),
        "shard_seconds": round(sum(float(r.get("seconds") or 0) for r in records), 3),
    }


def remove_parts(parts: list[Path]) -> None:
    """Delete merged shard datasets and their markers (the merged dataset replaces them)."""
    for part in parts:
        for path in (*prefix_paths(part), marker_path(part)):
            path.unlink(missing_ok=True)
