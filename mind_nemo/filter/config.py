"""Typed configs of the filter stage, registered in Hydra's ConfigStore.

The thresholds of every filter family live in ``hydra_configs/filter/<name>.yaml`` (the group
``filter``); the stage itself (which run, which step of a job array, the LLM judge, the variants)
is ``hydra_configs/filter.yaml``. A wrong key or type fails at start-up with one line, and so
does a value that parses but makes no sense (a ratio of 1.5, a negative token minimum): each
setting carries its range (:func:`~mind_nemo.core.config.setting`), checked when its dataclass
is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import MISSING, OmegaConf

from mind_nemo.core.config import Checked, bad_value, check_settings, register_schema, setting
from mind_nemo.servers.config import ServerConfig

#: The variants the paper trains on, each a named output of the filtered run.
VARIANT_NAMES: tuple[str, ...] = ("longest", "all", "concat", "raw")
#: How a filter stage invocation splits its work (see mind_nemo/filter/README.md).
STEPS: tuple[str, ...] = ("auto", "all", "shard", "bucket", "cluster", "apply", "finalize")
#: How duplicates across shards are found (see "Dedup at scale" in mind_nemo/filter/README.md).
DEDUP_MODES: tuple[str, ...] = ("auto", "memory", "scalable")


@dataclass
class LengthConfig(Checked):
    """The paper's rule (drop conversations under ``min_tokens`` generator tokens), plus
    truncated and empty generations."""

    enabled: bool = True
    min_tokens: int = setting(50, ge=0)
    #: Drop generations that stopped at the token limit (finish reason ``length``).
    drop_truncated: bool = True


@dataclass
class StructureConfig:
    """A conversation needs distinct speakers and enough turns."""

    enabled: bool = True
    min_speakers: int = setting(2, ge=0)
    min_turns: int = setting(4, ge=0)
    #: Per-style override of ``min_turns``.
    min_turns_by_style: dict[str, int] = field(default_factory=dict)
    #: Styles that are not dialogues (the WRAP-style rephrase baseline): no speaker checks.
    exempt_styles: list[str] = field(default_factory=lambda: ["rephrase"])
    #: Rewrite every turn as ``Name: text`` (blank line between turns); the original text is
    #: kept in ``text_original``.
    normalize_speakers: bool = False

    def __post_init__(self) -> None:
        check_settings(self)
        for style, turns in self.min_turns_by_style.items():
            if turns < 0:
                raise bad_value(f"min_turns_by_style.{style}", turns, "must be >= 0")


@dataclass
class LeakageConfig(Checked):
    """Echoed instructions and meta text ("Here is a conversation ...", "I hope this helps")."""

    enabled: bool = True
    #: Strip a preamble or closing remark when it sits outside the dialogue; ``false`` rejects.
    strip: bool = True
    #: Words per shingle when looking for the style instruction inside the output.
    instruction_ngram: int = setting(6, ge=2)
    #: Instruction shingles that may appear before the output counts as an echo.
    max_instruction_hits: int = setting(1, ge=0)
    #: A paragraph longer than this is never stripped as a preamble/closing remark.
    max_meta_chars: int = setting(400, ge=0)


@dataclass
class DegenerationConfig(Checked):
    """Loops and copy-paste: repeated word n-grams and repeated lines."""

    enabled: bool = True
    ngram: int = setting(5, ge=1)
    #: Share of word n-grams that repeat an earlier one.
    max_repeated_ngram_ratio: float = setting(0.35, ge=0, le=1)
    #: Share of (long enough) lines that repeat an earlier line.
    max_repeated_line_ratio: float = setting(0.3, ge=0, le=1)
    min_line_chars: int = setting(12, ge=0)
    #: Fewer lines (or n-grams) than this: too little text to judge, passes.
    min_lines: int = setting(4, ge=0)
    min_ngrams: int = setting(20, ge=0)


@dataclass
class FaithfulnessConfig:
    """Cheap proxies for "did the conversation keep the context": numbers, LaTeX, length."""

    enabled: bool = True
    #: Share of the context's distinct numbers found in the conversation.
    min_number_recall: float = setting(0.2, ge=0, le=1)
    #: Share of the context's LaTeX expressions found (whitespace-insensitive).
    min_latex_recall: float = setting(0.0, ge=0, le=1)
    #: A recall is only checked when the context has at least this many numbers/expressions.
    min_items: int = setting(3, ge=0)
    #: LaTeX expressions shorter than this (``$x$``) are ignored.
    min_latex_chars: int = setting(3, ge=0)
    #: Conversation tokens / context tokens; the maximum must be above the minimum.
    min_length_ratio: float = setting(0.1, ge=0)
    max_length_ratio: float = setting(10.0, gt=0)

    def __post_init__(self) -> None:
        check_settings(self)
        if self.max_length_ratio <= self.min_length_ratio:
            why = f"must be > min_length_ratio={self.min_length_ratio}"
            raise bad_value("max_length_ratio", self.max_length_ratio, why)


@dataclass
class DedupConfig(Checked):
    """Exact and near-duplicate removal across all shards (MinHash LSH, datasketch)."""

    exact: bool = True
    near: bool = True
    #: Estimated Jaccard similarity of word shingles at which two conversations are duplicates.
    threshold: float = setting(0.8, gt=0, le=1)
    #: MinHash permutations; fewer than 16 estimate similarity too coarsely.
    num_perm: int = setting(128, ge=16)
    shingle_words: int = setting(5, ge=1)
    seed: int = setting(1, ge=0)
    #: Scalable path only: in one LSH bucket, a conversation is compared with at most this many
    #: earlier members (the in-memory index compares it with all of them); bounds the work of
    #: a giant bucket of boilerplate.
    max_bucket_compare: int = setting(1000, ge=1)


@dataclass
class DedupRunConfig(Checked):
    """How dedup runs (``dedup.*``): which path, and its memory and parallelism. None of these
    change which conversations are removed, so none of them is part of the settings hash."""

    #: ``memory``: one process holds the LSH index (fast, ~4 GB per million kept rows);
    #: ``scalable``: on-disk band buckets, memory bounded by ``sort_buffer_rows``;
    #: ``auto``: ``memory`` up to ``auto_max_rows`` staged rows, else ``scalable``
    #: (bench/bench_dedup.py: the two cost the same CPU at ~10,000 rows, scalable is faster
    #: above and its memory stays flat).
    mode: str = setting("auto", choices=DEDUP_MODES)
    auto_max_rows: int = setting(10_000, ge=0)
    #: Bucket records (25 bytes each) one process sorts in memory; bigger ranges are split.
    sort_buffer_rows: int = setting(4_000_000, ge=1_000)
    #: Hash ranges the band buckets are split into (one bucket task handles several).
    ranges: int = setting(64, ge=1)
    #: Local worker processes for the bucket and apply steps of ``step=all``.
    workers: int = setting(1, ge=1)


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
class JudgeConfig(Checked):
    """Optional LLM judge with the paper's four 1-5 criteria; records scores, drops on request."""

    enabled: bool = False
    #: Drop conversations with any score under ``min_score`` (the paper found judging lenient,
    #: so by default scores are only recorded).
    drop: bool = False
    min_score: int = setting(3, ge=1, le=5)
    #: With ``drop``: also drop conversations whose scores could not be parsed.
    drop_unscored: bool = False
    #: A NeMo-Skills style prompt with ``{context}`` and ``{conversation}``; null: built-in.
    prompt_file: str | None = None
    server: ServerConfig = field(default_factory=ServerConfig)
    max_concurrent_requests: int = setting(32, ge=1)
    request_timeout_s: float = setting(300.0, gt=0)
    max_retries: int = setting(3, ge=0)
    temperature: float = setting(0.0, ge=0)
    max_tokens: int = setting(64, ge=1)
    #: Conversations scored concurrently before their results are written.
    batch_size: int = setting(256, ge=1)


@dataclass
class VariantsConfig:
    """The paper's training sets built from the filtered run."""

    names: list[str] = field(default_factory=lambda: list(VARIANT_NAMES))
    #: Styles left out of LONGEST/ALL/CONCAT (the rephrase baseline is not a conversation).
    exclude_styles: list[str] = field(default_factory=lambda: ["rephrase"])
    #: Between the context and each conversation in CONCAT.
    separator: str = "\n\n"
    rows_per_file: int = setting(100_000, ge=1)
    #: Rows held in memory by the external sort that groups conversations by context.
    sort_buffer_rows: int = setting(50_000, ge=1)

    def __post_init__(self) -> None:
        check_settings(self)
        unknown = [n for n in self.names if n not in VARIANT_NAMES]
        if unknown:
            why = f"unknown variant {unknown[0]!r}; choose from: {', '.join(VARIANT_NAMES)}"
            raise bad_value("names", list(self.names), why)


@dataclass
class FilterStageConfig(Checked):
    """``python -m mind_nemo.filter run_dir=RUN``: synthesize run -> filtered run + variants."""

    run_dir: str = MISSING
    output_dir: str = MISSING
    #: ``auto``: ``shard`` inside a job array (num_shards > 1), else ``all``.
    step: str = setting("auto", choices=STEPS)
    num_shards: int | None = setting(None, ge=1)
    shard_id: int | None = setting(None, ge=0)
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
    dedup: DedupRunConfig = field(default_factory=DedupRunConfig)


def filtered_dir(run_dir: str) -> str:
    """Default output folder: a sibling of the run, ``<run>-filtered`` (trailing ``/`` ignored)."""
    path = Path(run_dir)
    return str(path.with_name(f"{path.name}-filtered"))


register_schema("filter_schema", FilterStageConfig)
if not OmegaConf.has_resolver("mind_nemo.filtered_dir"):
    OmegaConf.register_new_resolver("mind_nemo.filtered_dir", filtered_dir)
