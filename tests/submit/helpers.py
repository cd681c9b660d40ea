"""Real-SLURM test plumbing: why SLURM is unavailable (for skips) and bounded waits on jobs."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import REPO

CLUSTER = REPO / "launchers" / "slurm" / "local_cluster.sh"


def slurm_problem() -> str | None:
    """Why SLURM jobs cannot run here, or None."""
    if shutil.which("sbatch") is None:
        return "SLURM is not installed (launchers/slurm/local_cluster.sh up installs and starts it)"
    status = subprocess.run(["bash", str(CLUSTER), "status"], capture_output=True, check=False)
    if status.returncode != 0:
        return "no SLURM node takes jobs here (launchers/slurm/local_cluster.sh up starts one)"
    return None


def wait_for(condition, what: str, timeout_s: float = 240.0) -> None:
    """Poll ``condition`` until true; a guard against hanging, not a speed check."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            subprocess.run(["squeue"], check=False)
            raise AssertionError(f"gave up waiting for {what} after {timeout_s:.0f}s")
        time.sleep(1)


def queue_empty(job_ids: list[str]) -> bool:
    out = subprocess.run(
        ["squeue", "-h", "-o", "%i", "-j", ",".join(job_ids)], capture_output=True, text=True
    )
    return out.returncode == 0 and not out.stdout.strip()


def dry_run_chain(job_dir: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], list, list]:
    """``submit ... dry_run=true`` with ``args``: the result, each printed job's header name
    (``3-mix-shard``) and the job name it waits on with ``afterok`` (None for the first)."""
    result = subprocess.run(
        [sys.executable, "-m", "mind_nemo.submit", "dry_run=true", *args,
         f"cluster.job_dir={job_dir}"],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    heads = [line for line in result.stdout.splitlines() if line.startswith("# ===== ")]
    after = [h.split("afterok:<", 1)[1].rstrip(">)") if "afterok" in h else None for h in heads]
    return result, [h.split()[2] for h in heads], after
