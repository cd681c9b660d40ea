"""Typed config of ``python -m mind_nemo.mix``, registered in Hydra's ConfigStore as ``mix_schema``.

A mix file under ``hydra_configs/mix/`` fills :class:`MixConfig`: which sources, how they are
grouped, the target ratio by tokens and the token budget. A misspelt key or a wrong type fails at
start-up with one line, before a tokenizer is loaded or a file is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mind_nemo.core.config import register_schema
from mind_nemo.core.errors import UserError

#: Kinds of source a mix can read (see :mod:`mind_nemo.mix.sources`).
SOURCE_KINDS: tuple[str, ...] = ("corpus", "variant", "conversations")
#: Tokenizer families (``auto`` guesses from the name; see :mod:`mind_nemo.mix.tokenizer`).
TOKENIZER_TYPES: tuple[str, ...] = ("auto", "huggingface", "sentencepiece", "tiktoken")
#: How one invocation splits its work (same words as the filter stage).
STEPS: tuple[str, ...] = ("auto", "all", "shard", "finalize")


@dataclass
class SourceConfig:
    """One input of the mix: a corpus, a filter-run variant, or conversations of some styles."""

    #: ``corpus``: raw text (JSONL(.gz/.zst), Parquet, a saved or Hub HF dataset; ``sample`` is
    #: the packaged math sample, ``sample_general`` the packaged general-web sample).
    #: ``variant``: a filter run's ``variants/<name>/part-*.jsonl`` (longest, all, concat, raw).
    #: ``conversations``: a synthesize or filter run's ``conversations/shard-*.jsonl``,
    #: optionally only some styles (e.g. ``[teacher_student]`` or ``[rephrase]``).
    kind: str = "corpus"
    #: corpus: file, directory, glob, saved dataset folder or Hub name; otherwise the run folder.
    #: Required for an enabled source.
    path: str | None = None
    #: variant name for ``kind=variant``.
    variant: str | None = None
    #: Styles kept for ``kind=conversations`` (empty: every row).
    styles: list[str] = field(default_factory=list)
    #: ``auto`` (from the path), ``jsonl``, ``parquet`` or ``hf`` (corpus only).
    format: str = "auto"
    text_field: str = "text"
    hf_split: str = "train"
    hf_name: str | None = None
    #: Stop after this many documents (``null``: read everything).
    limit_documents: int | None = None
    #: Ratio group this source belongs to (``null``: a group of its own, named like the source).
    group: str | None = None
    #: Share of its group, by tokens, relative to the group's other sources.
    weight: float = 1.0
    #: ``false`` leaves the source out of this mix (handy for optional parts, e.g. raw 1:1).
    enabled: bool = True


@dataclass
class TokenizerConfig:
    """Which tokenizer turns text into token ids, and the end-of-document token."""

    #: ``auto``: ``*.model`` -> sentencepiece, ``*.tiktoken``/``*.json`` vocab lists and tiktoken
    #: encoding names -> tiktoken, anything else -> huggingface.
    type: str = "auto"
    #: ``embedded`` (the packaged SmolLM2 tokenizer), a Hugging Face name or directory, a
    #: SentencePiece ``.model``, a ``.tiktoken`` file, a Megatron/NeMo tiktoken ``.json`` vocab,
    #: or a tiktoken encoding name (``cl100k_base``, ``o200k_base``; downloaded once by tiktoken).
    name: str = "embedded"
    #: Token appended after every document: a token string or id; ``null``: the tokenizer's own
    #: end token (HF ``eos_token``, SentencePiece ``</s>``, tiktoken ``<|endoftext|>``).
    eod: str | None = None
    append_eod: bool = True
    #: tiktoken split regex: ``cl100k``, ``o200k``, ``r50k``, ``v1``/``v2`` (Megatron), or a regex;
    #: ``null``: from the file name for ``.tiktoken`` files, ``v2`` for Megatron ``.json`` vocabs.
    pattern: str | None = None
    #: Megatron/NeMo tiktoken ``.json`` vocabs: reserved special ids and the vocabulary size.
    num_special_tokens: int = 1000
    vocab_size: int = 131072


@dataclass
class MixConfig:
    """``python -m mind_nemo.mix``: sources -> Megatron .bin/.idx per source + blend + manifest."""

    #: Name of the mix (the ``mix/`` file sets it); names the default run folder.
    name: str = MISSING
    #: Source name -> :class:`SourceConfig` fields (checked by :func:`source_configs`; kept
    #: untyped here so ``+sources.NEW.path=...`` works on the command line).
    sources: dict[str, Any] = field(default_factory=dict)
    #: Group -> weight by tokens, e.g. ``{math: 2, general: 1}`` (the paper's 2:1). Empty: every
    #: source is its own group with its ``weight``.
    groups: dict[str, float] = field(default_factory=dict)
    #: Tokens of continued pretraining the blend is sized for (the paper: 50e9). ``null``: the
    #: largest total in which no source repeats (the scarcest source is read exactly once).
    total_tokens: float | None = None
    #: Refuse a plan that would repeat any source more often than this.
    max_epochs: float = 10.0
    #: Training sequence length, only to report ``--train-samples`` for the token budget.
    seq_length: int = 4096
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    #: Tokenizer worker processes (``null``: the CPUs this process may use).
    workers: int | None = None
    #: Text per worker task (bytes); bounds memory together with ``max_in_flight``.
    batch_bytes: int = 4 << 20
    #: Tasks queued or running at once (``null``: 2 x workers, and at least 64 MiB of text).
    max_in_flight: int | None = None
    #: Plain JSONL files are cut into byte ranges of this size, the units shards are made of.
    split_bytes: int = 256 << 20
    output_dir: str = MISSING
    #: ``auto``: ``shard`` inside a job array (num_shards > 1), else ``all``. ``shard`` tokenizes
    #: this task's part of every source; ``finalize`` merges the parts, then plans the blend.
    step: str = "auto"
    #: Shards of every source; default from SLURM array variables.
    num_shards: int | None = None
    shard_id: int | None = None
    #: Redo every source even if its finished output is already there.
    force: bool = False
    progress: bool = True


def source_configs(sources: Mapping[str, Any]) -> dict[str, SourceConfig]:
    """Each entry of ``sources`` checked against :class:`SourceConfig`; a typo is one line."""
    result = {}
    for name, entry in sources.items():
        if isinstance(entry, SourceConfig):
            result[str(name)] = entry
            continue
        try:
            node = OmegaConf.merge(OmegaConf.structured(SourceConfig), entry or {})
            result[str(name)] = OmegaConf.to_object(node)  # type: ignore[assignment]
        except OmegaConfBaseException as err:
            message = str(err).splitlines()[0]
            raise UserError(f"sources.{name}: {message}") from None
    return result


register_schema("mix_schema", MixConfig)
