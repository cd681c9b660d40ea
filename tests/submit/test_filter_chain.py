"""``filter.tasks`` > 1: submit chains the filter's bounded-memory dedup steps as job arrays.

Dry runs check the five jobs (shard, bucket, cluster, apply, finalize), their array sizes, the
``afterok`` chain and the exact commands; ``filter.tasks`` left at 1 keeps the one job of
before. The SLURM test submits the chain through ``python -m mind_nemo.submit`` on the one-node
cluster, held, checks SLURM's record of each job's ``afterok`` on the one before, releases
it and compares the filtered run, byte for byte, with one single-process filter run; it
skips, with the reason, where no SLURM node takes jobs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

import mind_nemo.submit.config  # noqa: F401  (registers the submit schema)
from mind_nemo.core.errors import UserError
from mind_nemo.submit.plan import Job, build_plan, load_config
from tests.filter.test_dedup_scalable import (
    ONLY_DEDUP,
    assert_same_as_one_memory_run,
    planted_run,
)
from tests.helpers import REPO
from tests.submit.helpers import dry_run_chain, queue_empty, slurm_problem, wait_for
from tests.submit.test_experiments import PATHS
from tests.submit.test_slurm_synthesize import job_records

RUN = "/lustre/mind/synthesize/owm4b-all"
OUT = f"{RUN}-filtered"


def plan_jobs(*overrides: str) -> list[Job]:
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module("mind_nemo.hydra_configs", version_base="1.3"):
            return build_plan(load_config(compose("submit", overrides=list(overrides))))
    finally:
        GlobalHydra.instance().clear()


def filter_jobs(*overrides: str) -> list[Job]:
    return [j for j in plan_jobs("experiment=owm4b_longest", *PATHS, *overrides)
            if j.stage == "filter"]  # fmt: skip


def exec_line(job: Job) -> str:
    (step,) = job.steps
    return step.script.splitlines()[-1]


def test_one_filter_job_by_default():
    (job,) = filter_jobs()
    assert job.array is None and job.part is None and job.singleton
    assert job.name == "filter-owm4b-all-filtered"
    assert not any(a.startswith(("step=", "dedup.mode=")) for a in job.local[0])


def test_tasks_chain_the_five_dedup_steps_with_their_array_sizes():
    jobs = filter_jobs("filter.tasks=16", "filter.extra_overrides=['dedup.ranges=8']")
    assert [j.part for j in jobs] == ["shard", "bucket", "cluster", "apply", "finalize"]
    assert [j.array for j in jobs] == ["0-15", "0-7", None, "0-15", None]  # bucket: <= ranges
    assert [j.name for j in jobs] == [f"filter-owm4b-all-filtered-{j.part}" for j in jobs]
    assert all(j.singleton for j in jobs)  # another chain sharing the folder waits its turn
    base = (f"exec {sys.executable} -m mind_nemo.filter run_dir={RUN} output_dir={OUT} "
            "progress=false filter=paper dedup.ranges=8 dedup.mode=scalable")  # fmt: skip
    task = "shard_id=${SLURM_ARRAY_TASK_ID}"
    assert [exec_line(j) for j in jobs] == [
        f"{base} step=shard num_shards=16 {task}",
        f"{base} step=bucket num_shards=8 {task}",
        f"{base} step=cluster num_shards=1 shard_id=0",
        f"{base} step=apply num_shards=16 {task}",
        f"{base} step=finalize num_shards=1 shard_id=0",
    ]
    # Here (executor=local) every task is a command of its own, in order.
    assert [len(j.local) for j in jobs] == [16, 8, 1, 16, 1]
    assert jobs[1].local[7][-3:] == ["step=bucket", "num_shards=8", "shard_id=7"]


def test_max_parallel_and_pinned_memory_mode():
    jobs = filter_jobs("filter.tasks=4", "filter.max_parallel=2",
                       "filter.extra_overrides=['dedup.mode=memory']")  # fmt: skip
    assert [(j.part, j.array) for j in jobs] == [("shard", "0-3%2"), ("finalize", None)]
    assert exec_line(jobs[0]).count("dedup.mode=") == 1  # the experiment's, not a second one


def test_tasks_with_a_step_override_is_refused():
    with pytest.raises(UserError, match="filter.tasks sets the filter's step"):
        filter_jobs("filter.tasks=4", "filter.extra_overrides=['step=shard']")


def test_slurm_dry_run_chains_each_step_afterok_on_the_one_before(tmp_path):
    result, heads, after = dry_run_chain(
        tmp_path, "experiment=owm4b_longest", *PATHS, "stages=[merge,filter,mix]", "filter.tasks=3"
    )
    names = ["1-merge", "2-filter-shard", "2-filter-bucket", "2-filter-cluster",
             "2-filter-apply", "2-filter-finalize", "3-mix"]  # fmt: skip
    assert heads == names
    assert after == [None, *names[:-1]]
    assert result.stdout.count("#SBATCH --array=0-2") == 3
    assert "dry run: nothing submitted (7 job(s)" in result.stdout


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.skipif(slurm_problem() is not None, reason=str(slurm_problem()))
def test_submitted_filter_chain_equals_one_process(tmp_path):
    run = planted_run(tmp_path / "run")
    out = tmp_path / "filtered"
    overrides = ",".join(f"'{o}'" for o in ["dedup.ranges=8", *ONLY_DEDUP])
    result = subprocess.run(
        [sys.executable, "-m", "mind_nemo.submit", "experiment=quickstart", "name=fchain",
         f"paths.runs={tmp_path / 'runs'}", f"dirs.synthesize={run}", f"dirs.filter={out}",
         "stages=[filter]", "filter.tasks=3", f"filter.overrides=[{overrides}]",
         "executor=slurm", "cluster=local_slurm", "cluster.hold=true"],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    chain = json.loads((tmp_path / "runs" / "fchain" / "chain.json").read_text())["jobs"]
    ids = [job["job_id"] for job in chain]
    assert [job["name"].rsplit("-", 1)[1] for job in chain] == [
        "shard", "bucket", "cluster", "apply", "finalize",
    ]  # fmt: skip
    try:  # held: SLURM's own record of each job's dependencies, before anything runs
        for number, job_id in enumerate(ids):
            dependency = job_records(job_id)[0]["Dependency"]
            assert "singleton" in dependency, dependency
            assert number == 0 or f"afterok:{ids[number - 1]}" in dependency, dependency
    finally:
        subprocess.run(["scontrol", "release", *ids], check=False)
    wait_for(lambda: queue_empty(ids), "the filter chain", timeout_s=900)
    logs = {job["name"]: sorted(Path(job["logs"]).glob("sbatch_*.out")) for job in chain}
    text = "".join(p.read_text() for files in logs.values() for p in files)
    assert (out / "manifest.json").is_file(), text[-4000:]
    # every task of each array ran (one batch log per task), the single jobs once
    assert [len(files) for files in logs.values()] == [3, 3, 1, 3, 1], text[-4000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["dedup"]["mode"] == "scalable"
    assert_same_as_one_memory_run(run, out, tmp_path)
