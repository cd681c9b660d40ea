"""The mix's SLURM scale-out on a real SLURM, submitted the way a user does: through submit.

``python -m mind_nemo.submit ... stages=[mix] mix.tasks=3`` submits a job array of three
``step=shard`` tasks and a ``step=finalize`` job ``afterok`` on the whole array. Submitted held,
SLURM's record of that dependency is checked before anything runs; released, the result is
compared with an unsharded run of the same mix: byte-identical ``.bin`` files and the same blend
weights. It skips, with the reason, where no SLURM node takes jobs
(``launchers/slurm/local_cluster.sh up`` starts one here).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, run_stage
from tests.submit.helpers import queue_empty, slurm_problem, wait_for
from tests.submit.test_slurm_synthesize import job_records

pytestmark = [
    pytest.mark.slow,
    pytest.mark.integration,
    pytest.mark.skipif(slurm_problem() is not None, reason=str(slurm_problem())),
]


def test_mix_array_matches_unsharded_run(tmp_path):
    sharded, single = tmp_path / "sharded", tmp_path / "single"
    result = subprocess.run(
        [sys.executable, "-m", "mind_nemo.submit", "experiment=quickstart", "name=mchain",
         f"paths.runs={tmp_path / 'runs'}", f"dirs.mix={sharded}", "stages=[mix]",
         "mix.tasks=3", "mix.overrides=['mix=quickstart']", "mix.resources.cpus_per_task=1",
         "mix.resources.time=00:15:00", "executor=slurm", "cluster=local_slurm",
         "cluster.hold=true"],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    chain = json.loads((tmp_path / "runs" / "mchain" / "chain.json").read_text())["jobs"]
    ids = [job["job_id"] for job in chain]
    assert [job["name"] for job in chain] == ["mix-mchain-shard", "mix-mchain-finalize"]
    try:  # held: SLURM's own record, before anything runs
        shards, final = job_records(ids[0]), job_records(ids[1])
        assert shards[0]["ArrayTaskId"] == "0-2", shards  # held: one record for the array
        assert f"afterok:{ids[0]}" in final[0]["Dependency"], final[0]["Dependency"]
    finally:
        subprocess.run(["scontrol", "release", *ids], check=False)
    wait_for(lambda: queue_empty(ids), "the mix jobs", timeout_s=900)

    logs = {job["name"]: sorted(Path(job["logs"]).glob("sbatch_*.out")) for job in chain}
    text = "".join(p.read_text() for files in logs.values() for p in files)
    manifest = json.loads((sharded / "manifest.json").read_text())
    assert manifest["status"] == "complete", text[-3000:]
    assert [len(files) for files in logs.values()] == [3, 1], text[-3000:]  # a log per task

    run_stage("mix", "mix=quickstart", f"output_dir={single}", "progress=false")
    reference = json.loads((single / "manifest.json").read_text())
    for name, record in reference["sources"].items():
        assert manifest["sources"][name]["tokens"] == record["tokens"]
        assert manifest["sources"][name]["documents"] == record["documents"]
        prefix = f"datasets/{name}_text_document"
        ours = (sharded / f"{prefix}.bin").read_bytes()
        assert ours == (single / f"{prefix}.bin").read_bytes(), name
    weights = [json.loads((d / "blend.json").read_text())["megatron_lm"]["data_path"][::2]
               for d in (sharded, single)]  # fmt: skip
    assert weights[0] == weights[1]
