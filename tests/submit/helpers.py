"""Real-SLURM test plumbing: why SLURM is unavailable (for skips) and bounded waits on jobs."""

from __future__ import annotations

import shutil
import subprocess
import time

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
