"""``mix.tasks`` > 1: submit makes the mix a job array of tokenize shards, then one finalize job.

The plan's jobs carry the launcher's mix overrides (``step=shard``/``step=finalize`` with
``num_shards``); the SLURM dry run shows the array and the finalize job ``afterok`` on it, and
pretrain ``afterok`` on the finalize. ``mix.tasks`` left at 1 keeps the one job of before.
tests/mix/test_slurm.py submits the same chain on the one-node cluster and compares bytes.
"""

from __future__ import annotations

import sys

import pytest

from mind_nemo.core.errors import UserError
from mind_nemo.submit.plan import Job
from tests.submit.helpers import dry_run_chain
from tests.submit.test_experiments import PATHS
from tests.submit.test_filter_chain import exec_line, plan_jobs

MIX = "/lustre/mind/owm4b_longest/mix"


def mix_jobs(*overrides: str) -> list[Job]:
    jobs = plan_jobs("experiment=owm4b_longest", *PATHS, "stages=[mix]", *overrides)
    return [j for j in jobs if j.stage == "mix"]


def test_one_mix_job_by_default():
    (job,) = mix_jobs()
    assert job.array is None and job.part is None and not job.singleton
    assert job.name == "mix-owm4b_longest"
    assert not any(a.startswith(("step=", "num_shards=", "shard_id=")) for a in job.local[0])


def test_tasks_make_a_shard_array_then_one_finalize():
    jobs = mix_jobs("mix.tasks=4", "mix.max_parallel=2")
    assert [(j.part, j.array) for j in jobs] == [("shard", "0-3%2"), ("finalize", None)]
    assert [j.name for j in jobs] == ["mix-owm4b_longest-shard", "mix-owm4b_longest-finalize"]
    shard, final = (exec_line(j) for j in jobs)
    assert shard.startswith(f"exec {sys.executable} -m mind_nemo.mix output_dir={MIX} ")
    assert shard.endswith(" step=shard num_shards=4 shard_id=${SLURM_ARRAY_TASK_ID}")
    # finalize merges all four shards: it is told num_shards=4, not 1
    assert final == shard.replace("step=shard", "step=finalize").replace(
        "${SLURM_ARRAY_TASK_ID}", "0"
    )
    # executor=local: each task is a command of its own, then the finalize
    assert [a[-3:] for a in jobs[0].local] == [
        ["step=shard", "num_shards=4", f"shard_id={i}"] for i in range(4)
    ]
    assert len(jobs[1].local) == 1


def test_tasks_with_a_pinned_step_is_refused():
    with pytest.raises(UserError, match="mix.tasks sets the mix's step, num_shards and shard_id"):
        mix_jobs("mix.tasks=2", "mix.extra_overrides=['num_shards=5']")


def test_slurm_dry_run_shows_the_array_and_the_finalize_afterok(tmp_path):
    result, heads, after = dry_run_chain(
        tmp_path, "experiment=owm4b_longest", *PATHS, "stages=[mix,pretrain]", "mix.tasks=3"
    )
    names = ["3-mix-shard", "3-mix-finalize", "4-pretrain"]
    assert heads == names
    assert after == [None, *names[:-1]]
    assert result.stdout.count("#SBATCH --array=0-2") == 1
    assert "step=shard num_shards=3 shard_id=${SLURM_ARRAY_TASK_ID}" in result.stdout
    assert "step=finalize num_shards=3 shard_id=0" in result.stdout
    assert "dry run: nothing submitted (3 job(s)" in result.stdout
