"""The scalable dedup's job-array steps on a real SLURM equal the single-process result.

Three array tasks filter a run with planted duplicates through ``step=shard`` (pass 1 and the
band buckets), ``step=bucket`` (hash ranges), one ``step=cluster``, ``step=apply`` and one
``step=finalize``, each submitted with ``sbatch`` and chained with ``afterok``; the final
conversations and rejects must be byte-identical to one in-memory ``step=all`` run. It skips,
with the reason, where no SLURM controller answers (``launchers/slurm/local_cluster.sh up``).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.filter.test_dedup_scalable import (
    ONLY_DEDUP,
    assert_same_as_one_memory_run,
    planted_run,
)
from tests.helpers import REPO
from tests.submit.helpers import queue_empty, slurm_problem, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(slurm_problem() is not None, reason=str(slurm_problem())),
]
TASKS = 3


def sbatch(logs, name: str, command: str, *, array: bool, after: str | None = None) -> str:
    args = ["sbatch", "--parsable", f"--job-name={name}", "--cpus-per-task=1", "--time=00:15:00"]
    args += [f"--output={logs}/{name}-%A_%a.out" if array else f"--output={logs}/{name}-%j.out"]
    if array:
        args.append(f"--array=0-{TASKS - 1}")
    if after:
        args.append(f"--dependency=afterok:{after}")
    args += ["--wrap", command]
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, check=True)
    return done.stdout.strip().split(";")[0]


def test_filter_dedup_array_steps_equal_single_process(tmp_path):
    run = planted_run(tmp_path / "run")
    out, logs = tmp_path / "array", tmp_path / "logs"
    logs.mkdir()
    settings = [f"run_dir={run}", f"output_dir={out}", "progress=false", "dedup.ranges=8"]
    overrides = " ".join([*settings, "dedup.mode=scalable", *ONLY_DEDUP])
    stage = f"env TQDM_DISABLE=1 HF_HUB_OFFLINE=1 {sys.executable} -m mind_nemo.filter {overrides}"
    jobs = [sbatch(logs, "filter-shard", f"{stage} step=shard", array=True)]
    jobs.append(sbatch(logs, "filter-bucket", f"{stage} step=bucket", array=True, after=jobs[-1]))
    cluster = f"{stage} step=cluster num_shards=1"
    jobs.append(sbatch(logs, "filter-cluster", cluster, array=False, after=jobs[-1]))
    jobs.append(sbatch(logs, "filter-apply", f"{stage} step=apply", array=True, after=jobs[-1]))
    final = f"{stage} step=finalize num_shards=1"
    jobs.append(sbatch(logs, "filter-finalize", final, array=False, after=jobs[-1]))
    wait_for(lambda: queue_empty(jobs), "the filter jobs", timeout_s=900)

    text = "\n".join(f"== {p.name}\n{p.read_text()}" for p in sorted(logs.glob("*.out")))
    assert (out / "manifest.json").is_file(), text[-4000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["dedup"]["mode"] == "scalable"
    assert len(list(logs.glob("filter-bucket-*.out"))) == TASKS, text[-4000:]
    assert len(list(logs.glob("filter-apply-*.out"))) == TASKS, text[-4000:]

    assert_same_as_one_memory_run(run, out, tmp_path)
