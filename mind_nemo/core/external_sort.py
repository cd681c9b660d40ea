"""Sort a stream bigger than memory: sorted runs spilled to disk, then a k-way merge.

Used to group conversations by context (LONGEST and CONCAT need all of a context's
conversations together, and a resumed or retried synthesize run appends stragglers far from
their siblings). At most ``buffer_rows`` records are in memory while runs are built; the merge
holds one record per open run and merges at most ``fan_in`` runs at a time (bigger inputs are
merged in rounds), so memory is bounded by the buffer, not by the input. A stream that fits in
the buffer is sorted in memory and never touches the disk.
"""

from __future__ import annotations

import heapq
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

Record = tuple[tuple[Any, ...], dict[str, Any]]


def _spill(records: list[Record], folder: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix="run-", suffix=".jsonl", dir=folder)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        for key, payload in records:
            f.write(json.dumps([list(key), payload], ensure_ascii=False) + "\n")
    return Path(name)


def _read(path: Path) -> Iterator[Record]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            key, payload = json.loads(line)
            yield tuple(key), payload


def _merge(paths: list[Path]) -> Iterator[Record]:
    return heapq.merge(*(_read(p) for p in paths), key=lambda r: r[0])


def _merge_to_file(group: list[Path], folder: Path) -> Path:
    if len(group) == 1:
        return group[0]
    fd, name = tempfile.mkstemp(prefix="merged-", suffix=".jsonl", dir=folder)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        for key, payload in _merge(group):
            f.write(json.dumps([list(key), payload], ensure_ascii=False) + "\n")
    for path in group:
        path.unlink()
    return Path(name)


def external_sort(
    records: Iterable[Record], folder: Path, buffer_rows: int = 50_000, fan_in: int = 64
) -> Iterator[Record]:
    """Yield ``(key, payload)`` records in key order; equal keys keep their input order.

    Keys must be JSON round-trippable tuples of comparable values; spill files live in
    ``folder`` and are removed when the iterator is exhausted or closed.
    """
    folder.mkdir(parents=True, exist_ok=True)
    runs: list[Path] = []
    buffer: list[Record] = []
    try:
        for record in records:
            buffer.append(record)
            if len(buffer) >= buffer_rows:
                buffer.sort(key=lambda r: r[0])
                runs.append(_spill(buffer, folder))
                buffer = []
        buffer.sort(key=lambda r: r[0])
        if not runs:
            yield from buffer
            return
        runs.append(_spill(buffer, folder))
        buffer = []
        while len(runs) > fan_in:  # merge in rounds, keeping runs in input order (stability)
            runs = [
                _merge_to_file(runs[i : i + fan_in], folder) for i in range(0, len(runs), fan_in)
            ]
        yield from _merge(runs)
    finally:
        for path in runs:
            path.unlink(missing_ok=True)
