"""One mix run: tokenize each source (or this shard's part of it), merge, plan, write the blend.

Run folder::

    config.yaml                                  the resolved config of the last session
    datasets/<source>_text_document.{bin,idx}    one Megatron indexed dataset per source
    datasets/<source>_text_document.json         its done marker: counts, checksums, identity
    shards/<source>/shard-*_text_document.*      per-array-task parts (gone once merged)
    blend.json, data_args.txt                    weights + prefixes for Megatron-LM and NeMo
    manifest.json                                documents, tokens, share, epochs per source
    locks/                                       one writer per array task, one for finalize

A source whose marker matches its identity (inputs, their sizes and times, units, tokenizer) is
reused as is; anything else is redone. The marker is written after the files are renamed into
place, so an interrupted run never leaves a dataset that looks finished. The names are spelled
in :mod:`mind_nemo.core.run_folder`, as are the marker and lock rules.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mind_nemo.core.errors import UserError
from mind_nemo.core.jsonl import write_atomic, write_json_atomic
from mind_nemo.core.machine import usable_cores
from mind_nemo.core.run_folder import RunFolder, make_folder, resolve_shard, shard_name, step_locks
from mind_nemo.mix.blend import assign_groups, plan_mix, split_values, write_blend
from mind_nemo.mix.config import MixConfig, source_configs
from mind_nemo.mix.manifest import build_manifest, empty_message
from mind_nemo.mix.merge_shards import merge_datasets, remove_parts, sum_records
from mind_nemo.mix.pipeline import TokenizerPool, tokenize_units
from mind_nemo.mix.readers import Unit
from mind_nemo.mix.sources import resolve, shard_units
from mind_nemo.mix.tokenizer import resolve_tokenizer
from mind_nemo.mix.writer import SUFFIX, DatasetWriter, read_dataset_done, write_dataset_marker

log = logging.getLogger("mind_nemo.mix")


def default_workers() -> int:
    """CPUs this process may use (SLURM's allocation when inside a job)."""
    if os.environ.get("SLURM_CPUS_PER_TASK", "").isdigit():
        return int(os.environ["SLURM_CPUS_PER_TASK"])
    return usable_cores()


def check_settings(cfg: MixConfig) -> None:
    """What MixConfig does not check itself (its ranges are checked when it is built)."""
    split_values(cfg.split)  # a malformed split fails before any tokenizing


class MixRun:
    """Everything is checked in the constructor, before a worker starts or a file is written."""

    def __init__(self, cfg: MixConfig, raw_cfg: DictConfig | None = None) -> None:
        check_settings(cfg)
        self.cfg, self.raw_cfg = cfg, raw_cfg
        self.run_dir = Path(cfg.output_dir)
        self.shard_id, self.num_shards = resolve_shard(cfg.shard_id, cfg.num_shards)
        self.step = cfg.step if cfg.step != "auto" else ("shard" if self.num_shards > 1 else "all")
        if self.step == "all" and self.num_shards > 1:
            raise UserError("step=all runs every shard in one process; use num_shards=1")
        self.sources = {n: s for n, s in source_configs(cfg.sources).items() if s.enabled}
        assign_groups(self.sources, dict(cfg.groups))
        self.resolved = {n: resolve(n, s, cfg.split_bytes) for n, s in self.sources.items()}
        self.tokenizer = resolve_tokenizer(cfg.tokenizer)
        self.workers = default_workers() if cfg.workers is None else cfg.workers
        self.session: dict[str, str] = {}

    def final_prefix(self, name: str) -> Path:
        return RunFolder(self.run_dir).datasets / f"{name}{SUFFIX}"

    def part_prefix(self, name: str, shard_id: int) -> Path:
        parts = RunFolder(self.run_dir).parts(name)
        return parts / f"{shard_name(shard_id, self.num_shards)}{SUFFIX}"

    def identity(self, name: str) -> dict[str, Any]:
        return {"source": self.resolved[name].identity(), "tokenizer": self.tokenizer.fingerprint}

    def run(self) -> dict[str, Any]:
        make_folder(self.run_dir, "output_dir")
        # One writer per task: pass 1 locks its task's share, finalize the whole pass 2.
        with step_locks(self.run_dir, self.step, self.shard_id, self.num_shards, stage="mix"):
            return self._run()

    def _run(self) -> dict[str, Any]:
        started = time.perf_counter()
        folder = RunFolder(self.run_dir)
        if self.raw_cfg is not None:
            write_atomic(folder.config, OmegaConf.to_yaml(self.raw_cfg))
        if self.step == "finalize":
            records = {n: self._finalize_source(n) for n in self.resolved}
        else:
            records = self._tokenize_all()
        if self.step == "shard":
            return {
                "status": "shard_complete",
                "shard": [self.shard_id, self.num_shards],
                "sources": records,
                "seconds": time.perf_counter() - started,
            }
        cfg = self.cfg
        plan = plan_mix(
            self.sources,
            dict(cfg.groups),
            records,
            cfg.total_tokens,
            cfg.max_epochs,
            cfg.seq_length,
            split=cfg.split,
        )
        blend = write_blend(self.run_dir, plan, self.tokenizer)
        session = {
            "seconds": round(time.perf_counter() - started, 3),
            "workers": self.workers,
            "sources": dict(self.session),
        }
        manifest = build_manifest(
            cfg.name,
            self.tokenizer.describe(),
            dict(cfg.groups),
            self.sources,
            plan,
            blend,
            records,
            session,
        )
        write_json_atomic(folder.manifest, manifest)
        return manifest

    # ----------------------------------------------------------------------- tokenizing

    def _tokenize_all(self) -> dict[str, dict[str, Any]]:
        records: dict[str, dict[str, Any]] = {}
        pool: TokenizerPool | None = None
        failed = True
        try:
            for name in self.resolved:
                target, identity, units = self._work(name)
                done = self._reusable(name, target, identity)
                if done is not None:
                    self.session[name] = "reused"
                    records[name] = done
                    continue
                pool = pool or TokenizerPool(self.tokenizer, self.workers, self._in_flight())
                records[name] = self._tokenize(name, units, target, identity, pool)
                self.session[name] = "tokenized"
            failed = False
        finally:
            if pool is not None:
                pool.close(abort=failed)
        return records

    def _work(self, name: str) -> tuple[Path, dict[str, Any], list[Unit]]:
        """Where this invocation writes a source, what identifies it, and which units it reads."""
        if self.step == "shard":
            units = shard_units(self.resolved[name].units, self.shard_id, self.num_shards)
            return self.part_prefix(name, self.shard_id), self._part_identity(name), units
        return self.final_prefix(name), self.identity(name), self.resolved[name].units

    def _reusable(self, name: str, target: Path, identity: dict[str, Any]) -> dict | None:
        """A finished dataset for this work: the merged source, or this shard's part."""
        if self.cfg.force:
            return None
        final = read_dataset_done(self.final_prefix(name), self.identity(name))
        return final if final is not None else read_dataset_done(target, identity)

    def _in_flight(self) -> int:
        """Tasks queued at once: two per worker, and at least 64 MiB of text, so the workers
        never wait while this process is busy (importing megatron-core, writing)."""
        if self.cfg.max_in_flight:
            return self.cfg.max_in_flight
        return max(2 * max(self.workers, 1), (64 << 20) // self.cfg.batch_bytes)

    def _part_identity(self, name: str) -> dict[str, Any]:
        return {**self.identity(name), "shard": [self.shard_id, self.num_shards]}

    def _tokenize(
        self,
        name: str,
        units: list[Unit],
        target: Path,
        identity: dict[str, Any],
        pool: TokenizerPool,
    ) -> dict[str, Any]:
        src = self.resolved[name]
        writer = DatasetWriter(target, self.tokenizer.dtype)
        try:
            stats = tokenize_units(
                units, src.cfg, pool, writer, self.cfg.batch_bytes, name, self.cfg.progress
            )
            if stats.documents == 0 and self.step == "all":
                raise UserError(empty_message(src, stats.to_dict()))
            info = writer.commit()
        except BaseException:
            writer.abort()
            raise
        record = {"source": name, "identity": identity, **stats.to_dict(), **info}
        write_dataset_marker(target, record)
        log.info(
            "%s: %d documents, %d tokens in %.1fs",
            name,
            stats.documents,
            stats.tokens,
            stats.seconds,
        )
        return record

    # ----------------------------------------------------------------------- merging

    def _finalize_source(self, name: str) -> dict[str, Any]:
        identity = self.identity(name)
        parts = [self.part_prefix(name, i) for i in range(self.num_shards)]
        part_records = []
        for i, part in enumerate(parts):
            identity_i = {**identity, "shard": [i, self.num_shards]}
            part_records.append(read_dataset_done(part, identity_i))
        if all(r is not None for r in part_records):
            records = [r for r in part_records if r is not None]
            totals = sum_records(records)
            if sum(int(r["documents"]) for r in records) == 0:
                raise UserError(empty_message(self.resolved[name], totals))
            info = merge_datasets(parts, self.final_prefix(name), self.tokenizer.dtype)
            record = {"source": name, "identity": identity, **totals, **info}
            write_dataset_marker(self.final_prefix(name), record)
            remove_parts(parts)
            self.session[name] = "merged"
            return record
        final = read_dataset_done(self.final_prefix(name), identity)
        if final is not None:
            self.session[name] = "reused"
            return final
        missing = [shard_name(i, self.num_shards) for i, r in enumerate(part_records) if r is None]
        raise UserError(
            f"cannot finalize source {name!r}: {len(missing)} of {self.num_shards} shards are not "
            f"done ({', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}); run step=shard "
            "for them with the same config"
        )
