"""Typed config of ``python -m mind_nemo.synthesize``, registered at import.

Each YAML file under ``hydra_configs/`` is merged onto one of these dataclasses, so a misspelt
key or a value of the wrong type fails at start-up, before a server is launched or a file is
written. Every numeric and enum setting is declared with its allowed range
(:func:`~mind_nemo.core.config.setting`) and checked when the dataclass is built, so a value out
of range fails the same way. Secrets never live here: a server config names the *environment
variable* that holds an API key, never the key itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING

from mind_nemo.core.config import Checked, bad_value, check_settings, register_schema, setting
from mind_nemo.core.corpus import CorpusConfig
from mind_nemo.servers.config import ServerConfig


@dataclass
class ChunkConfig:
    """How documents are cut into contexts (the paper: ~500 generator tokens)."""

    context_tokens: int = setting(500, ge=1)
    #: Tokens shared by consecutive contexts; fewer than ``context_tokens``.
    overlap_tokens: int = setting(0, ge=0)
    #: A trailing piece shorter than this is merged into the previous context.
    min_tokens: int = setting(50, ge=0)

    def __post_init__(self) -> None:
        check_settings(self)
        if self.overlap_tokens >= self.context_tokens:
            why = f"must be < context_tokens={self.context_tokens}"
            raise bad_value("overlap_tokens", self.overlap_tokens, why)


@dataclass
class SamplingConfig(Checked):
    """Decoding settings sent with every request (paper defaults)."""

    temperature: float = setting(1.0, ge=0)
    top_p: float = setting(0.9, gt=0, le=1)
    #: Prompt + completion budget per request; max new tokens = this - prompt tokens.
    max_total_tokens: int = setting(4096, ge=1)
    #: Optional hard cap on new tokens per request (``null``: derived from the budget only).
    max_new_tokens: int | None = setting(None, ge=1)
    seed: int | None = setting(None, ge=0)


@dataclass
class EngineConfig:
    """How requests are issued: concurrency, timeouts and retries."""

    max_concurrent_requests: int = setting(256, ge=1)
    request_timeout_s: float = setting(600.0, gt=0)
    max_retries: int = setting(6, ge=0)
    #: Wait before the first retry, doubled per retry up to ``backoff_max_s``.
    backoff_initial_s: float = setting(1.0, ge=0)
    backoff_max_s: float = setting(60.0, ge=0)
    #: Raise concurrency while measured throughput still grows (opt in).
    adaptive_concurrency: bool = False
    #: Seconds of throughput measured per adaptive step.
    adaptive_window_s: float = setting(10.0, gt=0)
    #: Give up on a server that answers nothing for this long (dead server detection).
    server_dead_after_s: float = setting(900.0, gt=0)

    def __post_init__(self) -> None:
        check_settings(self)
        if self.backoff_max_s < self.backoff_initial_s:
            why = f"must be >= backoff_initial_s={self.backoff_initial_s}"
            raise bad_value("backoff_max_s", self.backoff_max_s, why)


@dataclass
class StyleConfig:
    """Which styles to generate; ``styles`` lists them (one, or the seven for ``all``)."""

    name: str = MISSING
    styles: list[str] = field(default_factory=list)
    #: A user's own NeMo-Skills style prompt file (only with a single style).
    prompt_file: str | None = None
    samples_per_context: int = setting(1, ge=1)

    def __post_init__(self) -> None:
        check_settings(self)
        if self.prompt_file and len(self.styles) > 1:
            why = "replaces one style's prompt; use it with a single style"
            raise bad_value("prompt_file", self.prompt_file, why)


@dataclass
class ProjectionConfig(Checked):
    """The full-scale job to project cost for: this run's mean conversation length at a
    per-GPU output rate you set (this run's own rate is reported beside it, never used)."""

    #: Raw tokens to rewrite (OpenWebMath: 14.7B).
    target_corpus_tokens: float = setting(14.7e9, gt=0)
    #: Styles per context at full scale (the paper's seven).
    styles: int = setting(7, ge=1)
    #: Output tokens/s one GPU sustains serving the full job. The default, 400, is a round
    #: planning figure for a 70B-class model on a current data-centre GPU, not a measurement
    #: made here: set it from a benchmark of your own server.
    gpu_tokens_per_s: float = setting(400.0, gt=0)
    #: GPUs behind the measured server; ``null``: tensor_parallel_size x num_nodes (1 for CPU).
    gpus: int | None = setting(None, ge=1)
    #: GPUs available for the full job (wall time = GPU-hours / this).
    cluster_gpus: int = setting(512, ge=1)


@dataclass
class SynthesizeConfig(Checked):
    """``python -m mind_nemo.synthesize``: corpus -> contexts -> conversations."""

    style: StyleConfig | None = None
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    chunking: ChunkConfig = field(default_factory=ChunkConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    #: Stop after this many contexts (per shard); ``null`` processes the whole corpus.
    limit: int | None = setting(None, ge=0)
    output_dir: str = MISSING
    #: Shards of the corpus (by document id hash); default from SLURM array variables.
    num_shards: int | None = setting(None, ge=1)
    shard_id: int | None = setting(None, ge=0)
    #: Retry only the rows listed in the run's failures file.
    retry_failed: bool = False
    progress: bool = True
    #: Hold an exclusive flock on ``locks/<shard>.lock`` while writing, so a second copy of the
    #: same task refuses to start; ``false`` only where the filesystem cannot flock (see README).
    lock: bool = True
    projection: ProjectionConfig = field(default_factory=ProjectionConfig)


#: Values of ``export.schema``: our snake_case names, or the released Nemotron-MIND naming.
EXPORT_SCHEMAS: tuple[str, ...] = ("mind_nemo", "nemotron_mind")


@dataclass
class ExportConfig(Checked):
    """The merge's Parquet export (one folder per style, with a dataset card)."""

    #: Write the export at all.
    parquet: bool = True
    rows_per_file: int = setting(500_000, ge=1)
    #: ``mind_nemo``: ``text``, ``conversational_style``, ``document_id`` + provenance, folders
    #: ``debate/``; ``nemotron_mind``: the release's ``Text``, ``Conversational Style``,
    #: ``Document ID`` only, folders ``DEBATE/``.
    schema: str = setting("mind_nemo", choices=EXPORT_SCHEMAS)


@dataclass
class MergeConfig(Checked):
    """``python -m mind_nemo.merge``: check a sharded run, publish its manifest and export."""

    run_dir: str = MISSING
    export: ExportConfig = field(default_factory=ExportConfig)


register_schema("synthesize_schema", SynthesizeConfig)
register_schema("merge_schema", MergeConfig)
