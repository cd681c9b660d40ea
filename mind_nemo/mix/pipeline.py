"""Stream a source's units through tokenizer worker processes into one dataset writer.

The main process only reads raw blocks and writes bytes; JSON parsing and tokenization happen in
``workers`` processes (spawned, each with a single-threaded tokenizer, each killed by the kernel
when this process dies, even by SIGKILL). At most ``max_in_flight`` tasks are queued or running,
and results are written in submission order, so memory stays at about ``max_in_flight x
batch_bytes`` whatever the corpus size, and the output order is the input order (which is what
makes sharded and single runs byte-identical).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from mind_nemo.mix.config import SourceConfig
from mind_nemo.mix.readers import Chunk, Unit, read_unit
from mind_nemo.mix.tokenizer import TokenizerInfo, build_encoder
from mind_nemo.mix.worker import Encoded, encode_task, init_worker, run_task
from mind_nemo.mix.writer import DatasetWriter


@dataclass
class TokenizeStats:
    """What one pass over some units produced."""

    documents: int = 0
    tokens: int = 0
    input_bytes: int = 0
    filtered: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "documents": self.documents,
            "tokens": self.tokens,
            "input_bytes": self.input_bytes,
            "filtered": self.filtered,
            "skipped": dict(sorted(self.skipped.items())),
            "seconds": round(self.seconds, 3),
            "tokens_per_s": round(self.tokens / self.seconds, 1) if self.seconds else None,
        }


class TokenizerPool:
    """Worker processes holding the tokenizer; ``workers=0`` tokenizes in this process."""

    def __init__(self, info: TokenizerInfo, workers: int, max_in_flight: int) -> None:
        self.max_in_flight = max(1, max_in_flight)
        self.pool: Any = None
        self.local = None
        if workers == 0:
            self.local = (build_encoder(info.spec), info.eod, info.dtype)
        else:
            context = multiprocessing.get_context("spawn")
            initargs = (info.spec, info.eod, info.dtype.name, os.getpid())
            self.pool = context.Pool(workers, initializer=init_worker, initargs=initargs)

    def map_ordered(self, chunks: Iterable[Chunk]) -> Iterator[tuple[Chunk, Encoded]]:
        """Encode chunks in parallel; yield them in input order with a bounded queue."""
        if self.local is not None:
            for chunk in chunks:
                yield chunk, run_task(chunk.task, *self.local)
            return
        pending: deque[tuple[Chunk, Any]] = deque()
        for chunk in chunks:
            result = self.pool.apply_async(encode_task, (chunk.task,))
            chunk.task = ()  # the worker has its copy; do not hold the text twice
            pending.append((chunk, result))
            if len(pending) >= self.max_in_flight:
                done, result = pending.popleft()
                yield done, result.get()
        while pending:
            done, result = pending.popleft()
            yield done, result.get()

    def close(self, abort: bool = False) -> None:
        if self.pool is not None:
            if abort:
                self.pool.terminate()
            else:
                self.pool.close()
            self.pool.join()
            self.pool = None


def tokenize_units(
    units: list[Unit],
    cfg: SourceConfig,
    pool: TokenizerPool,
    writer: DatasetWriter,
    batch_bytes: int,
    label: str,
    progress: bool,
) -> TokenizeStats:
    """Read, tokenize and append every document of ``units`` (up to ``limit_documents``)."""
    stats = TokenizeStats()
    limit = cfg.limit_documents
    total = _span(units)
    bar = tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        desc=label,
        disable=not progress,
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=0.5,
    )
    start = time.perf_counter()
    chunks = (chunk for unit in units for chunk in read_unit(unit, cfg, batch_bytes))
    try:
        for chunk, encoded in pool.map_ordered(chunks):
            if limit is not None and stats.documents + encoded.documents >= limit:
                encoded = encoded.head(limit - stats.documents)
            if encoded.documents:  # (an empty source never loads megatron-core)
                writer.add_batch(encoded.tokens, encoded.lengths)
            stats.documents += encoded.documents
            stats.tokens += int(encoded.tokens.size)
            stats.input_bytes += chunk.size
            stats.filtered += chunk.filtered + encoded.filtered
            stats.skipped.update(chunk.skipped)
            stats.skipped.update(encoded.skipped)
            elapsed = max(time.perf_counter() - start, 1e-9)
            bar.update(chunk.size)
            bar.set_postfix(
                docs=stats.documents, tok_s=f"{stats.tokens / elapsed:,.0f}", refresh=False
            )
            if limit is not None and stats.documents >= limit:
                break
    finally:
        bar.close()
    stats.seconds = time.perf_counter() - start
    return stats


def _span(units: list[Unit]) -> int | None:
    """Bytes the units cover when all are byte ranges of plain files (for the progress ETA)."""
    if all(u.end is not None and u.source.kind == "jsonl" for u in units):
        return sum(int(u.end or 0) - u.start for u in units)
    return None
