"""``python -m mind_nemo.submit experiment=NAME [cluster=NAME|PATH] [overrides]``: one command per
paper experiment.

Plans every stage of an experiment (synthesize job array, merge, filter, mix, pretrain,
evaluate) and launches them through NeMo-Run as one experiment: on a cluster as a chain (each job
starts when the previous one succeeded: ``afterok``), here one after another (``executor=local``),
or only prints what would be submitted (``dry_run=true``). Experiments are the files in
``hydra_configs/experiment/``; the paths a user must set are ``paths.*``.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from mind_nemo.core.cli import CONFIG_PATH, run_hydra_main
from mind_nemo.core.errors import UserError, exit_on_user_error
from mind_nemo.core.package_files import config_folder
from mind_nemo.submit.cluster import is_cluster_file
from mind_nemo.submit.launch import print_dry_run, run_local, submit
from mind_nemo.submit.plan import Job, build_plan, executor_of, load_config


@exit_on_user_error
def run_submit(raw: DictConfig) -> list[Job]:
    cfg = load_config(raw)  # executor, stages, resources: checked by SubmitConfig
    jobs = build_plan(cfg)
    if not jobs:
        raise UserError("no stage selected (all disabled, or stages=[...] names none of them)")
    if cfg.dry_run:
        print_dry_run(cfg, jobs)
    elif executor_of(cfg) == "slurm":
        submit(cfg, jobs)
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
    # cluster=/path/site.yaml: a user's own file, read by load_config (not a group option).
    sys.argv[1:] = [f"cluster_file={a[8:]}" if a.startswith("cluster=") and is_cluster_file(a[8:])
                    else a for a in sys.argv[1:]]  # fmt: skip
    run_hydra_main("submit", main)
