"""Jobs onto NeMo-Run executors: a cluster config and one job's resources, nothing else.

Slurm jobs get a ``SlurmExecutor`` (``LocalTunnel`` on this machine, ``SSHTunnel`` with
``cluster.ssh_tunnel``), its pyxis flags from ``cluster.containers``/``mounts``, the array,
signal and retries of the job; a job of several steps (a server and its client) becomes a group
of executors, one per step, each in its own image. ``executor=local`` is NeMo-Run's
``LocalExecutor``; ``executor=docker`` its ``DockerExecutor``.
"""

from __future__ import annotations

import shutil
from typing import Any

from mind_nemo.core.errors import UserError
from mind_nemo.submit.cluster import ClusterConfig
from mind_nemo.submit.plan import Job, Step


def nemo_run() -> Any:
    """``import nemo_run``, or one line saying how to install it."""
    try:
        import nemo_run  # type: ignore[import-untyped]  # ships no type hints
    except ImportError as err:
        raise UserError(
            f"NeMo-Run does not import here ({err}); `make install` installs the pinned "
            "nemo-run and leptonai"
        ) from None
    return nemo_run


def tunnel(cluster: ClusterConfig, job_dir: str) -> Any:
    run = nemo_run()
    ssh = cluster.ssh_tunnel
    if ssh is None or not ssh.host:
        return run.LocalTunnel(job_dir=job_dir)
    if not (ssh.user and ssh.job_dir):
        raise UserError("cluster.ssh_tunnel needs host, user and job_dir")
    return run.SSHTunnel(host=ssh.host, user=ssh.user, job_dir=ssh.job_dir,
                         identity=ssh.identity)  # fmt: skip


def slurm_executor(
    cluster: ClusterConfig, job: Job, step: Step, job_dir: str, *, first: bool
) -> Any:
    """One step's ``SlurmExecutor``; the job-wide flags (array, signal, ...) on every one, as
    NeMo-Run renders the ``#SBATCH`` lines from the first executor of a group."""
    run = nemo_run()
    res = job.resources
    extra: dict[str, Any] = {}
    for flag in res.extra:
        key, _, value = flag.removeprefix("--").partition("=")  # checked by Resources
        extra[key] = value or True
    if cluster.hold:
        extra["hold"] = True
    if job.singleton and first:  # later jobs: singleton joins afterok (dependency_type)
        extra["dependency"] = "singleton"
    image = cluster.image(step.role)
    if step.role != "mind_nemo" and image is None and cluster.containers:
        raise UserError(f"cluster.containers has no {step.role} image for the server step")
    return run.SlurmExecutor(
        account=res.account or cluster.account,
        partition=res.partition or cluster.partition,
        qos=res.qos or cluster.qos,
        time=res.time or "04:00:00",
        nodes=res.nodes,
        ntasks_per_node=res.ntasks_per_node,
        cpus_per_task=res.cpus_per_task,
        gpus_per_node=res.gpus_per_node or None,
        mem=res.mem,
        exclusive=res.exclusive or None,
        array=job.array,
        signal=job.signal,
        retries=job.retries,
        container_image=image,
        container_mounts=list(cluster.mounts) if image else [],
        srun_args=list(step.srun_args),
        env_vars={**cluster.env(), **job.env},
        setup_lines="\n".join([*cluster.setup, *job.setup]) or None,
        additional_parameters=extra or None,
        dependency_type="singleton,afterok" if job.singleton else "afterok",
        job_name_prefix=cluster.job_name_prefix,
        tunnel=tunnel(cluster, job_dir),
        packager=run.Packager(),  # the code is in the image, or on the shared filesystem
        wait_time_for_group_job=5,
        monitor_group_job_wait_time=5,
        poll_estimated_start_time=False,
    )


def local_executor(job: Job, env: dict[str, str]) -> Any:
    run = nemo_run()
    return run.LocalExecutor(env_vars=env)


def docker_executor(cluster: ClusterConfig, job: Job, job_dir: str) -> Any:
    """Docker on this machine: every stage in the ``mind_nemo`` image."""
    if shutil.which("docker") is None:
        raise UserError("executor=docker: docker is not installed here")
    image = cluster.image("mind_nemo")
    if image is None:
        raise UserError("executor=docker needs cluster.containers.mind_nemo (an image)")
    run = nemo_run()
    return run.DockerExecutor(
        container_image=image,
        num_gpus=job.resources.gpus_per_node or None,
        volumes=list(cluster.mounts),
        env_vars=cluster.env(),
        job_dir=job_dir,
        packager=run.Packager(),
    )
