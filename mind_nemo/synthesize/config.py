"""Typed config of ``python -m mind_nemo.synthesize``, registered at import.

Each YAML file under ``hydra_configs/`` is merged onto one of these dataclasses, so a misspelt
key or a value of the wrong type fails at start-up, before a server is launched or a file is
written. Secrets never live here: a server config names the *environment variable* that holds
an API key, never the key itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING

from mind_nemo.core.config import register_schema
from mind_nemo.core.corpus import CorpusConfig
from mind_nemo.servers.config import ServerConfig


@dataclass
class ChunkConfig:
    """How documents are cut into contexts (the paper: ~500 generator tokens)."""

    context_tokens: int = 500
    overlap_tokens: int = 0
    #: A trailing piece shorter than this is merged into the previous context.
    min_tokens: int = 50


@dataclass
class SamplingConfig:
    """Decoding settings sent with every request (paper defaults)."""

    temperature: float = 1.0
    top_p: float = 0.9
    #: Prompt + completion budget per request; max new tokens = this - prompt tokens.
    max_total_tokens: int = 4096
    #: Optional hard cap on new tokens per request (``null``: derived from the budget only).
    max_new_tokens: int | None = None
    seed: int | None = None


@dataclass
class EngineConfig:
    """How requests are issued: concurrency, timeouts and retries."""

    max_concurrent_requests: int = 256
    request_timeout_s: float = 600.0
    max_retries: int = 6
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    #: Raise concurrency while measured throughput still grows (opt in).
    adaptive_concurrency: bool = False
    #: Seconds of throughput measured per adaptive step.
    adaptive_window_s: float = 10.0
    #: Give up on a server that answers nothing for this long (dead server detection).
    server_dead_after_s: float = 900.0


@dataclass
class StyleConfig:
    """Which styles to generate; ``styles`` lists them (one, or the seven for ``all``)."""

    name: str = MISSING
    styles: list[str] = field(default_factory=list)
    #: A user's own NeMo-Skills style prompt file (only with a single style).
    prompt_file: str | None = None
    samples_per_context: int = 1


@dataclass
class ProjectionConfig:
    """The full-scale job to project cost for, from this run's measured throughput."""

    #: Raw tokens to rewrite (OpenWebMath: 14.7B).
    target_corpus_tokens: float = 14.7e9
    #: Styles per context at full scale (the paper's seven).
    styles: int = 7
    #: GPUs behind the measured server; ``null``: tensor_parallel_size x num_nodes (1 for CPU).
    gpus: int | None = None
    #: GPUs available for the full job (wall time = GPU-hours / this).
    cluster_gpus: int = 512


@dataclass
class SynthesizeConfig:
    """``python -m mind_nemo.synthesize``: corpus -> contexts -> conversations."""

    style: StyleConfig | None = None
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    chunking: ChunkConfig = field(default_factory=ChunkConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    #: Stop after this many contexts (per shard); ``null`` processes the whole corpus.
    limit: int | None = None
    output_dir: str = MISSING
    #: Shards of the corpus (by document id hash); default from SLURM array variables.
    num_shards: int | None = None
    shard_id: int | None = None
    #: Retry only the rows listed in the run's failures file.
    retry_failed: bool = False
    progress: bool = True
    projection: ProjectionConfig = field(default_factory=ProjectionConfig)


@dataclass
class MergeConfig:
    """``python -m mind_nemo.merge``: check a sharded run, publish its manifest and export."""

    run_dir: str = MISSING
    #: Write the Parquet export (one folder per style).
    export_parquet: bool = True
    rows_per_file: int = 500_000


register_schema("synthesize_schema", SynthesizeConfig)
register_schema("merge_schema", MergeConfig)
