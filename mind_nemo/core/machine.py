"""What the machine lets this process use, for stages that size their own thread pools."""

from __future__ import annotations

import os


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity, which SLURM, cgroups' cpusets and
    ``taskset`` set (``os.cpu_count()`` would count the whole node)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1  # not Linux
