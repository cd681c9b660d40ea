"""Map one NeMo-Skills output row to our records, field by field, guessing nothing.

NeMo-Skills' ``generate`` writes each input row back with the answer added
(``nemo_skills/inference/generate.py``, ``postprocess_single_output``; the model's fields come
from ``nemo_skills/inference/model/base.py``). Our contexts rows went in, so the mapping is:

====================  ===========================================  ===========================
NeMo-Skills field     ours                                         when absent
====================  ===========================================  ===========================
``generation``        ``Conversation.text`` (``generation_key``)   row skipped:
                                                                   ``missing_generation``
``document_id``       ``Conversation.document_id``                 ``missing_document_id``
``index``             ``Conversation.context_index``               ``missing_index``
``num_generated_      ``completion_tokens``                        0
tokens``
``num_input_tokens``  ``prompt_tokens`` (``++count_prompt_tokens``) 0
``finish_reason``     ``finish_reason``                            ``''``
``generation_end_     ``created``; ``generation_time``:            0
time``                ``latency_s``
``text``/``context``  the context row (with the ``token_*``,       no context row
                      ``char_*`` fields)                           (``contexts_missing``)
====================  ===========================================  ===========================

A row without its answer is never kept with some other text in its place: it is skipped and
counted under its reason, and a file where no row has the answer is refused outright (wrong
``generation_key``, or not a ``generate`` output).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mind_nemo.core.records import CONTEXT_FIELD, Context, Conversation
from mind_nemo.synthesize.styles import with_prefix

#: Skip reasons that mean "this file is not what the import expects" when every row has them.
FILE_LEVEL = ("missing_generation", "missing_document_id", "missing_index")


@dataclass
class Mapped:
    """One imported row: its conversation and, when the row carries it, its context."""

    conversation: Conversation
    context: Context | None


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _float(value: Any) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok else 0.0


def context_of(row: dict[str, Any], document_id: str, index: int) -> Context | None:
    """The context row that went into NeMo-Skills, rebuilt from its copied-through fields."""
    text = row.get("text")
    if not isinstance(text, str):
        text = row.get(CONTEXT_FIELD)
    if not isinstance(text, str):
        return None
    spans = [_int(row.get(k)) for k in ("token_start", "token_end", "char_start", "char_end")]
    return Context(document_id, index, text, *spans)


def map_row(
    row: dict[str, Any],
    *,
    style: str,
    sample: int,
    model: str,
    generation_key: str,
    prefix_key: str | None,
) -> Mapped | str:
    """The records of ``row``, or the reason it is skipped."""
    generation = row.get(generation_key)
    if generation is None:
        return "missing_generation"
    if not isinstance(generation, str):
        return "non_string_generation"
    document_id, index = row.get("document_id"), row.get("index")
    if document_id is None or isinstance(document_id, dict | list):
        return "missing_document_id"
    if not isinstance(index, int) or isinstance(index, bool):
        return "missing_index"
    if prefix_key is not None:
        prefix = row.get(prefix_key)
        if not isinstance(prefix, str):
            return "missing_response_prefix"
        generation = with_prefix(prefix, generation)
    conversation = Conversation(
        text=generation,
        conversational_style=style,
        document_id=str(document_id),
        context_index=index,
        sample=sample,
        model=model,
        prompt_tokens=_int(row.get("num_input_tokens")),
        completion_tokens=_int(row.get("num_generated_tokens")),
        finish_reason=str(row.get("finish_reason") or ""),
        created=_float(row.get("generation_end_time")),
        latency_s=round(_float(row.get("generation_time")), 3),
    )
    return Mapped(conversation, context_of(row, str(document_id), index))
