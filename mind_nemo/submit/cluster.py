"""Where the jobs run: a cluster config in the shape NeMo-Skills users keep for their sites.

``cluster=NAME`` picks ``hydra_configs/cluster/NAME.yaml`` (``local``, ``local_slurm``,
``example_site``); ``cluster=/path/to/site.yaml`` reads a user's own file. The fields are the ones
a NeMo-Skills cluster config has (executor, account, partition, ``job_dir``, ``containers`` per
role, ``mounts``, ``env_vars``, ``ssh_tunnel``) plus what our chain needs (requeue lead time,
held submission). :mod:`mind_nemo.submit.executors` turns it into NeMo-Run executors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mind_nemo.core.config import Checked, setting
from mind_nemo.core.errors import UserError

EXECUTORS: tuple[str, ...] = ("slurm", "local", "docker")
#: Container roles: every stage runs in ``mind_nemo``; a launched server in its own image.
CONTAINER_ROLES: tuple[str, ...] = ("mind_nemo", "vllm", "sglang", "trtllm")


@dataclass
class SSHTunnelConfig:
    """Submit from a laptop: NeMo-Run's ``SSHTunnel`` to the cluster's login node."""

    host: str = ""
    user: str = ""
    #: Where NeMo-Run keeps job scripts and logs on the cluster (a shared filesystem).
    job_dir: str = ""
    #: Private key file; ``null``: ssh's own defaults (agent, ~/.ssh/config).
    identity: str | None = None


@dataclass
class ClusterConfig(Checked):
    """One site: which executor, which account, which images, what the jobs see."""

    executor: str = setting("slurm", choices=EXECUTORS)
    account: str | None = None
    partition: str | None = None
    qos: str | None = None
    #: Job scripts and logs (NeMo-Run's experiment folders); ``null``: ``dirs.scripts``.
    job_dir: str | None = None
    #: Image per role (``mind_nemo``, ``vllm``, ``sglang``, ``trtllm``); none: no containers, the
    #: jobs run the submitter's Python where it is (a shared filesystem).
    containers: dict[str, str] = field(default_factory=dict)
    #: ``host:container`` mounts for every container: run folders, models, data.
    mounts: list[str] = field(default_factory=list)
    #: ``KEY=VALUE`` items exported in every job (NeMo-Skills' list form).
    env_vars: list[str] = field(default_factory=list)
    #: Prefix of every job name (shared-folder jobs are serialised by name: keep it stable).
    job_name_prefix: str = "mind-"
    #: ``null``: submit on this machine (NeMo-Run's ``LocalTunnel``).
    ssh_tunnel: SSHTunnelConfig | None = None
    #: Interpreter of container-less jobs; ``null``: the one running the submitter.
    python: str | None = None
    #: Working directory of container-less jobs; ``null``: where the submitter runs.
    workdir: str | None = None
    #: Shell lines at the top of every job, on the node (``module load ...``).
    setup: list[str] = field(default_factory=list)
    #: Seconds before the time limit at which a synthesize task stops and is requeued.
    signal_lead_s: int = setting(300, ge=0)
    #: NeMo-Run retries: a synthesize task that stopped (time limit) or failed is requeued this
    #: many times; every other job fails the chain at once.
    requeue_limit: int = setting(3, ge=0)
    #: Submit every job held (``scontrol release`` starts them); for inspecting a chain.
    hold: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        unknown = sorted(set(self.containers) - set(CONTAINER_ROLES))
        if unknown:
            raise UserError(
                f"cluster.containers: unknown role(s) {', '.join(unknown)}; "
                f"use {', '.join(CONTAINER_ROLES)}"
            )

        for item in self.env_vars:
            if "=" not in item or not item.split("=", 1)[0].isidentifier():
                raise UserError(f"cluster.env_vars: {item!r} is not KEY=VALUE")

    def image(self, role: str) -> str | None:
        return self.containers.get(role)

    def env(self) -> dict[str, str]:
        return dict(item.split("=", 1) for item in self.env_vars)


def is_cluster_file(choice: str) -> bool:
    """``cluster=...`` names a file (not a group option) when it looks like a path."""
    return "/" in choice or choice.endswith((".yaml", ".yml"))


def read_cluster_file(path: str) -> DictConfig:
    """A user's cluster YAML, checked against :class:`ClusterConfig` (a typo is one line)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(f"cluster={path}: no such file")
    try:
        loaded: Any = OmegaConf.load(file)
        merged = OmegaConf.merge(OmegaConf.structured(ClusterConfig), loaded)
    except Exception as err:  # OmegaConf raises several types for a bad key or value
        first = str(err).strip().splitlines()[0]
        raise UserError(f"cluster={path}: {first}") from None
    assert isinstance(merged, DictConfig)
    return merged
