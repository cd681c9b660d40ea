"""A plan as one NeMo-Run experiment: one task per job, each after the one before it.

``submit`` adds every job to a ``nemo_run.Experiment`` with ``dependencies`` on the previous task
(NeMo-Run renders ``--dependency=afterok:ID``) and runs it detached; the job ids go to
``<runs>/<name>/chain.json``. ``dry_run`` prepares the same experiment and prints what NeMo-Run
would submit: each sbatch script and the step scripts it runs, kept in the job folder so that
``sbatch`` can submit them unchanged. ``run_local`` runs the stages here with ``LocalExecutor``
(or ``DockerExecutor``).
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

from mind_nemo.core.errors import UserError
from mind_nemo.core.jsonl import write_json_atomic
from mind_nemo.core.tables import format_table
from mind_nemo.submit.config import SubmitConfig
from mind_nemo.submit.executors import (
    docker_executor,
    local_executor,
    nemo_run,
    slurm_executor,
)
from mind_nemo.submit.plan import Job, executor_of, shell


def job_dir(cfg: SubmitConfig) -> str | None:
    """NeMo-Run's experiment folders here; its local tunnel submits from the same ones. Over
    SSH they stay in NeMo-Run's home here (None) and are copied to ``ssh_tunnel.job_dir``."""
    if cfg.cluster.ssh_tunnel is not None and cfg.cluster.ssh_tunnel.host:
        return None
    return os.path.join(cfg.cluster.job_dir or cfg.dirs.scripts, "experiments")


def _experiment(cfg: SubmitConfig) -> Any:
    folder = job_dir(cfg)
    return nemo_run().Experiment(
        f"mind-{cfg.name}", base_dir=os.path.dirname(folder) if folder else None, log_level="WARN",
        enable_goodbye_message=False, skip_status_at_exit=True,
        serialize_metadata_for_scripts=False,
    )  # fmt: skip


def _add_jobs(exp: Any, cfg: SubmitConfig, jobs: list[Job]) -> None:
    """Every job as a task of ``exp`` (entered), each depending on the one before it."""
    run = nemo_run()
    folder = job_dir(cfg) or ""
    kind = executor_of(cfg)
    previous: list[str] = []
    for index, job in enumerate(jobs):
        tasks = [run.Script(inline=step.script) for step in job.steps]
        if kind == "slurm":
            executors = [slurm_executor(cfg.cluster, job, s, folder, first=index == 0)
                         for s in job.steps]  # fmt: skip
        else:  # here or in Docker: the stage's commands one after another (shards in turn)
            lines = ["set -euo pipefail"]
            if kind == "local":
                lines.append(f"cd {shlex.quote(cfg.cluster.workdir or os.getcwd())}")
            tasks = [run.Script(inline="\n".join([*lines, *(shell(a) for a in job.local)]))]
            executors = [
                local_executor(job, cfg.cluster.env()) if kind == "local"
                else docker_executor(cfg.cluster, job, folder)
            ]  # fmt: skip
        task = tasks[0] if len(tasks) == 1 else tasks
        executor = executors[0] if len(executors) == 1 else executors
        previous = [exp.add(task, executor=executor, name=job.name, dependencies=previous)]


def _requests(exp: Any) -> list[Any]:
    """What NeMo-Run would submit, one request per job (after ``dryrun``)."""
    found = []
    for job in exp.jobs:
        infos = getattr(job, "_dryrun_infos", None) or [job._dryrun_info]
        found.append(infos[0].request)
    return found


def print_dry_run(cfg: SubmitConfig, jobs: list[Job]) -> None:
    """Every sbatch script NeMo-Run renders, then the step scripts it runs; nothing submitted."""
    if executor_of(cfg) != "slurm":
        for job in jobs:
            print(f"# ===== {job.task_name}: {len(job.local)} command(s) here")
            print("\n".join(shell(argv) for argv in job.local))
    else:
        with _experiment(cfg) as exp:
            _add_jobs(exp, cfg, jobs)
            exp.dryrun(log=False, delete_exp_dir=False)
            for job, request in zip(jobs, _requests(exp), strict=True):
                folder = Path(request.executor.job_dir)
                after = f" (sbatch --dependency=afterok:<{jobs[jobs.index(job) - 1].task_name}>)"
                print(f"# ===== {job.task_name} -> {folder}{after if job is not jobs[0] else ''}")
                print(request.materialize())
                for script in sorted((folder / "scripts").glob("*.sh")):
                    print(f"# ----- step script {script} (/nemo_run/scripts/{script.name})")
                    print(script.read_text())
    print(format_table(["stage", "job name", "steps", "array", "notes"],
                       [[j.stage, j.name, len(j.steps), j.array or "-",
                         "; ".join(j.notes) or "-"] for j in jobs]))  # fmt: skip
    print(f"dry run: nothing submitted ({len(jobs)} job(s) of experiment {cfg.name})")


def _slurm_id(handle: str) -> str:
    """The job id in a NeMo-Run Slurm handle (``slurm://<exp>/<id>/...``, as its parse_deps)."""
    return handle.partition("://")[2].split("/")[1]


def submit(cfg: SubmitConfig, jobs: list[Job]) -> list[dict[str, Any]]:
    """Launch the experiment detached; record and print the chain of job ids."""
    with _experiment(cfg) as exp:
        _add_jobs(exp, cfg, jobs)
        exp.run(detach=True)
        handles = [getattr(j, "handle", None) or j.handles[0] for j in exp.jobs]
    chain: list[dict[str, Any]] = []
    for job, handle, nr_job in zip(jobs, handles, exp.jobs, strict=True):
        executor = nr_job.executor if hasattr(nr_job, "executor") else nr_job.executors[0]
        script = os.path.join(executor.experiment_dir, f"{job.name}_sbatch.sh")
        chain.append({"stage": job.stage, "job_id": _slurm_id(handle), "name": job.name,
                      "logs": executor.job_dir, "script": script,
                      "after": [chain[-1]["job_id"]] if chain else []})  # fmt: skip
    write_json_atomic(Path(cfg.dirs.root) / "chain.json", {"experiment": cfg.name, "jobs": chain})
    print(format_table(["stage", "job id", "after", "logs"],
                       [[c["stage"], c["job_id"], ",".join(c["after"]) or "-", c["logs"]]
                        for c in chain]))  # fmt: skip
    held = " (held: scontrol release <ids>)" if cfg.cluster.hold else ""
    print(f"submitted {len(chain)} job(s) of experiment {cfg.name} through NeMo-Run{held}")
    return chain


def run_local(cfg: SubmitConfig, jobs: list[Job]) -> None:
    """Every stage here, one after another (``LocalExecutor``, or ``DockerExecutor`` in the
    ``mind_nemo`` image); the first failure stops.

    One experiment per stage: NeMo-Run's local DAG goes on to the next task after a failed one,
    and a stage must not start on its predecessor's half-written output."""
    for job in jobs:
        if not job.local:
            raise UserError(f"stage {job.stage}: {'; '.join(job.notes)}")
    for job in jobs:
        with _experiment(cfg) as exp:
            _add_jobs(exp, cfg, [job])
            exp.run(tail_logs=True)
        state = exp.jobs[0].state  # the experiment waited for it on leaving the block
        if getattr(state, "name", str(state)) != "SUCCEEDED":
            raise UserError(
                f"stage {job.stage} ended {getattr(state, 'name', state)}; fix it and rerun the "
                f"same command with stages=[{job.stage},...] to go on (finished work is kept)"
            )
