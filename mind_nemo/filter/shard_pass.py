"""Pass 1 of the filter stage: one source shard in, staged kept rows, rejects and signatures out.

Rows stream through :func:`~mind_nemo.filter.chain.run_chain`; survivors are batched for the
optional LLM judge, then written to the staging files with their dedup fingerprint and MinHash
signature. Everything is written under temporary names and renamed when the shard is done;
the shard's done marker (``manifests/<shard>.json``: input checksum, settings hash and the
checksums of the staged files) is written last, so a killed task leaves nothing that looks
finished and a rerun redoes exactly the shards without a valid marker.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from mind_nemo.core.jsonl import JsonlAppender
from mind_nemo.core.run_folder import file_sha256, publish, temp_path
from mind_nemo.filter.chain import run_chain
from mind_nemo.filter.config import FilterSettings
from mind_nemo.filter.contexts import ContextIndex
from mind_nemo.filter.layout import OutputLayout
from mind_nemo.filter.rows import (
    UNKNOWN_STYLE,
    MalformedLog,
    kept_row,
    read_rows,
    rejected_row,
    row_problem,
)
from mind_nemo.filter.rules.base import Filter, Item
from mind_nemo.filter.rules.dedup import SignatureWriter, Signer, fingerprint
from mind_nemo.filter.rules.judge import Judge, JudgeStats
from mind_nemo.filter.tally import Tally

log = logging.getLogger(__name__)


@dataclass
class ShardTools:
    """What pass 1 needs besides the files: built once per task, shared by its shards."""

    settings: FilterSettings
    chain: list[Filter]
    count_tokens: Callable[[str], int]
    settings_hash: str
    signer: Signer | None = None
    judge: Judge | None = None
    loop: asyncio.AbstractEventLoop | None = None
    batch_size: int = 256
    progress: bool = True


class ShardPass:
    def __init__(
        self, layout: OutputLayout, shard: str, source: Path, contexts: Path, tools: ShardTools
    ) -> None:
        self.layout, self.shard, self.source, self.tools = layout, shard, source, tools
        self.contexts_path = contexts
        self.tally = Tally()
        self.malformed = MalformedLog(source)
        self.missing_context = 0

    def run(self, input_sha: str) -> dict[str, Any]:
        started = time.monotonic()
        layout, shard = self.layout, self.shard
        if self.tools.judge is not None:
            self.tools.judge.stats = JudgeStats()  # per shard: markers are summed later
        targets = layout.staged(shard)
        for path in targets:
            path.parent.mkdir(parents=True, exist_ok=True)
            temp_path(path).unlink(missing_ok=True)
        kept_tmp, rejects_tmp, fp_tmp, sig_tmp = (temp_path(p) for p in targets)
        contexts = ContextIndex(self.contexts_path, layout.context_index(shard))
        self.kept = JsonlAppender(kept_tmp)
        self.rejects = JsonlAppender(rejects_tmp)
        self.signatures = SignatureWriter(fp_tmp, sig_tmp)
        bar = tqdm(
            desc=f"filter {shard}",
            unit="conv",
            disable=not self.tools.progress,
            file=sys.stderr,
            mininterval=0.5,
        )
        try:
            batch: list[Item] = []
            for number, row, raw in read_rows(self.source):
                bar.update(1)
                item = self._check(number, row, raw, contexts)
                if item is not None:
                    batch.append(item)
                if len(batch) >= self.tools.batch_size:
                    self._flush(batch)
                    batch = []
            self._flush(batch)
        finally:
            bar.close()
            contexts.close()
            self.malformed.close()
            for appender in (self.kept, self.rejects):
                appender.sync()
                appender.close()
            self.signatures.close()
        for path in targets:
            publish(temp_path(path), path)
        marker = {
            "shard": shard,
            "status": "complete",
            "input": str(self.source),
            "input_sha256": input_sha,
            "settings_hash": self.tools.settings_hash,
            "staged_rows": self.signatures.rows,
            "malformed_rows": self.malformed.count,
            "contexts_indexed": contexts.rows,
            "contexts_malformed": contexts.malformed,
            "missing_context": self.missing_context,
            "by_style": self.tally.to_dict(),
            "judge": self.tools.judge.stats.to_dict() if self.tools.judge else None,
            "seconds": round(time.monotonic() - started, 3),
            "written": time.time(),
        }
        return layout.write_shard_marker(shard, marker)

    def _reject(self, style: str, row: dict[str, Any], reason: str) -> None:
        self.tally.seen(style)
        self.tally.reject(style, reason)
        self.rejects.append(json.dumps(rejected_row(row, reason), ensure_ascii=False))

    def _check(
        self, number: int, row: dict[str, Any] | None, raw: str, contexts: ContextIndex
    ) -> Item | None:
        """Run the chain on one line; the item if it survives, else None (rejected)."""
        if row is None:
            self.malformed.add(number, "not a JSON object")
            self._reject(UNKNOWN_STYLE, {"raw": raw[:2000], "line": number}, "malformed_json")
            return None
        problem = row_problem(row)
        if problem:
            self.malformed.add(number, problem)
            style = row.get("conversational_style")
            style = style if isinstance(style, str) and style else UNKNOWN_STYLE
            self._reject(style, {**row, "problem": problem, "line": number}, "malformed_row")
            return None
        found = contexts.get(str(row["document_id"]), row["context_index"])
        if found is None:
            self.missing_context += 1
        item = Item(
            text=row["text"],
            style=row["conversational_style"],
            row=row,
            context=found[0] if found else None,
            context_tokens=found[1] if found else None,
            count_tokens=self.tools.count_tokens,
        )
        reason = run_chain(self.tools.chain, item)
        if reason is not None:
            self._reject(item.style, row, reason)
            return None
        return item

    def _flush(self, batch: list[Item]) -> None:
        tools = self.tools
        if not batch:
            return
        if tools.judge is not None and tools.loop is not None:
            tools.loop.run_until_complete(tools.judge.score_all(batch))
        for item in batch:
            if tools.judge is not None:
                verdict = tools.judge.verdict(item)
                if not verdict.keep:
                    self._reject(item.style, {**item.row, **item.fields}, str(verdict.reason))
                    continue
            row = kept_row(item)
            self.tally.seen(item.style)
            self.tally.keep(item.style, row, item.notes)
            self.kept.append(json.dumps(row, ensure_ascii=False))
            signature = tools.signer.signature(item.text) if tools.signer else None
            self.signatures.add(fingerprint(item.text), signature)


def input_checksum(path: Path) -> str:
    return file_sha256(path)
