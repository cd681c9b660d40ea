"""The run-folder contract: where every stage's files live, and when a shard counts as done.

A run folder holds one stage's output. Sharded stages write one file per shard under a folder
per kind (``conversations/shard-00003-of-00016.jsonl``); a shard is complete when its manifest
says so *and* the file it describes still has the checksum recorded there. Every stage, ``merge``
and the SLURM shard check read those facts from here, so there is one spelling of each.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from mind_nemo.core.errors import UserError

#: Folder names inside a synthesize run folder (one file per shard in each).
CONVERSATIONS = "conversations"
CONTEXTS = "contexts"
FAILURES = "failures"
MANIFESTS = "manifests"
#: What must stay the same for two sessions to write one dataset.
IDENTITY_FILE = "run_identity.json"
#: The run-level manifest (unsharded runs, or written by merge).
RUN_MANIFEST = "manifest.json"


def shard_name(shard_id: int, num_shards: int) -> str:
    """``shard-00003-of-00016``: sortable, and names its siblings' count."""
    return f"shard-{shard_id:05d}-of-{num_shards:05d}"


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes; a file that does not exist hashes like an empty one (a shard
    that has written nothing yet is an empty shard, not an error)."""
    digest = hashlib.sha256()
    if path.exists():
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()


def resolve_shard(shard_id: int | None, num_shards: int | None) -> tuple[int, int]:
    """Shard from the config, else from a SLURM job array, else the whole corpus."""
    env = os.environ
    if num_shards is None and "SLURM_ARRAY_TASK_COUNT" in env:
        num_shards = int(env["SLURM_ARRAY_TASK_COUNT"])
    if shard_id is None and "SLURM_ARRAY_TASK_ID" in env:
        shard_id = int(env["SLURM_ARRAY_TASK_ID"]) - int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
    num_shards = num_shards or 1
    shard_id = shard_id or 0
    if num_shards < 1 or not 0 <= shard_id < num_shards:
        raise UserError(f"shard_id={shard_id} is out of range for num_shards={num_shards}")
    return shard_id, num_shards
