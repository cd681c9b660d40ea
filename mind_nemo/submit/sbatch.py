"""Thin wrappers around ``sbatch`` and ``scontrol``: submit a script, read a job's state.

Kept to argument lists and ``--parsable`` output so nothing depends on how a site formats its
messages. A missing ``sbatch`` or a refused submission is a one-line :class:`UserError`.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from mind_nemo.core.errors import UserError


def require_sbatch() -> None:
    """Fail in one line when this machine cannot submit jobs."""
    if shutil.which("sbatch") is None:
        raise UserError(
            "sbatch is not installed here; use executor=local, dry_run=true, or run on a SLURM "
            "login node (a one-node test cluster: launchers/slurm/local_cluster.sh)"
        )


def submit(script: Path, *, after: list[str], singleton: bool, hold: bool) -> str:
    """``sbatch --parsable`` the script; it starts after every job in ``after`` succeeded."""
    require_sbatch()
    dependency = [f"afterok:{':'.join(after)}"] if after else []
    if singleton:
        dependency.append("singleton")
    argv = ["sbatch", "--parsable"]
    if dependency:
        argv.append(f"--dependency={','.join(dependency)}")
    if hold:
        argv.append("--hold")
    result = subprocess.run([*argv, str(script)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        message = (result.stderr.strip() or result.stdout.strip()).splitlines()
        raise UserError(f"sbatch refused {script.name}: {message[-1] if message else 'no reason'}")
    return result.stdout.strip().split(";")[0]


def job_fields(job_id: str) -> dict[str, str]:
    """``scontrol show job`` as a dict of its ``Key=Value`` fields (first record for arrays)."""
    result = subprocess.run(
        ["scontrol", "show", "job", "--oneliner", job_id],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        return {}
    line = result.stdout.splitlines()[0] if result.stdout else ""
    fields = {}
    for token in line.split():
        key, sep, value = token.partition("=")
        if sep:
            fields[key] = value
    return fields
