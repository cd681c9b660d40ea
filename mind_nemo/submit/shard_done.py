"""``python -m mind_nemo.submit.shard_done RUN_DIR SHARD_ID NUM_SHARDS``: status 0 when that
synthesize shard is already complete, 1 otherwise.

A job array task checks this before it starts anything: synthesize would find nothing left to do
anyway, but only after launching its server, and a 70B server takes minutes and eight GPUs to
start. Experiments that share one run (the all-styles rows) resubmit finished arrays, and a
requeued array re-runs finished tasks; both cost seconds this way.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mind_nemo.core import run_folder

USAGE = "usage: python -m mind_nemo.submit.shard_done RUN_DIR SHARD_ID NUM_SHARDS"


def shard_complete(run_dir: Path, shard_id: int, num_shards: int) -> bool:
    """The shard is complete by the run folder's one definition (the same check merge makes)."""
    return run_folder.shard_complete(run_dir, run_folder.shard_name(shard_id, num_shards))


def main(argv: list[str]) -> int:
    if argv in (["-h"], ["--help"]):
        print(f"{USAGE}\n\n{__doc__.strip()}")
        return 0
    if len(argv) != 3 or not argv[1].isdigit() or not argv[2].isdigit():
        print(USAGE, file=sys.stderr)
        return 2
    return 0 if shard_complete(Path(argv[0]), int(argv[1]), int(argv[2])) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
