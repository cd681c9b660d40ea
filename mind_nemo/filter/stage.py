"""The filter stage's control flow: which shards this process filters, then (maybe) finalize.

``step=shard`` runs pass 1 on this task's share of the source shards (source shard *j* goes to
task ``j % num_shards``, the same job-array variables as synthesis); ``step=finalize`` runs
pass 2 once every shard is staged; ``step=all`` does both in one process. With
``dedup.mode=scalable`` (:mod:`mind_nemo.filter.dedup`) dedup has steps of its own between
them: ``step=shard`` also writes the shard's band buckets, then ``step=bucket`` (array),
``step=cluster`` (one task) and ``step=apply`` (array) run before ``step=finalize``.
Finished work is never redone: a shard whose marker matches its input checksum and settings
is skipped, and a run whose manifest already covers the current inputs is reported as complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mind_nemo.core.errors import UserError
from mind_nemo.core.jsonl import write_atomic
from mind_nemo.core.records import text_hash
from mind_nemo.core.run_folder import (
    file_sha256,
    make_folder,
    resolve_shard,
    step_locks,
)
from mind_nemo.filter.chain import build_chain
from mind_nemo.filter.config import FilterStageConfig
from mind_nemo.filter.dedup.steps import ScalableDedup
from mind_nemo.filter.finalize import finalize
from mind_nemo.filter.layout import OutputLayout
from mind_nemo.filter.rules.dedup import Signer
from mind_nemo.filter.rules.judge import Judge, load_judge_prompt
from mind_nemo.filter.shard_pass import ShardPass, ShardTools
from mind_nemo.filter.source import SourceRun, open_source_run
from mind_nemo.filter.tokens import TokenCounter
from mind_nemo.servers.client import OpenAICompatibleClient
from mind_nemo.servers.launch import open_server

log = logging.getLogger("mind_nemo.filter")
#: Above this many staged rows an in-memory dedup (~4 GB per million) gets a warning.
MEMORY_WARN_ROWS = 1_000_000


def settings_hash(cfg: FilterStageConfig, tokenizer: str | None) -> str:
    """What pass 1's output depends on (not where a judge server runs, not the variants)."""
    judge = dataclasses.asdict(cfg.judge)
    judge["server"] = judge["server"]["model"] if cfg.judge.enabled else None
    payload = {
        "filter": dataclasses.asdict(cfg.filter),
        "judge": judge if cfg.judge.enabled else None,
        "tokenizer": tokenizer,
    }
    return text_hash(json.dumps(payload, sort_keys=True, default=str))


class FilterStage:
    def __init__(self, cfg: FilterStageConfig, raw: DictConfig) -> None:
        self.cfg, self.raw = cfg, raw
        self.source: SourceRun = open_source_run(Path(cfg.run_dir), cfg.allow_incomplete)
        self.layout = OutputLayout(Path(cfg.output_dir))
        self.shard_id, self.num_shards = resolve_shard(cfg.shard_id, cfg.num_shards)
        self.step = cfg.step if cfg.step != "auto" else "shard" if self.num_shards > 1 else "all"
        if self.step == "all" and self.num_shards > 1:
            raise UserError(
                "step=all filters every shard in one process; in a job array use "
                "step=shard in each task, then one step=finalize"
            )
        if cfg.overwrite and self.step != "all":
            raise UserError("overwrite=true is only safe with step=all (one process)")
        out, src = self.layout.root.resolve(), self.source.run_dir.resolve()
        if out == src or src in out.parents:
            raise UserError(f"output_dir {out} must not be inside the source run {src}")
        self.tokenizer = cfg.tokenizer or self.source.tokenizer_name()
        self.count_tokens = TokenCounter(self.tokenizer)
        self.hash = settings_hash(cfg, self.tokenizer)
        self.signer = Signer(cfg.filter.dedup) if cfg.filter.dedup.near else None
        self.dedup = ScalableDedup(
            self.layout,
            self.source.shards,
            cfg.filter.dedup,
            cfg.dedup,
            self.hash,
            str(self.signer.dtype) if self.signer else "uint32",
        )

    def run(self) -> dict[str, Any] | None:
        """Run this invocation's step; the run manifest once finalized, else None."""
        make_folder(self.layout.root, "output_dir")
        # One writer per task: pass 1 locks its task's share, finalize the whole pass 2.
        with step_locks(
            self.layout.root, self.step, self.shard_id, self.num_shards, stage="filter"
        ):
            return self._run()

    def _run(self) -> dict[str, Any] | None:
        identity = {"source_run": str(self.source.run_dir.resolve()), "settings_hash": self.hash}
        self.layout.claim(identity, self.cfg.overwrite)
        write_atomic(self.layout.config, OmegaConf.to_yaml(self.raw, resolve=True))
        if self.step == "shard":
            self._shard_step()
            return None
        if self.step in ("bucket", "cluster", "apply"):
            self._dedup_step()
            return None
        shas = {s: file_sha256(self.source.conversations(s)) for s in self.source.shards}
        self.source.check_inputs(shas)
        if self._finalized(shas):
            log.info("%s is already filtered for these inputs and settings", self.layout.root)
            return self.layout.read_manifest()
        if self.step == "all":
            todo = [s for s in shas if not self.layout.shard_marker(s, shas[s], self.hash)]
            self._pass1(todo, shas)
        markers = {}
        missing = []
        for shard in self.source.shards:
            marker = self.layout.shard_marker(shard, shas[shard], self.hash)
            if marker is not None:
                markers[shard] = marker
            else:
                missing.append(self.source.shards.index(shard))
        if missing:
            raise UserError(
                f"pass 1 is not done for source shards {missing[:10]} "
                "(run step=shard for them first)"
            )
        applied = None
        if self._scalable(markers):
            if self.step == "all":
                applied = self.dedup.run_all(shas)
            else:
                applied = self.dedup.applied_all(shas)
        return finalize(
            self.layout,
            self.source,
            self.cfg,
            markers,
            self.signer,
            self.count_tokens,
            self.hash,
            applied,
        )

    def _scalable(self, markers: dict[str, dict[str, Any]]) -> bool:
        """Which dedup path finalize takes (``dedup.mode``; ``auto`` by staged rows, and in a
        job array by whether the scalable steps ran)."""
        mode = self.cfg.dedup.mode
        if mode != "auto":
            return mode == "scalable"
        rows = sum(int(m.get("staged_rows", 0)) for m in markers.values())
        if self.step == "all":
            return rows > self.cfg.dedup.auto_max_rows
        shas = {s: m["input_sha256"] for s, m in markers.items()}
        if all(self.dedup.applied(s, shas[s]) for s in self.source.shards):
            return True
        if rows > MEMORY_WARN_ROWS:
            log.warning(
                "deduplicating %d rows in memory (~4 GB per million); for bounded memory run "
                "the dedup steps with dedup.mode=scalable",
                rows,
            )
        return False

    def _dedup_step(self) -> None:
        """``step=bucket`` (this task's hash ranges), ``cluster`` or ``apply`` (its shards)."""
        finalized = self.layout.finalized_inputs(self.hash)
        if finalized and set(finalized) == set(self.source.shards):
            log.info("%s is already filtered: step=%s is a no-op", self.layout.root, self.step)
            return
        if self.step == "cluster":
            self.dedup.cluster()
            return
        if self.step == "bucket":
            inputs, _ = self.dedup.inputs()
            for r in range(self.dedup.ranges):
                if r % self.num_shards == self.shard_id:
                    self.dedup.bucket(r, inputs)
            return
        inputs = self.dedup.check_cluster()
        for j, shard in enumerate(self.source.shards):
            if j % self.num_shards == self.shard_id:
                self.dedup.apply(shard, inputs)

    def _shard_step(self) -> None:
        """Pass 1 on this task's shards only (checksums of ours only: tasks share no reads)."""
        shards = self.source.shards
        mine = [s for j, s in enumerate(shards) if j % self.num_shards == self.shard_id]
        shas = {s: file_sha256(self.source.conversations(s)) for s in mine}
        self.source.check_inputs(shas)
        finalized = self.layout.finalized_inputs(self.hash)
        open_shards = [s for s in mine if finalized.get(s) != shas[s]]
        self._pass1(
            [s for s in open_shards if not self.layout.shard_marker(s, shas[s], self.hash)], shas
        )
        if self.cfg.dedup.mode == "scalable":
            for shard in open_shards:
                self.dedup.split(shard, shas[shard])

    def _finalized(self, shas: dict[str, str]) -> bool:
        return self.layout.finished(self.hash, shas, self.cfg.variants) is not None

    def _pass1(self, shards: list[str], shas: dict[str, str]) -> None:
        if not shards:
            return
        cfg = self.cfg
        tools = ShardTools(
            settings=cfg.filter,
            chain=build_chain(cfg.filter, self.source.instructions()),
            count_tokens=self.count_tokens,
            settings_hash=self.hash,
            signer=self.signer,
            batch_size=cfg.judge.batch_size if cfg.judge.enabled else 256,
            progress=cfg.progress,
        )
        with self._judge(tools):
            for shard in shards:
                log.info("filtering %s", shard)
                ShardPass(
                    self.layout,
                    shard,
                    self.source.conversations(shard),
                    self.source.contexts(shard),
                    tools,
                ).run(shas[shard])

    @contextlib.contextmanager
    def _judge(self, tools: ShardTools) -> Iterator[None]:
        """Start (or reach) the judge's server and client around pass 1, when enabled."""
        cfg = self.cfg.judge
        if not cfg.enabled:
            yield
            return
        if cfg.server.api != "chat":
            raise UserError("the judge talks to chat endpoints: set judge.server.api=chat")
        template = load_judge_prompt(cfg.prompt_file)
        with open_server(cfg.server, self.layout.root) as server:
            client = OpenAICompatibleClient(
                server.base_url,
                server.model,
                api=cfg.server.api,
                api_key=server.api_key,
                timeout_s=cfg.request_timeout_s,
                max_retries=cfg.max_retries,
                max_connections=cfg.max_concurrent_requests,
            )
            loop = asyncio.new_event_loop()
            tools.judge, tools.loop = Judge(cfg, client, template), loop
            try:
                yield
            finally:
                loop.run_until_complete(client.aclose())
                loop.close()
