"""Where the scalable dedup keeps its files: names from the run folder, nothing spelled here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mind_nemo.core import run_folder as rf
from mind_nemo.filter.layout import OutputLayout


@dataclass(frozen=True)
class DedupPaths:
    layout: OutputLayout

    @property
    def _folder(self) -> rf.RunFolder:
        return self.layout.folder

    def buckets(self, shard: str) -> Path:
        return self._folder.work / rf.DEDUP_BUCKETS / shard

    def bucket_file(self, shard: str, r: int, ranges: int) -> Path:
        return self.buckets(shard) / f"{rf.range_name(r, ranges)}.bin"

    def split_marker(self, shard: str) -> Path:
        return self._folder.staged(rf.DEDUP_BUCKETS, shard, ".json")

    def keys(self, shard: str) -> Path:
        return self._folder.staged(rf.DEDUP_KEYS, shard, ".txt")

    def keys_index(self, shard: str) -> Path:
        return self._folder.staged(rf.DEDUP_KEYS, shard, ".idx")

    def pairs(self, r: int, ranges: int) -> Path:
        return self._folder.staged(rf.DEDUP_PAIRS, rf.range_name(r, ranges), ".bin")

    def pairs_marker(self, r: int, ranges: int) -> Path:
        return self._folder.staged(rf.DEDUP_PAIRS, rf.range_name(r, ranges), ".json")

    def scratch(self, name: str) -> Path:
        """A private folder for one task's spill files (removed when it is done)."""
        return self._folder.work / rf.DEDUP_PAIRS / f".scratch-{name}"

    def drops(self, shard: str) -> Path:
        return self._folder.staged(rf.DEDUP_DROPS, shard, ".bin")

    def cluster_marker(self) -> Path:
        return self._folder.work / rf.DEDUP_DROPS / rf.RUN_MANIFEST

    def applied_marker(self, shard: str) -> Path:
        return self._folder.staged(rf.DEDUP_APPLIED, shard, ".json")
