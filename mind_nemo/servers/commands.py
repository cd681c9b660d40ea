"""The command line that starts each kind of OpenAI-compatible server.

Kept as pure functions of the config so they are testable without a GPU: tests assert on the
argv we would run. Servers bind to ``cfg.host`` (loopback by default); we never pass a shell
string, only argument lists.
"""

from __future__ import annotations

import sys

from mind_nemo.core.errors import UserError
from mind_nemo.servers.config import ServerConfig


def transformers_serve_command(cfg: ServerConfig, model_path: str, port: int) -> list[str]:
    """``transformers serve`` with continuous batching: the embedded CPU default."""
    exe = [sys.executable, "-m", "transformers.cli.transformers"]
    cache: list[str] = []
    if cfg.kv_cache_memory_fraction:
        cache = ["--cb-max-memory-percent", str(cfg.kv_cache_memory_fraction)]
    return [
        *exe, "serve", model_path,
        "--continuous-batching", "--device", "cpu", *cache,
        "--host", cfg.host, "--port", str(port),
        *cfg.extra_args,
    ]  # fmt: skip


def vllm_command(cfg: ServerConfig, model_path: str, port: int) -> list[str]:
    """``vllm serve``; multi-node runs use pipeline parallelism across nodes (Ray)."""
    cmd = [
        "vllm", "serve", model_path,
        "--host", cfg.host, "--port", str(port),
        "--tensor-parallel-size", str(cfg.tensor_parallel_size),
        "--enable-prefix-caching",
    ]  # fmt: skip
    if cfg.num_nodes > 1:
        cmd += ["--pipeline-parallel-size", str(cfg.num_nodes)]
    if cfg.context_window:
        cmd += ["--max-model-len", str(cfg.context_window)]
    return cmd + list(cfg.extra_args)


def sglang_command(cfg: ServerConfig, model_path: str, port: int) -> list[str]:
    """SGLang's launcher; multi-node passes ``--nnodes`` (rank/address come from the launcher)."""
    cmd = [
        sys.executable, "-m", "sglang.launch_server",
        "--model-path", model_path,
        "--host", cfg.host, "--port", str(port),
        "--tp", str(cfg.tensor_parallel_size),
    ]  # fmt: skip
    if cfg.num_nodes > 1:
        cmd += ["--nnodes", str(cfg.num_nodes)]
    if cfg.context_window:
        cmd += ["--context-length", str(cfg.context_window)]
    return cmd + list(cfg.extra_args)


def trtllm_command(cfg: ServerConfig, model_path: str, port: int) -> list[str]:
    """``trtllm-serve``; across nodes it runs under ``trtllm-llmapi-launch`` (one MPI world)."""
    cmd = [
        "trtllm-serve", model_path,
        "--host", cfg.host, "--port", str(port),
        "--backend", "pytorch",
        "--tp_size", str(cfg.tensor_parallel_size),
    ]  # fmt: skip
    if cfg.context_window:
        cmd += ["--max_seq_len", str(cfg.context_window)]
    if cfg.num_nodes > 1:
        cmd = ["trtllm-llmapi-launch", *cmd]
    return cmd + list(cfg.extra_args)


BUILDERS = {
    "local": transformers_serve_command,
    "vllm": vllm_command,
    "sglang": sglang_command,
    "trtllm": trtllm_command,
}


def server_command(cfg: ServerConfig, model_path: str, port: int) -> list[str]:
    """The argv that launches ``cfg.type``; ``openai`` servers are not launched by us."""
    if cfg.type == "openai":  # type, sizes: checked by ServerConfig itself
        raise UserError("server.type=openai is an existing endpoint; nothing to launch")
    return BUILDERS[cfg.type](cfg, model_path, port)
