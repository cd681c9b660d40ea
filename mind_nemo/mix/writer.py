"""Write one Megatron indexed dataset (.bin/.idx) so that it is either complete or invisible.

The bytes are produced by megatron-core's own ``IndexedDatasetBuilder`` (the format's writer, so
Megatron-LM and NeMo read what we write). Files are built under hidden temporary names next to
their final place and renamed on :meth:`DatasetWriter.commit`; the done marker recorded after the
rename (the run folder's one marker design: identity, sizes and checksums of the .bin/.idx) is
what says "done", so a crash at any moment leaves nothing that looks finished.

Batches arrive as one flat array plus per-document lengths. Appending them goes through the
builder's own state (data file, ``sequence_lengths``, ``document_indices``) in one write per
batch: byte for byte what ``add_document(doc, [len(doc)])`` per document produces (a test checks
it), which is also what newer megatron-core's ``add_documents`` does.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from mind_nemo.core.run_folder import (
    file_sha256,
    publish,
    read_done,
    temp_path,
    write_marker,
)

#: Megatron's naming for a document-level dataset of the ``text`` field.
SUFFIX = "_text_document"


def megatron_indexed_dataset() -> Any:
    """Import megatron-core's indexed_dataset module once, quietly (it warns about optional
    GPU libraries on CPU machines)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from megatron.core.datasets import indexed_dataset
    return indexed_dataset


def prefix_paths(prefix: Path) -> tuple[Path, Path]:
    return Path(f"{prefix}.bin"), Path(f"{prefix}.idx")


class DatasetWriter:
    """Accumulates documents into ``prefix.bin``/``prefix.idx`` under temporary names.

    The megatron-core builder is created on the first batch, so the workers are already busy
    while megatron-core (several seconds: it imports torch) is being imported.
    """

    def __init__(self, prefix: Path, dtype: np.dtype) -> None:
        self.prefix, self.dtype = prefix, np.dtype(dtype)
        self.bin_path, self.idx_path = prefix_paths(prefix)
        self._builder: Any = None
        self.sha256 = hashlib.sha256()
        self.tokens = 0

    @property
    def builder(self) -> Any:
        if self._builder is None:
            self.prefix.parent.mkdir(parents=True, exist_ok=True)
            builder_cls = megatron_indexed_dataset().IndexedDatasetBuilder
            self._builder = builder_cls(str(temp_path(self.bin_path)), dtype=self.dtype.type)
        return self._builder

    @property
    def documents(self) -> int:
        return len(self.builder.sequence_lengths)

    def add_batch(self, tokens: np.ndarray, lengths: np.ndarray) -> None:
        """Append documents: ``tokens`` is their concatenation, ``lengths`` their sizes."""
        data = np.ascontiguousarray(tokens, dtype=self.dtype)
        if int(lengths.sum()) != data.size:
            raise ValueError("lengths do not add up to the number of tokens")
        view = data.data.cast("B")
        self.builder.data_file.write(view)
        self.sha256.update(view)
        first = len(self.builder.sequence_lengths)
        self.builder.sequence_lengths.extend(lengths.tolist())
        self.builder.document_indices.extend(range(first + 1, first + len(lengths) + 1))
        self.tokens += data.size

    def commit(self) -> dict[str, Any]:
        """Write the index, then rename both files into place; return sizes and checksums."""
        temp_bin, temp_idx = temp_path(self.bin_path), temp_path(self.idx_path)
        self.builder.finalize(str(temp_idx))
        publish(temp_bin, self.bin_path)
        publish(temp_idx, self.idx_path)
        return {
            "prefix": str(self.prefix),
            "documents": self.documents,
            "tokens": self.tokens,
            "bin_bytes": self.bin_path.stat().st_size,
            "bin_sha256": self.sha256.hexdigest(),
            "idx_sha256": file_sha256(self.idx_path),
        }

    def abort(self) -> None:
        """Drop the temporary files (an interrupted source leaves nothing behind)."""
        if self._builder is not None:
            self._builder.data_file.close()
        for path in (temp_path(self.bin_path), temp_path(self.idx_path)):
            path.unlink(missing_ok=True)


# --------------------------------------------------------------------------- done markers


def marker_path(prefix: Path) -> Path:
    """``<prefix>.json``: the done marker beside a dataset's ``.bin``/``.idx``."""
    return prefix.with_name(f"{prefix.name}.json")


def write_dataset_marker(prefix: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Record a finished dataset; written last, it is what makes the dataset count as done."""
    bin_path, idx_path = prefix_paths(prefix)
    known = {bin_path: record.get("bin_sha256"), idx_path: record.get("idx_sha256")}
    digests = {path: sha for path, sha in known.items() if isinstance(sha, str)}
    return write_marker(marker_path(prefix), record, files=[bin_path, idx_path], digests=digests)


def read_dataset_done(prefix: Path, identity: dict[str, Any]) -> dict[str, Any] | None:
    """The marker of a finished dataset made from ``identity``, or None if it must be (re)done.

    Sizes, not checksums, are verified: a ``.bin`` can be hundreds of gigabytes, and hashing it
    on every rerun would cost as much as writing it."""
    return read_done(marker_path(prefix), expect={"identity": identity}, verify="size")
