"""The mix's SLURM scale-out on a real SLURM: a job array of shards, then one finalize job.

``launchers/mix_slurm.sh`` submits one array task per shard and a finalize job that depends on
the whole array (``afterok``). The test checks the result against an unsharded run of the same
mix: byte-identical ``.bin`` files and the same blend weights. It skips, with the reason, where
no SLURM controller answers (``launchers/slurm/local_cluster.sh up`` starts one here).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, run_stage


def slurm_problem() -> str | None:
    """Why SLURM jobs cannot run here, or None when a controller answers."""
    if shutil.which("sbatch") is None:
        return "SLURM is not installed (launchers/slurm/local_cluster.sh up installs it)"
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, check=False)
    if ping.returncode != 0 or "UP" not in ping.stdout:
        return "no SLURM controller answers (launchers/slurm/local_cluster.sh up starts one)"
    return None


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(slurm_problem() is not None, reason=str(slurm_problem())),
]


def wait_for_jobs(job_ids: list[str], timeout_s: float = 900) -> None:
    """Block until none of ``job_ids`` is queued or running (or fail after ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        queue = subprocess.run(
            ["squeue", "-h", "-o", "%i %T", "-j", ",".join(job_ids)],
            capture_output=True,
            text=True,
            check=False,
        )
        if not queue.stdout.strip():
            return
        time.sleep(2)
    raise AssertionError(f"SLURM jobs {job_ids} still queued after {timeout_s:.0f}s")


def test_mix_array_matches_unsharded_run(tmp_path):
    sharded, single = tmp_path / "sharded", tmp_path / "single"
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "MIX_CPUS": "1",
        "MIX_TIME": "00:15:00",
        "MIX_LOG_DIR": str(tmp_path / "logs"),
        "TQDM_DISABLE": "1",
        "HF_HUB_OFFLINE": "1",
    }
    submit = subprocess.run(
        ["bash", "launchers/mix_slurm.sh", "3", "mix=quickstart", f"output_dir={sharded}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    # "shards: job array 12 (3 tasks); merge + blend: job 13"
    words = submit.stdout.split()
    array_id, final_id = words[words.index("array") + 1], words[-1]
    wait_for_jobs([array_id, final_id])

    logs = "\n".join(p.read_text() for p in sorted((tmp_path / "logs").glob("*.out")))
    manifest = json.loads((sharded / "manifest.json").read_text())
    assert manifest["status"] == "complete", logs[-3000:]
    assert len(list((tmp_path / "logs").glob("mix-shard-*.out"))) == 3, logs[-3000:]

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
