"""Reading and scattering the dedup steps' fixed-width record files, in bounded chunks.

The bucket step (band records) and the cluster step (pairs) both stream a set of binary files
of one numpy record type and, when those exceed the sort buffer, scatter them into part files
by a computed part number; both do it here so the chunk size and the write loop are one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

#: Records read into memory at a time.
READ_ROWS = 1 << 20


def read_chunks(paths: list[Path], dtype: np.dtype) -> Iterator[np.ndarray]:
    """The records of ``paths`` (missing or empty files skipped), ``READ_ROWS`` at a time."""
    for path in paths:
        if not path.is_file() or path.stat().st_size == 0:
            continue
        data = np.memmap(path, dtype=dtype, mode="r")
        for start in range(0, len(data), READ_ROWS):
            yield np.array(data[start : start + READ_ROWS])


def scatter(
    chunks: Iterator[np.ndarray], part_of: Callable[[np.ndarray], np.ndarray], files: list[Path]
) -> None:
    """Append each record of ``chunks`` to ``files[part_of(chunk)[k]]``, keeping chunk order
    within a part (a stable sort), so a part reads back in the order its records came."""
    outs = [open(f, "wb") for f in files]  # noqa: SIM115
    try:
        for chunk in chunks:
            where = part_of(chunk)
            order = np.argsort(where, kind="stable")
            chunk, where = chunk[order], where[order]
            bounds = np.searchsorted(where, np.arange(len(files) + 1))
            for p, out in enumerate(outs):
                if bounds[p + 1] > bounds[p]:
                    out.write(chunk[bounds[p] : bounds[p + 1]].tobytes())
    finally:
        for out in outs:
            out.close()
