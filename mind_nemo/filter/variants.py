"""The paper's training sets, built from a filtered run: LONGEST, ALL, CONCAT and RAW.

- ``longest``: per context, its longest kept conversation by generator tokens (ties go to the
  earlier style in the paper's order, then the lower sample);
- ``all``: every kept conversation;
- ``concat``: each raw context followed by all its kept conversations (paper order), joined by
  ``separator``; contexts with no kept conversation are left out;
- ``raw``: every context of the source run, as is.

Each is a named output ``variants/<name>/part-NNNNN.jsonl`` whose rows have ``text``,
``variant``, ``tokens`` and the ids to trace them (``document_id``, ``context_index``, and the
conversation keys); the mix stage reads these folders. Conversations and contexts are grouped by
context with an external sort (:mod:`mind_nemo.core.external_sort`), so memory is bounded by
``sort_buffer_rows`` records plus one context's group, whatever the run size. CONCAT's token
count is the sum of its parts (the separators are not counted).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mind_nemo.core.external_sort import Record, external_sort
from mind_nemo.core.records import key_string
from mind_nemo.core.run_folder import (
    RunFolder,
    file_sha256,
    publish,
    publish_folder,
    staging_folder,
    temp_path,
)
from mind_nemo.core.styles import CONVERSATION_STYLES
from mind_nemo.filter.config import VariantsConfig

_RANK = {style: rank for rank, style in enumerate(CONVERSATION_STYLES)}
CONTEXT, CONVERSATION = 0, 1


def style_rank(style: str) -> int:
    return _RANK.get(style, len(_RANK))


def conversation_record(row: dict[str, Any]) -> Record:
    doc, index = str(row["document_id"]), int(row["context_index"])
    style, sample = str(row["conversational_style"]), int(row.get("sample", 0))
    payload = {
        "text": row["text"],
        "conversational_style": style,
        "sample": sample,
        "tokens": int(row["tokens"]),
        "key": key_string((doc, index, style, sample)),
    }
    return (doc, index, CONVERSATION, style_rank(style), style, sample), payload


def context_record(row: dict[str, Any], count_tokens: Callable[[str], int]) -> Record:
    doc, index = str(row["document_id"]), int(row["index"])
    start, end = row.get("token_start"), row.get("token_end")
    tokens = end - start if isinstance(start, int) and isinstance(end, int) else None
    payload = {
        "text": row["text"],
        "tokens": tokens if tokens is not None else count_tokens(row["text"]),
    }
    return (doc, index, CONTEXT, 0, "", 0), payload


class PartWriter:
    """JSONL parts of ``rows_per_file`` rows; a part gets its final name only when full/closed."""

    def __init__(self, folder: Path, rows_per_file: int) -> None:
        self.folder, self.rows_per_file = folder, rows_per_file
        folder.mkdir(parents=True, exist_ok=True)
        self.files: list[Path] = []
        self._f: Any = None
        self._rows = 0

    def write(self, row: dict[str, Any]) -> None:
        if self._f is None:
            self._f = open(self._tmp(), "w", encoding="utf-8")  # noqa: SIM115 - closed in _seal
        self._f.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._rows += 1
        if self._rows >= self.rows_per_file:
            self._seal()

    def _target(self) -> Path:
        return self.folder / f"part-{len(self.files):05d}.jsonl"

    def _tmp(self) -> Path:
        return temp_path(self._target())

    def _seal(self) -> None:
        if self._f is None:
            return
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        target = self._target()
        publish(self._tmp(), target)
        self.files.append(target)
        self._f, self._rows = None, 0

    def close(self) -> None:
        self._seal()


@dataclass
class VariantStats:
    rows: int = 0
    tokens: int = 0
    by_style: Counter = field(default_factory=Counter)

    def add(self, row: dict[str, Any]) -> None:
        self.rows += 1
        self.tokens += int(row["tokens"])
        for style in row.get("styles") or [row.get("conversational_style")]:
            if style:
                self.by_style[style] += 1


def _groups(records: Iterator[Record]) -> Iterator[tuple[tuple[str, int], dict | None, list]]:
    """``((doc, index), context payload or None, [conversation payloads])`` per context."""
    for (doc, index), members in itertools.groupby(records, key=lambda r: (r[0][0], r[0][1])):
        context, conversations = None, []
        for key, payload in members:
            if key[2] == CONTEXT:
                context = context or payload
            else:
                conversations.append(payload)
        yield (doc, index), context, conversations


def build_rows(
    names: list[str], groups: Iterable[tuple[tuple[str, int], dict | None, list]], separator: str
) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(variant, row)`` for every row of the requested variants, context by context."""
    for (doc, index), context, conversations in groups:
        ids = {"document_id": doc, "context_index": index}
        if "raw" in names and context is not None:
            yield (
                "raw",
                {"text": context["text"], "variant": "raw", **ids, "tokens": context["tokens"]},
            )
        if not conversations:
            continue
        if "longest" in names:
            best = max(
                conversations,
                key=lambda c: (c["tokens"], -style_rank(c["conversational_style"]), -c["sample"]),
            )
            yield "longest", {**best, "variant": "longest", **ids}
        if "all" in names:
            for conversation in conversations:
                yield "all", {**conversation, "variant": "all", **ids}
        if "concat" in names and context is not None:
            yield (
                "concat",
                {
                    "text": separator.join([context["text"], *(c["text"] for c in conversations)]),
                    "variant": "concat",
                    **ids,
                    "styles": [c["conversational_style"] for c in conversations],
                    "keys": [c["key"] for c in conversations],
                    "tokens": context["tokens"] + sum(c["tokens"] for c in conversations),
                },
            )


def build_variants(
    conversations: Iterable[dict[str, Any]],
    contexts: Iterable[dict[str, Any]],
    cfg: VariantsConfig,
    out_dir: Path,
    count_tokens: Callable[[str], int],
) -> dict[str, Any]:
    """Write ``out_dir/variants/<name>/`` (swapped in whole at the end); return their stats."""
    final = RunFolder(out_dir).variants
    partial = staging_folder(final)
    shutil.rmtree(partial, ignore_errors=True)
    excluded = set(cfg.exclude_styles)
    names = list(dict.fromkeys(cfg.names))
    records = itertools.chain(
        (context_record(c, count_tokens) for c in contexts),
        (
            conversation_record(r)
            for r in conversations
            if r["conversational_style"] not in excluded
        ),
    )
    sorted_records = external_sort(records, partial / ".sort", cfg.sort_buffer_rows)
    writers = {name: PartWriter(partial / name, cfg.rows_per_file) for name in names}
    stats = {name: VariantStats() for name in names}
    for name, row in build_rows(names, _groups(sorted_records), cfg.separator):
        writers[name].write(row)
        stats[name].add(row)
    for writer in writers.values():
        writer.close()
    shutil.rmtree(partial / ".sort", ignore_errors=True)
    publish_folder(partial, final)
    return {
        name: {
            "rows": s.rows,
            "tokens": s.tokens,
            "by_style": dict(sorted(s.by_style.items())),
            "files": {
                (final / rel).relative_to(out_dir).as_posix(): file_sha256(final / rel)
                for rel in (p.relative_to(partial) for p in writers[name].files)
            },
        }
        for name, s in stats.items()
    }
