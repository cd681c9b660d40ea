"""Typed configs of the filter stage, registered in Hydra's ConfigStore.

The thresholds of every filter family live in ``hydra_configs/filter/<name>.yaml`` (the group
``filter``); the stage itself (which run, which step of a job array, the LLM judge, the variants)
is ``hydra_configs/filter.yaml``. A wrong key or type fails at start-up with one line;
:func:`check_settings` turns values that parse but make no sense (a ratio of 1.5, a negative
token minimum) into one line too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import MISSING, OmegaConf

from mind_nemo.core.config import register_schema
from mind_nemo.core.errors import UserError
from mind_nemo.servers.config import ServerConfig

#: The variants the paper trains on, each a named output of the filtered run.
VARIANT_NAMES: tuple[str, ...] = ("longest", "all", "concat", "raw")
#: How a filter stage invocation splits its work (see mind_nemo/filter/README.md).
STEPS: tuple[str, ...] = ("auto", "all", "shard", "finalize")


@dataclass
class LengthConfig:
    """The paper's rule (drop conversations under ``min_tokens`` generator tokens), plus
    truncated and empty generations."""

    enabled: bool = True
    min_tokens: int = 50
    #: Drop generations that stopped at the token limit (finish reason ``length``).
    drop_truncated: bool = True


@dataclass
class StructureConfig:
    """A conversation needs distinct speakers and enough turns."""

    enabled: bool = True
    min_speakers: int = 2
    min_turns: int = 4
    #: Per-style override of ``min_turns``.
    min_turns_by_style: dict[str, int] = field(default_factory=dict)
    #: Styles that are not dialogues (the WRAP-style rephrase baseline): no speaker checks.
    exempt_styles: list[str] = field(default_factory=lambda: ["rephrase"])
    #: Rewrite every turn as ``Name: text`` (blank line between turns); the original text is
    #: kept in ``text_original``.
    normalize_speakers: bool = False


@dataclass
class LeakageConfig:
    """Echoed instructions and meta text ("Here is a conversation ...", "I hope this helps")."""

    enabled: bool = True
    #: Strip a preamble or closing remark when it sits outside the dialogue; ``false`` rejects.
    strip: bool = True
    #: Words per shingle when looking for the style instruction inside the output.
    instruction_ngram: int = 6
    #: Instruction shingles that may appear before the output counts as an echo.
    max_instruction_hits: int = 1
    #: A paragraph longer than this is never stripped as a preamble/closing remark.
    max_meta_chars: int = 400


@dataclass
class DegenerationConfig:
    """Loops and copy-paste: repeated word n-grams and repeated lines."""

    enabled: bool = True
    ngram: int = 5
    #: Share of word n-grams that repeat an earlier one.
    max_repeated_ngram_ratio: float = 0.35
    #: Share of (long enough) lines that repeat an earlier line.
    max_repeated_line_ratio: float = 0.3
    min_line_chars: int = 12
    #: Fewer lines (or n-grams) than this: too little text to judge, passes.
    min_lines: int = 4
    min_ngrams: int = 20


@dataclass
class FaithfulnessConfig:
    """Cheap proxies for "did the conversation keep the context": numbers, LaTeX, length."""

    enabled: bool = True
    #: Share of the context's distinct numbers found in the conversation.
    min_number_recall: float = 0.2
    #: Share of the context's LaTeX expressions found (whitespace-insensitive).
    min_latex_recall: float = 0.0
    #: A recall is only checked when the context has at least this many numbers/expressions.
    min_items: int = 3
    #: LaTeX expressions shorter than this (``$x$``) are ignored.
    min_latex_chars: int = 3
    #: Conversation tokens / context tokens.
    min_length_ratio: float = 0.1
    max_length_ratio: float = 10.0


@dataclass
class DedupConfig:
    """Exact and near-duplicate removal across all shards (MinHash LSH, datasketch)."""

    exact: bool = True
    near: bool = True
    #: Estimated Jaccard similarity of word shingles at which two conversations are duplicates.
    threshold: float = 0.8
    num_perm: int = 128
    shingle_words: int = 5
    seed: int = 1


@dataclass
class FilterSettings:
    """The ``filter`` config group: thresholds of every filter family."""

    length: LengthConfig = field(default_factory=LengthConfig)
    structure: StructureConfig = field(default_factory=StructureConfig)
    leakage: LeakageConfig = field(default_factory=LeakageConfig)
    degeneration: DegenerationConfig = field(default_factory=DegenerationConfig)
    faithfulness: FaithfulnessConfig = field(default_factory=FaithfulnessConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)


@dataclass
class JudgeConfig:
    """Optional LLM judge with the paper's four 1-5 criteria; records scores, drops on request."""

    enabled: bool = False
    #: Drop conversations with any score under ``min_score`` (the paper found judging lenient,
    #: so by default scores are only recorded).
    drop: bool = False
    min_score: int = 3
    #: With ``drop``: also drop conversations whose scores could not be parsed.
    drop_unscored: bool = False
    #: A NeMo-Skills style prompt with ``{context}`` and ``{conversation}``; null: built-in.
    prompt_file: str | None = None
    server: ServerConfig = field(default_factory=ServerConfig)
    max_concurrent_requests: int = 32
    request_timeout_s: float = 300.0
    max_retries: int = 3
    temperature: float = 0.0
    max_tokens: int = 64
    #: Conversations scored concurrently before their results are written.
    batch_size: int = 256


@dataclass
class VariantsConfig:
    """The paper's training sets built from the filtered run."""

    names: list[str] = field(default_factory=lambda: list(VARIANT_NAMES))
    #: Styles left out of LONGEST/ALL/CONCAT (the rephrase baseline is not a conversation).
    exclude_styles: list[str] = field(default_factory=lambda: ["rephrase"])
    #: Between the context and each conversation in CONCAT.
    separator: str = "\n\n"
    rows_per_file: int = 100_000
    #: Rows held in memory by the external sort that groups conversations by context.
    sort_buffer_rows: int = 50_000


@dataclass
class FilterStageConfig:
    """``python -m mind_nemo.filter run_dir=RUN``: synthesize run -> filtered run + variants."""

    run_dir: str = MISSING
    output_dir: str = MISSING
    #: ``auto``: ``shard`` inside a job array (num_shards > 1), else ``all``.
    step: str = "auto"
    num_shards: int | None = None
    shard_id: int | None = None
    #: Generator tokenizer for token counts; null: the run's ``server.tokenizer``/``server.model``.
    tokenizer: str | None = None
    #: Filter a run whose synthesize shards are not all complete.
    allow_incomplete: bool = False
    #: Start over in an output folder that holds another filter run.
    overwrite: bool = False
    #: Delete the pass-1 staging files once the run is finalized.
    keep_work: bool = False
    progress: bool = True
    filter: FilterSettings = field(default_factory=FilterSettings)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    variants: VariantsConfig = field(default_factory=VariantsConfig)


def filtered_dir(run_dir: str) -> str:
    """Default output folder: a sibling of the run, ``<run>-filtered`` (trailing ``/`` ignored)."""
    path = Path(run_dir)
    return str(path.with_name(f"{path.name}-filtered"))


def _ratio(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise UserError(f"{name}={value} must be between 0 and 1")


def _at_least(name: str, value: float, low: float) -> None:
    if value < low:
        raise UserError(f"{name}={value} must be >= {low}")


def check_settings(cfg: FilterStageConfig) -> None:
    """Values that type-check but cannot be meant: one line naming the key."""
    f = cfg.filter
    if cfg.step not in STEPS:
        raise UserError(f"step={cfg.step!r}; choose one of: {', '.join(STEPS)}")
    _at_least("filter.length.min_tokens", f.length.min_tokens, 0)
    _at_least("filter.structure.min_speakers", f.structure.min_speakers, 0)
    _at_least("filter.structure.min_turns", f.structure.min_turns, 0)
    for style, turns in f.structure.min_turns_by_style.items():
        _at_least(f"filter.structure.min_turns_by_style.{style}", turns, 0)
    _at_least("filter.leakage.instruction_ngram", f.leakage.instruction_ngram, 2)
    _at_least("filter.leakage.max_instruction_hits", f.leakage.max_instruction_hits, 0)
    _at_least("filter.degeneration.ngram", f.degeneration.ngram, 1)
    _ratio("filter.degeneration.max_repeated_ngram_ratio", f.degeneration.max_repeated_ngram_ratio)
    _ratio("filter.degeneration.max_repeated_line_ratio", f.degeneration.max_repeated_line_ratio)
    _ratio("filter.faithfulness.min_number_recall", f.faithfulness.min_number_recall)
    _ratio("filter.faithfulness.min_latex_recall", f.faithfulness.min_latex_recall)
    _at_least("filter.faithfulness.min_length_ratio", f.faithfulness.min_length_ratio, 0.0)
    if f.faithfulness.max_length_ratio <= f.faithfulness.min_length_ratio:
        raise UserError(
            f"filter.faithfulness.max_length_ratio={f.faithfulness.max_length_ratio} must be "
            f"above min_length_ratio={f.faithfulness.min_length_ratio}"
        )
    if not 0.0 < f.dedup.threshold <= 1.0:
        raise UserError(f"filter.dedup.threshold={f.dedup.threshold} must be in (0, 1]")
    _at_least("filter.dedup.num_perm", f.dedup.num_perm, 16)
    _at_least("filter.dedup.shingle_words", f.dedup.shingle_words, 1)
    if not 1 <= cfg.judge.min_score <= 5:
        raise UserError(f"judge.min_score={cfg.judge.min_score} must be between 1 and 5")
    _at_least("judge.max_concurrent_requests", cfg.judge.max_concurrent_requests, 1)
    _at_least("judge.batch_size", cfg.judge.batch_size, 1)
    unknown = [n for n in cfg.variants.names if n not in VARIANT_NAMES]
    if unknown:
        choices = ", ".join(VARIANT_NAMES)
        raise UserError(f"unknown variant {unknown[0]!r} in variants.names; choose from: {choices}")
    _at_least("variants.rows_per_file", cfg.variants.rows_per_file, 1)
    _at_least("variants.sort_buffer_rows", cfg.variants.sort_buffer_rows, 1)


register_schema("filter_schema", FilterStageConfig)
if not OmegaConf.has_resolver("mind_nemo.filtered_dir"):
    OmegaConf.register_new_resolver("mind_nemo.filtered_dir", filtered_dir)
