"""``python -m mind_nemo.submit experiment=NAME [overrides]``: one command per paper experiment.

Renders every stage of an experiment (synthesize job array, merge, filter, mix, pretrain,
evaluate) and either submits them to SLURM as one chain (each job starts when the previous one
succeeded: ``--dependency=afterok``), runs them here one after another (``executor=local``), or
only prints the scripts and commands (``dry_run=true``). Experiments are the files in
``hydra_configs/experiment/``; the paths a user must set are ``paths.*``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from mind_nemo.core.cli import CONFIG_PATH, run_hydra_main
from mind_nemo.core.errors import UserError, exit_on_user_error
from mind_nemo.core.jsonl import write_atomic, write_json_atomic
from mind_nemo.core.package_files import config_folder
from mind_nemo.core.tables import format_table
from mind_nemo.submit.config import SubmitConfig
from mind_nemo.submit.plan import Job, build_plan, load_config
from mind_nemo.submit.sbatch import require_sbatch, submit


def print_dry_run(cfg: SubmitConfig, jobs: list[Job]) -> None:
    for job in jobs:
        print(f"# ===== {job.script_name} -> {cfg.dirs.scripts}/{job.script_name}")
        print(job.script)
    print(format_table(["stage", "job name", "local commands", "notes"],
                       [[j.stage, j.name, len(j.local), "; ".join(j.notes) or "-"]
                        for j in jobs]))  # fmt: skip
    print(f"dry run: nothing submitted ({len(jobs)} stage(s) of experiment {cfg.name})")


def submit_chain(cfg: SubmitConfig, jobs: list[Job]) -> list[dict[str, Any]]:
    """Write the scripts, submit them in order, each after the previous one succeeded."""
    require_sbatch()
    scripts, logs = Path(cfg.dirs.scripts), Path(cfg.dirs.logs)
    scripts.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)  # SLURM does not create the log folder
    chain: list[dict[str, Any]] = []
    previous: list[str] = []
    for job in jobs:
        path = scripts / job.script_name
        write_atomic(path, job.script)
        job_id = submit(path, after=previous, singleton=job.singleton, hold=cfg.slurm.hold)
        chain.append({"stage": job.stage, "job_id": job_id, "name": job.name, "script": str(path),
                      "after": list(previous)})  # fmt: skip
        previous = [job_id]
    write_json_atomic(Path(cfg.dirs.root) / "chain.json", {"experiment": cfg.name, "jobs": chain})
    print(format_table(["stage", "job id", "after", "script"],
                       [[c["stage"], c["job_id"], ",".join(c["after"]) or "-", c["script"]]
                        for c in chain]))  # fmt: skip
    held = " (held: scontrol release <ids>)" if cfg.slurm.hold else ""
    print(f"submitted {len(chain)} job(s) of experiment {cfg.name}{held}; logs: {logs}")
    return chain


def run_local(cfg: SubmitConfig, jobs: list[Job]) -> None:
    """Every stage here, one after another; the first failure stops the chain."""
    workdir = cfg.slurm.workdir or os.getcwd()
    for job in jobs:
        if not job.local:
            raise UserError(f"stage {job.stage}: {'; '.join(job.notes)}")
        for argv in job.local:
            print(f"[mind_nemo] {job.stage}: {' '.join(argv[1:])}", flush=True)
            status = subprocess.run(argv, cwd=workdir, check=False).returncode
            if status != 0:
                raise UserError(
                    f"stage {job.stage} failed (exit {status}); fix it and rerun the same "
                    f"command with stages=[{job.stage},...] to go on (finished work is kept)"
                )


@exit_on_user_error
def run_submit(raw: DictConfig) -> list[Job]:
    cfg = load_config(raw)  # executor, stages, resources: checked by SubmitConfig
    jobs = build_plan(cfg)
    if not jobs:
        raise UserError("no stage selected (all disabled, or stages=[...] names none of them)")
    if cfg.dry_run:
        print_dry_run(cfg, jobs)
    elif cfg.executor == "slurm":
        submit_chain(cfg, jobs)
    else:
        run_local(cfg, jobs)
        print(f"experiment {cfg.name}: {len(jobs)} stage(s) done; runs under {cfg.dirs.root}")
    return jobs


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="submit")
def main(cfg: DictConfig) -> None:
    run_submit(cfg)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--list":
        folder = config_folder().joinpath("experiment")
        print("\n".join(sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))))
        sys.exit(0)
    run_hydra_main("submit", main)
