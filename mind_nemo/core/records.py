"""The three records that flow through the pipeline: Document -> Context -> Conversation.

They are plain dataclasses serialised as one JSON object per line. ``Conversation`` keeps the
field names of the released Nemotron-MIND data (``text``, ``conversational_style``,
``document_id``) so our shards can be mixed with it, and adds the provenance a data builder needs
to audit or resume a run. ``Conversation.key`` is the identity that resume and dedup work on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

ConversationKey = tuple[str, int, str, int]
#: The field of a contexts row that a style prompt's ``{context}`` placeholder is filled from.
#: NeMo-Skills fills a prompt template from the fields of each input row, so a contexts file is
#: a valid ``nemo_skills.inference.generate`` input only because its rows carry this field.
CONTEXT_FIELD = "context"


def text_problem(text: Any) -> str | None:
    """Why a row's text cannot be a document (a counted skip reason), or None when it can."""
    if text is None:
        return "missing_text"
    if not isinstance(text, str):
        return "non_string_text"
    if not text.strip():
        return "empty_text"
    return None


@dataclass
class Document:
    """One raw page of the corpus, as read."""

    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Context:
    """A window of a document, about one prompt's worth of tokens.

    ``token_start``/``token_end`` index the document's tokens (generator tokenizer) and
    ``char_start``/``char_end`` its characters, so a context can always be traced back.
    A serialised row carries the text twice: as ``text`` (what our readers take) and as
    :data:`CONTEXT_FIELD` (what a prompt template is filled with, here and in NeMo-Skills).
    """

    document_id: str
    index: int
    text: str
    token_start: int
    token_end: int
    char_start: int
    char_end: int

    @property
    def num_tokens(self) -> int:
        return self.token_end - self.token_start

    def to_json(self) -> str:
        row = dict(vars(self))  # not dataclasses.asdict: it deep-copies, per row
        row[CONTEXT_FIELD] = self.text
        return json.dumps(row, ensure_ascii=False)


@dataclass
class Conversation:
    """One generated conversation (or rephrase) of one context in one style."""

    text: str
    conversational_style: str
    document_id: str
    context_index: int
    sample: int = 0
    model: str = ""
    sampling: dict[str, Any] = field(default_factory=dict)
    prompt_hash: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    finish_reason: str = ""
    created: float = 0.0
    latency_s: float = 0.0

    @property
    def key(self) -> ConversationKey:
        return (self.document_id, self.context_index, self.conversational_style, self.sample)

    def to_json(self) -> str:
        return json.dumps(vars(self), ensure_ascii=False)  # fields only, no deep copy

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Conversation:
        """Build from a parsed JSON row; unknown keys are ignored so older shards still load."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in row.items() if k in names})


def key_string(key: ConversationKey) -> str:
    """A stable printable form of a conversation key (for logs and failure files)."""
    document_id, context_index, style, sample = key
    return f"{document_id}#{context_index}/{style}/{sample}"


def text_hash(text: str) -> str:
    """Short stable hash used for prompt hashes and derived document ids."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]
