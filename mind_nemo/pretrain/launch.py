"""Launch commands rendered from the same config that trains: local, torchrun, SLURM sbatch.

``python -m mind_nemo.pretrain ... launch.type=slurm launch.nodes=4`` prints an sbatch script
built here; submitted, it runs three steps inside one allocation:

1. ``step=convert`` on one task when there is a base: a Hugging Face folder becomes, once, a
   Megatron checkpoint every rank can reshard (a Megatron base needs nothing; the step says so).
2. one ``torchrun`` per node via ``srun --ntasks-per-node=1``; the rendezvous is the first host
   of the allocation (``scontrol show hostnames``) and the job id, so nothing is hard-coded.
3. ``step=export`` on one task: the final checkpoint as a Hugging Face folder.

Every step gets the user's overrides unchanged (minus ``launch.*``), so the job trains exactly
the config that rendered it; rerunning the script resumes from the latest checkpoint.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from mind_nemo.pretrain.config import PretrainConfig


def passthrough(overrides: Sequence[str]) -> list[str]:
    """The user's overrides for the steps inside the job (launch settings stay outside)."""
    keep = []
    for item in overrides:
        key = item.lstrip("+~").split("=", 1)[0]
        if key == "launch" or key.startswith("launch.") or key == "step":
            continue
        keep.append(item)
    return keep


def _needs_convert(cfg: PretrainConfig) -> bool:
    """Any base may be a Hugging Face folder (``step=convert`` is a no-op for a Megatron one)."""
    return cfg.base_checkpoint not in (None, "null")


def stage_command(cfg: PretrainConfig, overrides: Sequence[str], step: str) -> list[str]:
    """``python -m mind_nemo.pretrain <overrides> step=<step>`` for one process."""
    return [cfg.launch.python, "-m", "mind_nemo.pretrain", *passthrough(overrides), f"step={step}"]


def torchrun_command(cfg: PretrainConfig, overrides: Sequence[str], rendezvous: str) -> list[str]:
    """One node's torchrun: ``gpus_per_node`` training processes joining ``rendezvous``."""
    launch = cfg.launch
    return [
        launch.python, "-m", "torch.distributed.run",
        f"--nnodes={launch.nodes}",
        f"--nproc-per-node={launch.gpus_per_node}",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint={rendezvous}",
        "--rdzv-id=${SLURM_JOB_ID:-mind}",
        "-m", "mind_nemo.pretrain", *passthrough(overrides), "step=train",
    ]  # fmt: skip


def local_commands(cfg: PretrainConfig, overrides: Sequence[str]) -> list[list[str]]:
    """On this machine: one process (CPU, one GPU), or convert + torchrun standalone + export."""
    if cfg.launch.gpus_per_node <= 1:
        return [stage_command(cfg, overrides, "auto")]
    run = torchrun_command(cfg, overrides, "localhost:0")
    run[2:7] = ["--standalone", f"--nproc-per-node={cfg.launch.gpus_per_node}"]
    steps = [stage_command(cfg, overrides, "convert")] if _needs_convert(cfg) else []
    return [*steps, run, stage_command(cfg, overrides, "export")]


def _shell(args: Sequence[str]) -> str:
    """Quote for bash, leaving ``${VAR}`` / ``$VAR`` references for the job's shell."""
    return " ".join(a if "$" in a and "'" not in a else shlex.quote(a) for a in args)


def render_sbatch(cfg: PretrainConfig, overrides: Sequence[str]) -> str:
    """The sbatch script for ``cfg`` (see the module docstring)."""
    launch = cfg.launch
    sbatch = [
        f"--job-name={launch.job_name}",
        f"--nodes={launch.nodes}",
        "--ntasks-per-node=1",
        f"--gpus-per-node={launch.gpus_per_node}",
        f"--time={launch.time}",
        f"--output={cfg.output_dir}/slurm-%j.out",
    ]
    if launch.partition:
        sbatch.append(f"--partition={launch.partition}")
    if launch.account:
        sbatch.append(f"--account={launch.account}")
    sbatch += launch.extra_sbatch
    one = "srun --nodes=1 --ntasks=1 --gpus-per-node=1"
    lines = ["#!/usr/bin/env bash", *(f"#SBATCH {s}" for s in sbatch)]
    lines += [
        f"# Rendered by mind_nemo.pretrain from: {_shell(overrides)}",
        "# Submit again to resume from the latest checkpoint.",
        "set -euo pipefail",
        *launch.setup,
        f"mkdir -p {shlex.quote(cfg.output_dir)}",
        # sed, not head: head exits early and pipefail turns scontrol's SIGPIPE into a failure
        'MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | sed -n 1p)',
        f"MASTER_PORT={launch.rdzv_port}",
        "export MASTER_ADDR MASTER_PORT",
    ]
    if _needs_convert(cfg):
        lines.append(f"{one} {_shell(stage_command(cfg, overrides, 'convert'))}")
    run = torchrun_command(cfg, overrides, "${MASTER_ADDR}:${MASTER_PORT}")
    lines.append(f"srun --nodes={launch.nodes} --ntasks-per-node=1 {_shell(run)}")
    lines.append(f"{one} {_shell(stage_command(cfg, overrides, 'export'))}")
    return "\n".join(lines) + "\n"
