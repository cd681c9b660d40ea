"""The on-disk state of one shard of a synthesize run, and how it resumes.

Its files (paths from :class:`~mind_nemo.core.run_folder.RunFolder`; ``NNNNN`` = shard id,
``MMMMM`` = number of shards)::

    conversations/shard-NNNNN-of-MMMMM.jsonl   one Conversation per line (append-only)
    contexts/shard-NNNNN-of-MMMMM.jsonl        the contexts those conversations came from
    documents/shard-NNNNN-of-MMMMM.jsonl       per document split: its text hash, how it was
                                               split (fingerprint) and its number of contexts
    failures/shard-NNNNN-of-MMMMM.jsonl        requests that failed after retries, with reason
    manifests/shard-NNNNN-of-MMMMM.json        counts, tokens, checksums: a done marker whose
                                               ``status: complete`` marks a shard whose whole
                                               plan is committed

Exactly-once: a conversation is committed by appending its line; on restart the store repairs a
torn tail and loads the keys already present, and the planner skips them. A key is therefore
never requested again once committed, and never written twice (the stage holds the shard's
lock, so no second process appends meanwhile). Failures are kept apart so a normal rerun does
not hammer a request that keeps failing; ``retry_failed=true`` takes them back.

Resume without re-tokenising: once a document is split its context count is noted. A later
session skips a document before tokenising it when the note matches (same text hash, same split
fingerprint: chunk settings and tokenizer) and every key of all its contexts is already done;
anything else (no note, changed text or tokenizer, a key missing) goes the normal way, through
the tokenizer and the per-key skip, so a stale note can cost time but never a conversation.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mind_nemo.core.jsonl import JsonlAppender, iter_jsonl, repair_tail
from mind_nemo.core.records import Context, Conversation, ConversationKey
from mind_nemo.core.run_folder import RunFolder, file_sha256, shard_name, write_atomic, write_marker

log = logging.getLogger(__name__)

#: How :meth:`Context.to_json` starts a row: its key, then the long text. Resume needs only the
#: key, so a row that starts this way (and ends like a JSON object) is not parsed in full; any
#: other row (an older layout, a hand edit) is parsed in full, as before.
_CONTEXT_KEY = re.compile(rb'\{"document_id": ("(?:[^"\\]|\\.)*"), "index": (-?\d+), ')


def context_keys(path: Path) -> set[tuple[str, int]]:
    """The (document id, context index) of every context row of ``path`` (none if absent);
    unparsable rows are logged and skipped, as :func:`iter_jsonl` does."""
    keys: set[tuple[str, int]] = set()
    if not path.exists():
        return keys
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            line = raw.rstrip()
            if not line:
                continue
            match = _CONTEXT_KEY.match(line)
            if match is not None and line.endswith(b"}"):
                document_id = json.loads(match.group(1).decode("utf-8", errors="replace"))
                keys.add((str(document_id), int(match.group(2))))
                continue
            try:
                row = json.loads(raw.decode("utf-8", errors="replace"))
            except ValueError:
                row = None
            if not isinstance(row, dict):
                log.warning("%s:%d: skipping a line that is not a JSON object", path, number)
                continue
            keys.add((str(row["document_id"]), int(row["index"])))
    return keys


def row_key(row: dict[str, Any]) -> ConversationKey:
    return (
        str(row["document_id"]),
        int(row["context_index"]),
        str(row["conversational_style"]),
        int(row.get("sample", 0)),
    )


@dataclass
class ShardTotals:
    """Counts over everything committed in a shard file (all sessions, not just this one)."""

    conversations: int = 0
    contexts: int = 0
    failures: int = 0
    by_style: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, row: dict[str, Any]) -> None:
        style = self.by_style.setdefault(
            row["conversational_style"],
            {"conversations": 0, "prompt_tokens": 0, "completion_tokens": 0, "cached_tokens": 0},
        )
        style["conversations"] += 1
        for name in ("prompt_tokens", "completion_tokens", "cached_tokens"):
            style[name] += int(row.get(name) or 0)
        self.conversations += 1


class ShardStore:
    """Read resume state and append results for one shard of one run folder."""

    def __init__(self, run_dir: Path, shard_id: int, num_shards: int) -> None:
        self.run_dir = run_dir
        self.name = shard_name(shard_id, num_shards)
        self.shard_id, self.num_shards = shard_id, num_shards
        folder = RunFolder(run_dir)
        self.conversations_path = folder.conversations(self.name)
        self.contexts_path = folder.contexts(self.name)
        self.failures_path = folder.failures(self.name)
        self.documents_path = folder.documents(self.name)
        self.manifest_path = folder.shard_manifest(self.name)
        self.done_keys: set[ConversationKey] = set()
        self.failed: dict[ConversationKey, dict[str, Any]] = {}
        self.context_keys: set[tuple[str, int]] = set()
        self.contexts_written = 0
        #: document id -> (text hash, split fingerprint, number of contexts), from the notes.
        self.documents: dict[str, tuple[str, str, int]] = {}
        #: Counts over the conversations file, kept up to date by ``load`` and ``commit`` (so
        #: finishing a session does not read the whole file again).
        self._totals = ShardTotals()
        self._loaded = False
        self._documents: JsonlAppender | None = None
        self._conversations: JsonlAppender | None = None
        self._contexts: JsonlAppender | None = None
        self._failures: JsonlAppender | None = None

    # -- resume -------------------------------------------------------------------------------
    def load(self) -> None:
        """Repair torn tails and load what earlier sessions committed."""
        for path in self._paths():
            repair_tail(path)
        self._loaded = True
        for row in iter_jsonl(self.documents_path):
            self.documents[str(row["document_id"])] = (
                str(row["text_hash"]),
                str(row["split"]),
                int(row["contexts"]),
            )
        for row in iter_jsonl(self.conversations_path):
            self.done_keys.add(row_key(row))
            self._totals.add(row)
        self.context_keys = context_keys(self.contexts_path)
        for row in iter_jsonl(self.failures_path):
            key = row_key(row)
            if key not in self.done_keys:
                self.failed[key] = row
        if self.done_keys or self.failed:
            log.info(
                "%s: resuming with %d conversations committed and %d failures recorded",
                self.name, len(self.done_keys), len(self.failed),
            )  # fmt: skip

    def _paths(self) -> tuple[Path, ...]:
        return (
            self.conversations_path,
            self.contexts_path,
            self.failures_path,
            self.documents_path,
        )

    def open(self) -> None:
        self._conversations = JsonlAppender(self.conversations_path)
        self._contexts = JsonlAppender(self.contexts_path)
        self._failures = JsonlAppender(self.failures_path)
        self._documents = JsonlAppender(self.documents_path)

    def close(self) -> None:
        for appender in (self._conversations, self._contexts, self._failures, self._documents):
            if appender is not None:
                appender.sync()
                appender.close()

    # -- writing ------------------------------------------------------------------------------
    def context_row(self, context: Context) -> str | None:
        """The row recording ``context``, or None if an earlier session wrote it already.

        Only reads what :meth:`load` read (never changed afterwards), so the planner thread may
        call it: the JSON is then made off the event loop, which only appends it."""
        # Only contexts written by an earlier session can come round again (the planner yields
        # each context once per session), so this set never grows: memory stays flat.
        if (context.document_id, context.index) in self.context_keys:
            return None
        return context.to_json()

    def document_row(
        self, document_id: str, text_hash: str, split: str, contexts: int
    ) -> str | None:
        """The row noting how a document was split, or None if the same note is on file
        (like :meth:`context_row`, safe to call from the planner thread)."""
        if self.documents.get(document_id) == (text_hash, split, contexts):
            return None
        row = {"document_id": document_id, "text_hash": text_hash, "split": split,
               "contexts": contexts}  # fmt: skip
        return json.dumps(row, ensure_ascii=False)

    def append_plan_rows(self, documents: list[str], contexts: list[str]) -> None:
        """Append rows made by :meth:`document_row` and :meth:`context_row`, one write per
        file (a chunk of the plan at a time, before any of its requests is sent)."""
        assert self._documents is not None and self._contexts is not None
        self._documents.append_many(documents)
        self._contexts.append_many(contexts)
        self.contexts_written += len(contexts)

    def add_context(self, context: Context) -> None:
        """Record a context once (the first time any of its conversations is scheduled)."""
        if (row := self.context_row(context)) is not None:
            self.append_plan_rows([], [row])

    def commit(self, conversation: Conversation) -> None:
        """Append one finished conversation; its key must not be committed yet."""
        key = conversation.key
        if key in self.done_keys:  # defensive: the planner never schedules a committed key
            log.error("refusing to write duplicate conversation %s", key)
            return
        assert self._conversations is not None
        self._conversations.append(conversation.to_json())
        self._totals.add(vars(conversation))
        # Not added to done_keys: the planner never yields a key twice in one session, and a
        # growing set would make memory grow with the corpus.
        self.failed.pop(key, None)

    def fail(self, key: ConversationKey, reason: str, detail: str, attempts: int) -> None:
        """Record a request that failed after its retries (soft fail)."""
        document_id, context_index, style, sample = key
        row = {
            "document_id": document_id, "context_index": context_index,
            "conversational_style": style, "sample": sample,
            "reason": reason, "detail": detail, "attempts": attempts, "time": time.time(),
        }  # fmt: skip
        assert self._failures is not None
        self._failures.append(json.dumps(row, ensure_ascii=False))
        self.failed[key] = row

    def compact_failures(self) -> None:
        """Rewrite the failures file without rows that have since succeeded (atomic)."""
        rows = [json.dumps(r, ensure_ascii=False) + "\n" for r in self.failed.values()]
        if self._failures is not None:
            self._failures.close()
        write_atomic(self.failures_path, "".join(rows))
        self._failures = JsonlAppender(self.failures_path)

    # -- completion -----------------------------------------------------------------------------
    def totals(self) -> ShardTotals:
        if not self._loaded:  # a writer that never loaded (an import): count the file
            self._totals = ShardTotals()
            for row in iter_jsonl(self.conversations_path):
                self._totals.add(row)
            self._loaded = True
        return ShardTotals(
            conversations=self._totals.conversations,
            contexts=len(self.context_keys) + self.contexts_written,
            failures=len(self.failed),
            by_style={style: dict(counts) for style, counts in self._totals.by_style.items()},
        )

    def write_manifest(self, status: str, totals: ShardTotals, extra: dict[str, Any]) -> dict:
        """Write the shard manifest, a done marker for the conversations and contexts files:
        ``merge``, the filter and the SLURM shard check take ``status == "complete"`` with
        those checksums unchanged as "this shard is finished"."""
        digests = {p: file_sha256(p) for p in (self.conversations_path, self.contexts_path)}
        manifest = {
            "shard": self.name,
            "status": status,
            "conversations": totals.conversations,
            "contexts": totals.contexts,
            "failures": totals.failures,
            "by_style": totals.by_style,
            "conversations_sha256": digests[self.conversations_path],
            "contexts_sha256": digests[self.contexts_path],
            "written": time.time(),
            **extra,
        }
        return write_marker(
            self.manifest_path,
            manifest,
            files=list(digests),
            root=self.run_dir,
            status=status,
            digests=digests,
        )


def count_by_reason(failed: dict[ConversationKey, dict[str, Any]]) -> Counter:
    return Counter(str(row.get("reason", "unknown")) for row in failed.values())
