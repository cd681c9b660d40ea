"""Typed config of ``python -m mind_nemo.mix``, registered in Hydra's ConfigStore as ``mix_schema``.

A mix file under ``hydra_configs/mix/`` fills :class:`MixConfig`: which sources, how they are
grouped, the target ratio by tokens and the token budget. A misspelt key, a wrong type or a value
out of its range (declared with :func:`~mind_nemo.core.config.setting`, checked when the
dataclass is built) fails at start-up with one line, before a tokenizer is loaded or a file is
written. Sources stay an untyped mapping so ``+sources.NEW.path=...`` works on the command line;
:class:`MixConfig` checks each entry against :class:`SourceConfig` when it is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mind_nemo.core.config import (
    Checked,
    ConfigValueError,
    bad_value,
    check_settings,
    register_schema,
    setting,
)
from mind_nemo.core.corpus import FORMATS

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
    kind: str = setting("corpus", choices=SOURCE_KINDS)
    #: corpus: file, directory, glob, saved dataset folder or Hub name; otherwise the run folder.
    #: Required for an enabled source.
    path: str | None = None
    #: variant name for ``kind=variant``.
    variant: str | None = None
    #: Styles kept for ``kind=conversations`` (empty: every row).
    styles: list[str] = field(default_factory=list)
    #: ``auto`` (from the path), ``jsonl``, ``parquet`` or ``hf`` (corpus only).
    format: str = setting("auto", choices=FORMATS)
    text_field: str = "text"
    hf_split: str = "train"
    hf_name: str | None = None
    #: Stop after this many documents (``null``: read everything).
    limit_documents: int | None = setting(None, ge=0)
    #: Ratio group this source belongs to (``null``: a group of its own, named like the source).
    group: str | None = None
    #: Share of its group, by tokens, relative to the group's other sources (> 0 when enabled).
    weight: float = setting(1.0, ge=0)
    #: ``false`` leaves the source out of this mix (handy for optional parts, e.g. raw 1:1).
    enabled: bool = True

    def __post_init__(self) -> None:
        check_settings(self)
        if self.enabled and self.weight <= 0:
            raise bad_value("weight", self.weight, "must be > 0 (or enabled=false)")


@dataclass
class TokenizerConfig(Checked):
    """Which tokenizer turns text into token ids, and the end-of-document token."""

    #: ``auto``: ``*.model`` -> sentencepiece, ``*.tiktoken``/``*.json`` vocab lists and tiktoken
    #: encoding names -> tiktoken, anything else -> huggingface.
    type: str = setting("auto", choices=TOKENIZER_TYPES)
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
    num_special_tokens: int = setting(1000, ge=0)
    vocab_size: int = setting(131072, ge=1)


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
    total_tokens: float | None = setting(None, gt=0)
    #: Refuse a plan that would repeat any source more often than this.
    max_epochs: float = setting(10.0, gt=0)
    #: Training sequence length, only to report ``--train-samples`` for the token budget.
    seq_length: int = setting(4096, ge=1)
    #: Train/validation/test proportions every source is cut into (Megatron-LM ``--split``, NeMo
    #: ``split=``; this default is Megatron-LM's). The printed split grows any part that would
    #: hold 0 documents of a source (megatron-core never finishes building such a part). On the
    #: command line write ``split=99:1:0`` or ``split='99,1,0'`` (Hydra reads ``a,b`` as a sweep).
    split: str = "969,30,1"
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    #: Tokenizer worker processes (``null``: the CPUs this process may use).
    #: 0 tokenizes in this process.
    workers: int | None = setting(None, ge=0)
    #: Text per worker task (bytes); bounds memory together with ``max_in_flight``.
    batch_bytes: int = setting(4 << 20, ge=1)
    #: Tasks queued or running at once (``null``: 2 x workers, and at least 64 MiB of text).
    max_in_flight: int | None = setting(None, ge=1)
    #: Plain JSONL files are cut into byte ranges of this size, the units shards are made of.
    split_bytes: int = setting(256 << 20, ge=1)
    output_dir: str = MISSING
    #: ``auto``: ``shard`` inside a job array (num_shards > 1), else ``all``. ``shard`` tokenizes
    #: this task's part of every source; ``finalize`` merges the parts, then plans the blend.
    step: str = setting("auto", choices=STEPS)
    #: Shards of every source; default from SLURM array variables.
    num_shards: int | None = setting(None, ge=1)
    shard_id: int | None = setting(None, ge=0)
    #: Redo every source even if its finished output is already there.
    force: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        check_settings(self)
        for group, weight in self.groups.items():
            if not weight > 0:
                raise bad_value(f"groups.{group}", weight, "must be > 0 (drop the group instead)")
        source_configs(self.sources)


def source_configs(sources: Mapping[str, Any]) -> dict[str, SourceConfig]:
    """Each entry of ``sources`` checked against :class:`SourceConfig`; a typo or a value out of
    range is one line (a :class:`ConfigValueError`, so :class:`MixConfig` can raise it)."""
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
            raise ConfigValueError(f"sources.{name}: {message}") from None
        except ValueError as err:  # SourceConfig's own range check: "key=value: why"
            raise ConfigValueError(f"sources.{name}.{err}") from None
    return result


register_schema("mix_schema", MixConfig)
