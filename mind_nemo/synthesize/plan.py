"""Turn a document stream into the requests still to be made: the work plan of one shard.

Documents are assigned to shards by a hash of their id, cut into contexts, and every context
yields one request per (style, sample). All requests of one context come out back to back, so a
server with prefix caching sees the shared context several times in a row. Keys already
committed (or failed, unless we are retrying failures) are skipped here, which is what makes a
rerun redo nothing. Everything is a generator: memory does not grow with the corpus.

Documents are split in small batches (one tokenizer call per batch). Before a document is
tokenised at all, its note from an earlier session (see :mod:`~mind_nemo.synthesize.shard_store`)
may show that all its contexts are done: it is then counted and skipped untokenised, which is
what makes resuming a finished run cheap. The plan comes out as :class:`PlanUnit` values so that
whoever consumes it (the engine's event loop, through the prefetching producer) does the
writing: the planner itself only reads the resume state.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

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
class DocumentNote:
    """How one document was split, to be recorded so a later session can skip it."""

    document_id: str
    text_hash: str
    contexts: int


@dataclass
class PlanUnit:
    """One step of the plan: a document note to record, or a context and its requests (the
    context is recorded before its first request is sent)."""

    note: DocumentNote | None = None
    context: Context | None = None
    items: list[WorkItem] = field(default_factory=list)


#: A split document batch stops at this many documents or characters (about 32 contexts).
BATCH_DOCUMENTS = 64
BATCH_CHARS = 1 << 16


@dataclass
class Planner:
    """Builds work items for one shard.

    ``split`` cuts a batch of documents into their contexts; ``render`` turns chat messages
    into what the API wants (messages, or templated text for the completions API); ``budget``
    gives max new tokens for a prompt of a given token count. ``noted`` returns a document's
    note from an earlier session (text hash, split fingerprint, contexts), if any;
    ``split_fingerprint`` names the current way of splitting.
    """

    prompts: list[StylePrompt]
    split: Callable[[Sequence[Document]], list[list[Context]]]
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
    noted: Callable[[str], tuple[str, str, int] | None] = lambda document_id: None
    split_fingerprint: str = ""
    contexts_seen: int = 0
    documents_seen: int = 0
    #: Documents skipped untokenised because all their contexts were done.
    documents_skipped: int = 0

    def _batches(self, documents: Iterable[Document]) -> Iterator[list[Document]]:
        """This shard's documents, in stream order, in small batches."""
        batch: list[Document] = []
        chars = 0
        for document in documents:
            if self.num_shards > 1 and shard_of(document.id, self.num_shards) != self.shard_id:
                continue
            batch.append(document)
            chars += len(document.text)
            if len(batch) >= BATCH_DOCUMENTS or chars >= BATCH_CHARS:
                yield batch
                batch, chars = [], 0
        if batch:
            yield batch

    def _done_contexts(self, document: Document, digest: str) -> int | None:
        """The number of contexts of ``document`` if its note is current and all are done."""
        note = self.noted(document.id)
        if note is None or note[0] != digest or note[1] != self.split_fingerprint:
            return None
        contexts = note[2]
        for index in range(contexts):
            for prompt in self.prompts:
                for sample in range(self.samples_per_context):
                    if self._wanted((document.id, index, prompt.style, sample)):
                        return None
        return contexts

    def units(self, documents: Iterable[Document]) -> Iterator[PlanUnit]:
        """The plan, in stream order, up to ``limit`` contexts (done ones count too)."""
        for batch in self._batches(documents):
            digests = [text_hash(document.text) for document in batch]
            done = [self._done_contexts(d, h) for d, h in zip(batch, digests, strict=True)]
            splits = iter(self.split([d for d, n in zip(batch, done, strict=True) if n is None]))
            for document, digest, done_contexts in zip(batch, digests, done, strict=True):
                self.documents_seen += 1
                if done_contexts is not None:  # everything done: skip it untokenised
                    self.documents_skipped += 1
                    if self.limit is not None and self.contexts_seen + done_contexts > self.limit:
                        self.contexts_seen = self.limit
                        return
                    self.contexts_seen += done_contexts
                    continue
                contexts = next(splits)
                yield PlanUnit(note=DocumentNote(document.id, digest, len(contexts)))
                for context in contexts:
                    if self.limit is not None and self.contexts_seen >= self.limit:
                        return
                    self.contexts_seen += 1
                    items = self._items(context)
                    if items:
                        yield PlanUnit(context=context, items=items)

    def _items(self, context: Context) -> list[WorkItem]:
        todo = [
            (prompt, sample)
            for prompt in self.prompts
            for sample in range(self.samples_per_context)
            if self._wanted((context.document_id, context.index, prompt.style, sample))
        ]
        items = []
        for prompt, sample in todo:
            rendered = self.render(prompt.messages(context.text))
            items.append(
                WorkItem(
                    context=context,
                    style=prompt.style,
                    sample=sample,
                    prompt=rendered,
                    prompt_hash=text_hash(str(rendered)),
                    max_tokens=self.budget(prompt, context),
                )
            )
        return items

    def _wanted(self, key: ConversationKey) -> bool:
        if self.only is not None:
            return key in self.only and not self.skip(key)
        return not self.skip(key)
