"""``srun ... python -m mind_nemo.submit.serve --port P -- <synthesize overrides>``: one rank of a
server that spans the nodes of a SLURM allocation (340B-class generators).

Single-node servers are launched by ``synthesize`` itself. A multi-node server needs one process
per node (or per GPU) that knows its rank, and each backend forms its world differently:

- ``trtllm``: one task per GPU, all running ``trtllm-llmapi-launch trtllm-serve ...``; MPI (from
  srun) makes rank 0 the HTTP server and the others its workers;
- ``sglang``: one task per node with ``--nnodes/--node-rank/--dist-init-addr`` pointing at the
  first node;
- ``vllm``: a Ray cluster (head on the first node, workers join it), then ``vllm serve`` on the
  head with pipeline parallelism over nodes once every node has joined.

The server settings come from the same synthesize overrides the job's ``synthesize`` command uses,
so the two can never disagree about model, parallelism or context length.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mind_nemo.core.errors import UserError, exit_on_user_error
from mind_nemo.servers.commands import server_command
from mind_nemo.servers.config import ServerConfig

RAY_PORT = 6379


@dataclass
class RankPlan:
    """What one rank runs: helpers started first (left running), then ``main`` (exec'd)."""

    main: list[str]
    before: list[list[str]] = field(default_factory=list)
    #: Nodes that must have joined a Ray cluster before ``main`` starts (vLLM head only).
    wait_for_ray_nodes: int = 0


def _trtllm(cfg: ServerConfig, model: str, port: int, rank: int, head: str) -> RankPlan:
    return RankPlan(server_command(cfg, model, port))


def _sglang(cfg: ServerConfig, model: str, port: int, rank: int, head: str) -> RankPlan:
    extra = ["--node-rank", str(rank), "--dist-init-addr", f"{head}:{port + 1}"]
    return RankPlan([*server_command(cfg, model, port), *extra])


def _vllm(cfg: ServerConfig, model: str, port: int, rank: int, head: str) -> RankPlan:
    if rank > 0:
        return RankPlan(["ray", "start", f"--address={head}:{RAY_PORT}", "--block"])
    serve = [*server_command(cfg, model, port), "--distributed-executor-backend", "ray"]
    return RankPlan(
        serve, before=[["ray", "start", "--head", f"--port={RAY_PORT}"]],
        wait_for_ray_nodes=cfg.num_nodes,
    )  # fmt: skip


RANK_PLANS: dict[str, Callable[[ServerConfig, str, int, int, str], RankPlan]] = {
    "trtllm": _trtllm,
    "sglang": _sglang,
    "vllm": _vllm,
}


def tasks_per_node(cfg: ServerConfig) -> int:
    """srun tasks per node: one per GPU for TensorRT-LLM's MPI world, else one per node."""
    return cfg.gpus_per_node if cfg.type == "trtllm" else 1


def rank_plan(cfg: ServerConfig, model: str, port: int, node_rank: int, head: str) -> RankPlan:
    """This rank's commands; a server type that cannot span nodes is a one-line error."""
    if cfg.type not in RANK_PLANS:
        raise UserError(
            f"server.type={cfg.type} cannot span nodes here; use one of: {', '.join(RANK_PLANS)}"
        )
    return RANK_PLANS[cfg.type](cfg, model, port, node_rank, head)


def _server_config(overrides: list[str]) -> ServerConfig:
    from hydra import compose, initialize_config_module

    from mind_nemo.core.config import typed_config
    from mind_nemo.core.package_files import CONFIG_MODULE
    from mind_nemo.synthesize.config import SynthesizeConfig

    with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
        raw = compose(config_name="synthesize", overrides=overrides)
    return typed_config(raw, SynthesizeConfig).server


def _head_node() -> str:
    nodelist = os.environ.get("SLURM_JOB_NODELIST")
    if not nodelist:
        return socket.gethostname()
    out = subprocess.run(
        ["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, check=True
    )
    return out.stdout.split()[0]


def _wait_for_ray(nodes: int, timeout_s: float) -> None:
    import ray  # vLLM's multi-node executor; installed wherever vLLM is

    ray.init(address="auto")
    deadline = time.monotonic() + timeout_s
    while sum(1 for n in ray.nodes() if n.get("Alive")) < nodes:
        if time.monotonic() > deadline:
            raise UserError(f"only some of {nodes} nodes joined the Ray cluster in {timeout_s}s")
        time.sleep(2)
    ray.shutdown()


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mind_nemo.submit.serve")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("overrides", nargs="*", help="the synthesize overrides (after --)")
    args = parser.parse_args(argv)
    cfg = _server_config(args.overrides)
    from mind_nemo.servers.embedded_model import resolve_model_path

    rank = int(os.environ.get("SLURM_NODEID", "0"))
    plan = rank_plan(cfg, resolve_model_path(cfg.model), args.port, rank, _head_node())
    for command in plan.before:
        subprocess.run(command, check=True)
    if plan.wait_for_ray_nodes:
        _wait_for_ray(plan.wait_for_ray_nodes, cfg.startup_timeout_s)
    sys.stdout.flush()
    os.execvp(plan.main[0], plan.main)


if __name__ == "__main__":
    main()
