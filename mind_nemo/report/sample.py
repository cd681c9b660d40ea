"""A fixed, bounded sample of contexts with every conversation made from them, for the scorecard
and the viewer.

Quality measures that compare a conversation with its context (number recall, overlap) or with
its sibling styles (near duplicates) need the context's text and all of its conversations
together, and a run can hold millions of both. So we pick at most ``size`` contexts: those whose
key hashes lowest (a bottom-k sample). The choice depends only on the keys, not on shard order or
run size, so two reports of one run, or of a run and its filtered run, look at the same
contexts; memory holds ``size`` contexts and their conversations, nothing more. Counts in the
report (kept, rejected, reasons) stay exact: they come from :mod:`.data`, not from here.
"""

from __future__ import annotations

import hashlib
import heapq
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mind_nemo.core.jsonl import iter_jsonl
from mind_nemo.core.run_folder import CONTEXTS, CONVERSATIONS, REJECTS, RunFolder
from mind_nemo.report.data import ReportData, as_int

Key = tuple[str, int]
KEPT, REJECTED, UNFILTERED = "kept", "rejected", "unfiltered"


@dataclass
class SampledConversation:
    style: str
    text: str
    #: ``kept`` / ``rejected`` in a filtered run, ``unfiltered`` in a synthesize run.
    verdict: str
    reason: str | None
    #: Generator tokens: the filter's count when it has one, else the server's.
    tokens: int
    sample: int = 0


@dataclass
class SampledContext:
    key: Key
    text: str
    conversations: list[SampledConversation] = field(default_factory=list)


def _rank(key: Key) -> int:
    digest = hashlib.blake2b(f"{key[0]}\x00{key[1]}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _key(row: dict[str, Any], index_field: str) -> Key | None:
    doc, index = row.get("document_id"), row.get(index_field)
    if isinstance(doc, bool) or not isinstance(doc, (str, int)):
        return None
    if isinstance(index, bool) or not isinstance(index, int):
        return None
    return str(doc), index


def sample_contexts(source_dir: Path, size: int) -> dict[Key, SampledContext]:
    """The ``size`` contexts of a synthesize run whose keys hash lowest."""
    heap: list[tuple[int, Key, str]] = []  # max-heap on rank via negation
    seen: set[Key] = set()
    for path in RunFolder(source_dir).shard_files(CONTEXTS):
        for row in iter_jsonl(path):
            key, text = _key(row, "index"), row.get("text")
            if key is None or not isinstance(text, str) or key in seen:
                continue
            entry = (-_rank(key), key, text)
            if len(heap) < size:
                heapq.heappush(heap, entry)
                seen.add(key)
            elif entry[0] > heap[0][0]:
                seen.discard(heapq.heappushpop(heap, entry)[1])
                seen.add(key)
    ordered = sorted(heap, key=lambda e: (e[1][0], e[1][1]))
    return {key: SampledContext(key, text) for _, key, text in ordered}


def _conversation(row: dict[str, Any], verdict: str) -> SampledConversation | None:
    style, text = row.get("conversational_style"), row.get("text")
    if not isinstance(style, str) or not style or not isinstance(text, str):
        return None
    tokens = as_int(row.get("tokens")) or as_int(row.get("completion_tokens"))
    reason = row.get("reject_reason") if verdict == REJECTED else None
    return SampledConversation(
        style, text, verdict, str(reason) if reason else None, tokens, as_int(row.get("sample"))
    )


def collect_sample(data: ReportData, size: int) -> list[SampledContext]:
    """Sampled contexts (sorted by key) with their conversations (sorted by style, sample)."""
    if data.source_dir is None:
        return []
    contexts = sample_contexts(data.source_dir, size)
    folder = RunFolder(data.run_dir)
    sources = (
        [(CONVERSATIONS, KEPT), (REJECTS, REJECTED)]
        if data.kind == "filtered"
        else [(CONVERSATIONS, UNFILTERED)]
    )
    for subfolder, verdict in sources:
        for path in folder.shard_files(subfolder):
            for row in iter_jsonl(path):
                key = _key(row, "context_index")
                if key is None or key not in contexts:
                    continue
                found = _conversation(row, verdict)
                if found is not None:
                    contexts[key].conversations.append(found)
    for context in contexts.values():
        context.conversations.sort(key=lambda c: (c.style, c.sample))
    return list(contexts.values())
