"""The mix's SLURM scale-out on a real SLURM: a job array of shards, then one finalize job.

``launchers/mix_slurm.sh`` submits one array task per shard and a finalize job that depends on
the whole array (``afterok``). The test checks the result against an unsharded run of the same
mix: byte-identical ``.bin`` files and the same blend weights. It skips, with the reason, where
no SLURM controller answers (``launchers/slurm/local_cluster.sh up`` starts one here).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import REPO, run_stage
from tests.submit.helpers import queue_empty, slurm_problem, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(slurm_problem() is not None, reason=str(slurm_problem())),
]


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
    wait_for(lambda: queue_empty([array_id, final_id]), "the mix jobs", timeout_s=900)

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
