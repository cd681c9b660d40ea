"""What each tokenizer worker process runs: a batch of raw text in, one flat token array out.

Workers receive either a block of raw JSONL bytes (parsing JSON is done here, in parallel, not in
the main process) or a list of texts already taken from Parquet/Arrow. They answer with the
concatenated ids of the batch (end-of-document token after each document), the per-document
lengths, and counters for rows they skipped, so the main process only writes bytes. This module
imports no Megatron and no transformers: a worker starts in well under a second.
"""

from __future__ import annotations

import itertools
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mind_nemo.core.children import die_with_parent
from mind_nemo.core.records import text_problem
from mind_nemo.mix.tokenizer import Encoder, build_encoder

#: Row field holding a conversation's style (synthesize and filter runs).
STYLE_FIELD = "conversational_style"

#: A unit of work: ``("jsonl", block, text_field, styles)`` or ``("texts", texts)``.
Task = tuple[Any, ...]


@dataclass
class Encoded:
    """The tokens of one batch, ready to append to an indexed dataset."""

    tokens: np.ndarray
    #: Tokens per document (end-of-document token included), int64.
    lengths: np.ndarray
    skipped: Counter[str] = field(default_factory=Counter)
    #: Rows read but not selected (another conversational style).
    filtered: int = 0

    @property
    def documents(self) -> int:
        return len(self.lengths)

    def head(self, documents: int) -> Encoded:
        """The first ``documents`` documents of this batch (for ``limit_documents``)."""
        end = int(self.lengths[:documents].sum())
        return Encoded(self.tokens[:end], self.lengths[:documents], self.skipped, self.filtered)


class _State:
    encoder: Encoder
    eod: int | None
    dtype: np.dtype


_STATE: _State | None = None


def init_worker(
    spec: dict[str, Any], eod: int | None, dtype: str, parent_pid: int | None = None
) -> None:
    """Pool initializer: one single-threaded tokenizer per process (processes are the threads).

    Hugging Face tokenizers get a one-thread rayon pool rather than ``TOKENIZERS_PARALLELISM=
    false``: its serial code path encodes about a third slower per CPU-second (bench/). With
    ``parent_pid`` the worker dies with the mix process: a pool worker outliving a SIGKILLed
    parent would otherwise wait on its task pipe forever.
    """
    if parent_pid is not None:
        die_with_parent(parent_pid)
    os.environ["RAYON_NUM_THREADS"] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "true"
    global _STATE
    state = _State()
    state.encoder, state.eod, state.dtype = build_encoder(spec, threads=1), eod, np.dtype(dtype)
    _STATE = state


def encode_task(task: Task) -> Encoded:
    """Pool function: parse (if needed) and tokenize one task."""
    assert _STATE is not None, "init_worker was not called"
    return run_task(task, _STATE.encoder, _STATE.eod, _STATE.dtype)


def run_task(task: Task, encoder: Encoder, eod: int | None, dtype: np.dtype) -> Encoded:
    """Tokenize one task with the given encoder (also used in-process by tests and benchmarks)."""
    if task[0] == "jsonl":
        texts, skipped, filtered = parse_jsonl_block(task[1], task[2], task[3])
    else:
        texts, skipped, filtered = task[1], Counter(), 0
    ids = encoder.encode_batch(texts) if texts else []
    empty = sum(1 for x in ids if not x)
    if empty:
        skipped["no_tokens"] += empty
        ids = [x for x in ids if x]
    return Encoded(*flatten(ids, eod, dtype), skipped, filtered)


def flatten(
    ids: list[list[int]], eod: int | None, dtype: np.dtype
) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate documents (each followed by ``eod``) into one array; return it and lengths."""
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    total = int(lengths.sum())
    flat = np.fromiter(itertools.chain.from_iterable(ids), dtype=dtype, count=total)
    if eod is not None and len(ids):
        flat = np.insert(flat, np.cumsum(lengths), eod).astype(dtype, copy=False)
        lengths += 1
    return flat, lengths


def parse_jsonl_block(
    block: bytes, text_field: str, styles: tuple[str, ...]
) -> tuple[list[str], Counter[str], int]:
    """Texts of the JSON lines in ``block``; bad rows are counted by reason, never fatal."""
    texts: list[str] = []
    skipped: Counter[str] = Counter()
    filtered = 0
    for line in block.split(b"\n"):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except UnicodeDecodeError:
            skipped["invalid_utf8"] += 1
            continue
        except ValueError:
            skipped["invalid_json"] += 1
            continue
        if not isinstance(row, dict):
            skipped["not_an_object"] += 1
            continue
        if styles and row.get(STYLE_FIELD) not in styles:
            filtered += 1
            continue
        text: Any = row.get(text_field)  # any JSON value until text_problem has checked it
        reason = text_problem(text)
        if reason:
            skipped[reason] += 1
        else:
            texts.append(text)
    return texts, skipped, filtered
