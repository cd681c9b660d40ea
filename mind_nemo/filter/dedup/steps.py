"""The scalable dedup's steps as a stage runs them: done markers, task shares, local workers.

Every step writes its outputs, then a done marker (:func:`~mind_nemo.core.run_folder.write_marker`)
that names what it was made from; a step whose marker is valid for the current inputs and
settings is skipped, so each can be rerun or resumed like pass 1:

=========  ===================================  =========================================
step       task share                           marker (under ``work/``)
=========  ===================================  =========================================
split      its own shards (inside step=shard)   ``dedup-buckets/<shard>.json``
bucket     ranges ``r % num_shards == shard_id``  ``dedup-pairs/range-R-of-N.json``
cluster    one process                          ``dedup-drops/manifest.json``
apply      shards ``j % num_shards == shard_id``  ``dedup-applied/<shard>.json``
=========  ===================================  =========================================
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from mind_nemo.core.errors import UserError
from mind_nemo.core.run_folder import file_sha256, read_done, summarize, write_marker
from mind_nemo.filter.config import DedupConfig, DedupRunConfig
from mind_nemo.filter.dedup.apply import apply_shard
from mind_nemo.filter.dedup.cluster import cluster
from mind_nemo.filter.dedup.pairs import SignatureLookup, range_pairs
from mind_nemo.filter.dedup.paths import DedupPaths
from mind_nemo.filter.dedup.split import bucket_files, split_shard
from mind_nemo.filter.layout import OutputLayout

log = logging.getLogger(__name__)


@dataclass
class ScalableDedup:
    """The scalable path for one filtered run (picklable: local workers get a copy)."""

    layout: OutputLayout
    shards: list[str]
    settings: DedupConfig
    run: DedupRunConfig
    settings_hash: str
    signature_dtype: str

    @property
    def paths(self) -> DedupPaths:
        return DedupPaths(self.layout)

    @property
    def ranges(self) -> int:
        return self.run.ranges

    def _root(self) -> Any:
        return self.layout.root

    # -- split ---------------------------------------------------------------------------------
    def split_record(self, shard: str, input_sha: str | None = None) -> dict[str, Any] | None:
        expect: dict[str, Any] = {"settings_hash": self.settings_hash, "ranges": self.ranges}
        if input_sha is not None:
            expect["input_sha256"] = input_sha
        return read_done(
            self.paths.split_marker(shard), expect=expect, root=self._root(), verify="size"
        )

    def split(self, shard: str, input_sha: str) -> None:
        if self.split_record(shard, input_sha) is not None:
            return
        paths = self.paths
        index = self.shards.index(shard)
        counts = split_shard(
            paths, shard, index, self.settings, np.dtype(self.signature_dtype), self.ranges
        )
        files = [paths.bucket_file(shard, r, self.ranges) for r in range(self.ranges)]
        files = [f for f in files if f.is_file()] + [paths.keys(shard), paths.keys_index(shard)]
        record = {
            "shard": shard,
            "input_sha256": input_sha,
            "settings_hash": self.settings_hash,
            "ranges": self.ranges,
            **counts,
        }
        write_marker(paths.split_marker(shard), record, files=files, root=self._root())

    def inputs(self) -> tuple[dict[str, str], list[int]]:
        """Input checksum and staged rows of every shard, from the split markers (or refuse)."""
        found, rows, missing = {}, [], []
        for shard in self.shards:
            record = self.split_record(shard)
            if record is None:
                missing.append(shard)
                continue
            found[shard] = record["input_sha256"]
            rows.append(int(record["rows"]))
        if missing:
            raise UserError(
                f"dedup buckets are not written for {summarize(missing)} (run step=shard "
                "with dedup.mode=scalable for them first)"
            )
        return found, rows

    # -- bucket ---------------------------------------------------------------------------------
    def _expect(self, inputs: dict[str, str]) -> dict[str, Any]:
        return {"settings_hash": self.settings_hash, "ranges": self.ranges, "inputs": inputs}

    def pairs_done(self, r: int, inputs: dict[str, str]) -> bool:
        marker = self.paths.pairs_marker(r, self.ranges)
        return read_done(marker, expect=self._expect(inputs), root=self._root()) is not None

    def bucket(self, r: int, inputs: dict[str, str]) -> None:
        if self.pairs_done(r, inputs):
            return
        paths = self.paths
        out = paths.pairs(r, self.ranges)
        out.parent.mkdir(parents=True, exist_ok=True)
        lookup = SignatureLookup(
            [self.layout.signatures(s) for s in self.shards],
            self.settings,
            np.dtype(self.signature_dtype),
        )
        try:
            counts = range_pairs(
                bucket_files(paths, self.shards, r, self.ranges),
                out,
                lookup,
                self.settings,
                self.run.sort_buffer_rows,
                paths.scratch(f"range-{r}"),
                self.ranges,
            )
        finally:
            lookup.close()
        record = {"range": r, **self._expect(inputs), **counts}
        write_marker(paths.pairs_marker(r, self.ranges), record, files=[out], root=self._root())

    # -- cluster --------------------------------------------------------------------------------
    def cluster_record(self, inputs: dict[str, str]) -> dict[str, Any] | None:
        return read_done(
            self.paths.cluster_marker(), expect=self._expect(inputs), root=self._root()
        )

    def cluster(self) -> dict[str, Any]:
        inputs, rows = self.inputs()
        done = self.cluster_record(inputs)
        if done is not None:
            return done
        missing = [r for r in range(self.ranges) if not self.pairs_done(r, inputs)]
        if missing:
            raise UserError(
                f"step=bucket is not done for ranges {missing[:10]} of {self.ranges} "
                "(run it for them first)"
            )
        paths = self.paths
        drops = [paths.drops(s) for s in self.shards]
        counts = cluster(
            [paths.pairs(r, self.ranges) for r in range(self.ranges)],
            rows,
            drops,
            self.run.sort_buffer_rows,
            paths.scratch("cluster"),
        )
        record = {**self._expect(inputs), "rows": sum(rows), **counts}
        return write_marker(paths.cluster_marker(), record, files=drops, root=self._root())

    # -- apply ----------------------------------------------------------------------------------
    def _apply_expect(self, shard: str, input_sha: str) -> dict[str, Any]:
        return {
            "settings_hash": self.settings_hash,
            "input_sha256": input_sha,
            "drops_sha256": file_sha256(self.paths.drops(shard)),
        }

    def applied(self, shard: str, input_sha: str) -> dict[str, Any] | None:
        marker = self.paths.applied_marker(shard)
        expect = self._apply_expect(shard, input_sha)
        return read_done(marker, expect=expect, root=self._root())

    def apply(self, shard: str, inputs: dict[str, str]) -> None:
        if self.applied(shard, inputs[shard]) is not None:
            return
        result = apply_shard(self.paths, self.shards, shard)
        record = {"shard": shard, **self._apply_expect(shard, inputs[shard]), **result}
        files = [self.layout.conversations(shard), self.layout.rejects(shard)]
        write_marker(self.paths.applied_marker(shard), record, files=files, root=self._root())

    def check_cluster(self) -> dict[str, str]:
        inputs, _ = self.inputs()
        if self.cluster_record(inputs) is None:
            raise UserError("step=cluster is not done for these inputs (run it first)")
        return inputs

    def applied_all(self, shas: dict[str, str]) -> dict[str, dict[str, Any]]:
        """Every shard's apply record for these inputs, or refuse naming the missing ones."""
        found, missing = {}, []
        for shard in self.shards:
            record = self.applied(shard, shas[shard])
            if record is None:
                missing.append(self.shards.index(shard))
            else:
                found[shard] = record
        if missing:
            raise UserError(
                f"step=apply is not done for source shards {missing[:10]} (run it for them first)"
            )
        return found

    # -- everything, on one machine -------------------------------------------------------------
    def run_all(self, shas: dict[str, str]) -> dict[str, dict[str, Any]]:
        """split, bucket, cluster and apply in order, ``dedup.workers`` processes at a time."""
        self._map(_split, [(s, shas[s]) for s in self.shards])
        inputs, _ = self.inputs()
        self._map(_bucket, [(r, inputs) for r in range(self.ranges)])
        self.cluster()
        self._map(_apply, [(s, inputs) for s in self.shards])
        return self.applied_all(shas)

    def _map(self, fn: Callable[..., None], jobs: list[tuple[Any, ...]]) -> None:
        if self.run.workers <= 1 or len(jobs) <= 1:
            for job in jobs:
                fn(self, *job)
            return
        with ProcessPoolExecutor(max_workers=min(self.run.workers, len(jobs))) as pool:
            for future in [pool.submit(fn, self, *job) for job in jobs]:
                future.result()


def _split(dedup: ScalableDedup, shard: str, input_sha: str) -> None:
    dedup.split(shard, input_sha)


def _bucket(dedup: ScalableDedup, r: int, inputs: dict[str, str]) -> None:
    dedup.bucket(r, inputs)


def _apply(dedup: ScalableDedup, shard: str, inputs: dict[str, str]) -> None:
    dedup.apply(shard, inputs)
