"""Turn a document stream into the requests still to be made: the work plan of one shard.

Documents are assigned to shards by a hash of their id, cut into contexts, and every context
yields one request per (style, sample). All requests of one context come out back to back, so a
server with prefix caching sees the shared context several times in a row. Keys already
committed (or failed, unless we are retrying failures) are skipped here, which is what makes a
rerun redo nothing. Everything is a generator: memory does not grow with the corpus.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from mind_nemo.core.records import Context, ConversationKey, Document, text_hash
from mind_nemo.synthesize.styles import StylePrompt


@dataclass
class WorkItem:
    """One request to make: a context rendered in one style."""

    context: Context
    style: str
    sample: int
    prompt: list[dict[str, str]] | str
    prompt_hash: str
    max_tokens: int

    @property
    def key(self) -> ConversationKey:
        return (self.context.document_id, self.context.index, self.style, self.sample)


def shard_of(document_id: str, num_shards: int) -> int:
    """Deterministic shard of a document: stable across machines and Python versions."""
    digest = hashlib.blake2b(document_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % num_shards


@dataclass
class Planner:
    """Builds work items for one shard.

    ``render`` turns chat messages into what the API wants (messages, or templated text for the
    completions API); ``budget`` gives max new tokens for a prompt of a given token count.
    """

    prompts: list[StylePrompt]
    split: Callable[[Document], list[Context]]
    render: Callable[[list[dict[str, str]]], list[dict[str, str]] | str]
    budget: Callable[[StylePrompt, Context], int]
    samples_per_context: int = 1
    shard_id: int = 0
    num_shards: int = 1
    limit: int | None = None
    #: Keys to skip (already committed, or failed when not retrying).
    skip: Callable[[ConversationKey], bool] = lambda key: False
    #: When set, only these keys are planned (``retry_failed``).
    only: set[ConversationKey] | None = None
    #: Called once per context that has at least one item to do, before its items.
    on_context: Callable[[Context], Any] = lambda context: None
    contexts_seen: int = 0
    documents_seen: int = 0

    def contexts(self, documents: Iterable[Document]) -> Iterator[Context]:
        """This shard's contexts, in stream order, up to ``limit``."""
        for document in documents:
            if self.num_shards > 1 and shard_of(document.id, self.num_shards) != self.shard_id:
                continue
            self.documents_seen += 1
            for context in self.split(document):
                if self.limit is not None and self.contexts_seen >= self.limit:
                    return
                self.contexts_seen += 1
                yield context

    def items(self, documents: Iterable[Document]) -> Iterator[WorkItem]:
        for context in self.contexts(documents):
            todo = [
                (prompt, sample)
                for prompt in self.prompts
                for sample in range(self.samples_per_context)
                if self._wanted((context.document_id, context.index, prompt.style, sample))
            ]
            if not todo:
                continue
            self.on_context(context)
            for prompt, sample in todo:
                messages = prompt.messages(context.text)
                rendered = self.render(messages)
                yield WorkItem(
                    context=context,
                    style=prompt.style,
                    sample=sample,
                    prompt=rendered,
                    prompt_hash=text_hash(str(rendered)),
                    max_tokens=self.budget(prompt, context),
                )

    def _wanted(self, key: ConversationKey) -> bool:
        if self.only is not None:
            return key in self.only and not self.skip(key)
        return not self.skip(key)
