"""``python -m mind_nemo.merge run_dir=RUN``: check a sharded synthesize run and publish it.

Each shard of a job array writes its own files and manifest. Merging refuses to go on unless
every shard's manifest says ``complete`` and its conversation file still has the checksum the
shard recorded; it then checks that no key appears twice across shards, writes one run-level
``manifest.json`` (counts, tokens, checksums) and a Parquet export in the released
Nemotron-MIND schema (``text``, ``conversational_style``, ``document_id``), one folder per style.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import hydra
import pyarrow as pa
import pyarrow.parquet as pq
from omegaconf import DictConfig

from mind_nemo.core.cli import CONFIG_PATH
from mind_nemo.core.config import typed_config
from mind_nemo.core.errors import UserError, exit_on_user_error
from mind_nemo.core.jsonl import iter_jsonl, write_json_atomic
from mind_nemo.core.run_folder import IDENTITY_FILE, file_sha256, shard_name
from mind_nemo.core.tables import format_table
from mind_nemo.synthesize.config import MergeConfig
from mind_nemo.synthesize.shard_store import row_key

RELEASED_COLUMNS = ("text", "conversational_style", "document_id")


def check_shards(run_dir: Path) -> tuple[int, list[dict[str, Any]]]:
    """Every shard present, complete and unmodified; return (num_shards, manifests)."""
    identity_path = run_dir / IDENTITY_FILE
    if not identity_path.is_file():
        raise UserError(f"{run_dir} is not a synthesize run folder (no {IDENTITY_FILE})")
    num_shards = int(json.loads(identity_path.read_text())["num_shards"])
    manifests, problems = [], []
    for shard_id in range(num_shards):
        name = shard_name(shard_id, num_shards)
        path = run_dir / "manifests" / f"{name}.json"
        if not path.is_file():
            problems.append(f"{name} has not run")
            continue
        manifest = json.loads(path.read_text())
        if manifest.get("status") != "complete":
            problems.append(f"{name} is {manifest.get('status')}")
            continue
        conversations = run_dir / "conversations" / f"{name}.jsonl"
        if file_sha256(conversations) != manifest["conversations_sha256"]:
            problems.append(f"{name} changed after it completed (checksum mismatch)")
            continue
        manifests.append(manifest)
    if problems:
        shown = "; ".join(problems[:5]) + (
            f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
        )
        raise UserError(f"cannot merge {run_dir}: {shown} (rerun those shard_id values)")
    return num_shards, manifests


class StyleExport:
    """Buffered Parquet writer for one style; files appear under their final name when full."""

    def __init__(self, folder: Path, rows_per_file: int) -> None:
        self.folder, self.rows_per_file = folder, rows_per_file
        self.buffer: dict[str, list[Any]] = {c: [] for c in RELEASED_COLUMNS}
        self.files: list[Path] = []

    def add(self, row: dict[str, Any]) -> None:
        for column in RELEASED_COLUMNS:
            self.buffer[column].append(row[column])
        if len(self.buffer["text"]) >= self.rows_per_file:
            self.flush()

    def flush(self) -> None:
        if not self.buffer["text"]:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / f"part-{len(self.files):05d}.parquet"
        fd, tmp = tempfile.mkstemp(prefix=".part-", suffix=".parquet", dir=self.folder)
        os.close(fd)
        pq.write_table(pa.table({c: pa.array(v, pa.string()) for c, v in self.buffer.items()}), tmp)
        os.replace(tmp, target)
        self.files.append(target)
        self.buffer = {c: [] for c in RELEASED_COLUMNS}


def merge_run(cfg: MergeConfig) -> dict[str, Any]:
    run_dir = Path(cfg.run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run folder not found: {run_dir}")
    num_shards, manifests = check_shards(run_dir)
    seen: set[bytes] = set()
    duplicates = 0
    by_style: dict[str, dict[str, int]] = defaultdict(
        lambda: {"conversations": 0, "prompt_tokens": 0, "completion_tokens": 0, "cached_tokens": 0}
    )
    exports: dict[str, StyleExport] = {}
    for shard_id in range(num_shards):
        path = run_dir / "conversations" / f"{shard_name(shard_id, num_shards)}.jsonl"
        for row in iter_jsonl(path):
            key = hashlib.blake2b(repr(row_key(row)).encode(), digest_size=12).digest()
            if key in seen:
                duplicates += 1
                continue
            seen.add(key)
            tally = by_style[row["conversational_style"]]
            tally["conversations"] += 1
            for name in ("prompt_tokens", "completion_tokens", "cached_tokens"):
                tally[name] += int(row.get(name) or 0)
            if cfg.export_parquet:
                style = row["conversational_style"]
                if style not in exports:
                    exports[style] = StyleExport(run_dir / "export" / style, cfg.rows_per_file)
                exports[style].add(row)
    if duplicates:
        raise UserError(f"{duplicates} conversation keys appear in more than one shard")
    for export in exports.values():
        export.flush()
    manifest = {
        "run_dir": str(run_dir),
        "status": "complete",
        "num_shards": num_shards,
        "conversations": sum(t["conversations"] for t in by_style.values()),
        "contexts": sum(m["contexts"] for m in manifests),
        "failures": sum(m["failures"] for m in manifests),
        "by_style": dict(sorted(by_style.items())),
        "shards": {
            m["shard"]: {
                k: m[k]
                for k in (
                    "conversations",
                    "contexts",
                    "failures",
                    "conversations_sha256",
                    "contexts_sha256",
                )
            }
            for m in manifests
        },
        "sessions": {m["shard"]: m.get("session", {}) for m in manifests},
        "export": {
            str(p.relative_to(run_dir)): file_sha256(p) for e in exports.values() for p in e.files
        },
    }
    write_json_atomic(run_dir / "manifest.json", manifest)
    return manifest


@exit_on_user_error
def run_merge(raw: DictConfig) -> dict[str, Any]:
    cfg = typed_config(raw, MergeConfig)
    manifest = merge_run(cfg)
    rows = [[s, t["conversations"], t["prompt_tokens"], t["completion_tokens"]]
            for s, t in manifest["by_style"].items()]  # fmt: skip
    print(f"merged {manifest['num_shards']} shards of {cfg.run_dir}")
    print(format_table(["style", "conversations", "prompt tok", "completion tok"], rows))
    print(
        f"manifest: {Path(cfg.run_dir) / 'manifest.json'}; export: {len(manifest['export'])} files"
    )
    return manifest


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="merge")
def main(cfg: DictConfig) -> None:
    run_merge(cfg)
