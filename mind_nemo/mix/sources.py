"""Turn a mix source (corpus, filter variant, styles of a run) into ordered units of raw input.

A *unit* is the smallest piece of a source a shard can own: a byte range of a plain JSONL file
(lines are cut Hadoop-style: a range owns every line that *starts* inside it), a whole
compressed JSONL or Parquet file, a row range of a saved Hugging Face dataset, or a Hub dataset
as a whole. Units are listed in input order and a shard owns a contiguous run of them, so the
shards of a source, merged in shard order, hold exactly the documents of a single run in the
same order.

Reading a unit is :mod:`mind_nemo.mix.readers`' job.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mind_nemo.core.corpus import CorpusConfig, Source, resolve_sources
from mind_nemo.core.errors import UserError
from mind_nemo.core.package_files import data_path
from mind_nemo.core.run_folder import CONVERSATIONS, PART_GLOB, SHARD_GLOB, RunFolder
from mind_nemo.mix.config import SourceConfig
from mind_nemo.mix.readers import Unit, load_hf_disk

log = logging.getLogger(__name__)

#: Packaged samples a corpus source can name instead of a path.
PACKAGED = {"sample_general": "general_web_sample.jsonl"}
#: Rows per unit of a saved Hugging Face dataset.
HF_ROWS_PER_UNIT = 200_000
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class ResolvedSource:
    """A source ready to read: its units in order, plus what identifies its input."""

    name: str
    cfg: SourceConfig
    units: list[Unit]
    #: Inputs with sizes and modification times: a change means the output must be redone.
    inputs: list[dict[str, Any]]

    @property
    def input_bytes(self) -> int:
        return sum(int(i.get("bytes") or 0) for i in self.inputs)

    def identity(self) -> dict[str, Any]:
        cfg = self.cfg
        return {
            "kind": cfg.kind,
            "variant": cfg.variant,
            "styles": sorted(cfg.styles),
            "text_field": cfg.text_field,
            "hf_split": cfg.hf_split,
            "hf_name": cfg.hf_name,
            "limit_documents": cfg.limit_documents,
            "units": [[u.source.label, u.start, u.end] for u in self.units],
            "inputs": self.inputs,
        }


def check_name(name: str) -> None:
    if not _NAME.match(name):
        raise UserError(
            f"source name {name!r} must be letters, digits, '_', '-' or '.' (it names files)"
        )


def resolve(name: str, cfg: SourceConfig, split_bytes: int) -> ResolvedSource:
    """Find the files of a source and cut them into units; a mistake is one clear line."""
    check_name(name)  # kind, limits, split_bytes: checked by SourceConfig and MixConfig
    if not cfg.path:
        raise UserError(f"sources.{name}.path is not set (a corpus path or a run folder)")
    try:
        sources = resolve_sources(_corpus_config(name, cfg))
    except UserError as err:
        raise UserError(f"source {name!r}: {err}") from None
    units = [u for s in sources for u in _units(s, split_bytes, cfg)]
    return ResolvedSource(name, cfg, units, [_describe(s) for s in sources])


def _corpus_config(name: str, cfg: SourceConfig) -> CorpusConfig:
    """The corpus reader's view of a source: where its files are and how they look."""
    path = str(cfg.path)
    if cfg.kind == "corpus":
        if path in PACKAGED:
            path = str(data_path(PACKAGED[path]))
        return CorpusConfig(
            path=path,
            format=cfg.format,
            text_field=cfg.text_field,
            hf_split=cfg.hf_split,
            hf_name=cfg.hf_name,
        )
    run = Path(os.path.expanduser(path))
    if not run.is_dir():
        raise UserError(f"source {name!r}: run folder not found: {path}")
    layout = RunFolder(run)
    if not layout.manifest.is_file():
        log.warning("source %r: %s has no manifest.json yet; is that run finished?", name, run)
    if cfg.kind == "variant":
        if not cfg.variant:
            raise UserError(f"source {name!r}: kind=variant needs variant=longest|all|concat|raw")
        folder = layout.variant(cfg.variant)
        if not folder.is_dir():
            found = layout.variant_names()
            raise UserError(
                f"source {name!r}: {run} has no variant {cfg.variant!r} "
                f"(found: {', '.join(found) or 'none'}; run python -m mind_nemo.filter first)"
            )
        return CorpusConfig(path=str(folder / PART_GLOB), format="jsonl")
    folder = layout.subfolder(CONVERSATIONS)
    if not folder.is_dir():
        raise UserError(f"source {name!r}: {run} has no conversations/ folder")
    return CorpusConfig(path=str(folder / SHARD_GLOB), format="jsonl")


def _describe(source: Source) -> dict[str, Any]:
    if source.kind == "hf_hub":
        return {"path": source.label}
    path = Path(source.path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    stats = [p.stat() for p in files]
    return {
        "path": source.label,
        "bytes": sum(s.st_size for s in stats),
        "mtime_ns": max((s.st_mtime_ns for s in stats), default=0),
    }


def _units(source: Source, split_bytes: int, cfg: SourceConfig) -> list[Unit]:
    if source.kind == "jsonl" and not _compressed(source.path):
        size = os.path.getsize(source.path)
        starts = range(0, max(size, 1), split_bytes)
        return [Unit(source, s, min(s + split_bytes, size)) for s in starts]
    if source.kind == "hf_disk":
        rows = len(load_hf_disk(source, cfg))
        step = HF_ROWS_PER_UNIT
        return [Unit(source, s, min(s + step, rows)) for s in range(0, max(rows, 1), step)]
    return [Unit(source)]


def shard_units(units: list[Unit], shard_id: int, num_shards: int) -> list[Unit]:
    """The contiguous run of units shard ``shard_id`` of ``num_shards`` owns."""
    n = len(units)
    return units[shard_id * n // num_shards : (shard_id + 1) * n // num_shards]


def _compressed(path: str) -> bool:
    return path.lower().endswith((".gz", ".zst", ".zstd"))
