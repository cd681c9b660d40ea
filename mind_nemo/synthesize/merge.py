"""``python -m mind_nemo.merge run_dir=RUN``: check a sharded synthesize run and publish it.

Each shard of a job array writes its own files and manifest. Merging refuses to go on unless
every shard is complete (:func:`~mind_nemo.core.run_folder.shard_problem`: its manifest says
``complete`` and its conversations and contexts files still have the checksums recorded there);
it then checks that no key appears twice across shards, writes one run-level ``manifest.json``
(counts, tokens, checksums) and a Parquet export in the released Nemotron-MIND schema (``text``,
``conversational_style``, ``document_id``), one folder per style. The export is built beside
its final place and swapped in whole, so a re-merge never leaves old parts beside new ones.
"""

from __future__ import annotations

import hashlib
import json
import shutil
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
from mind_nemo.core.jsonl import iter_jsonl
from mind_nemo.core.run_folder import (
    IDENTITY_FILE,
    RunFolder,
    file_sha256,
    publish,
    publish_folder,
    shard_problems,
    staging_folder,
    summarize,
    take_lock,
    temp_path,
    write_marker,
)
from mind_nemo.core.tables import format_table
from mind_nemo.synthesize.config import MergeConfig
from mind_nemo.synthesize.shard_store import row_key

RELEASED_COLUMNS = ("text", "conversational_style", "document_id")
SHARD_FIELDS = ("conversations", "contexts", "failures", "conversations_sha256", "contexts_sha256")


def expected_shards(run_dir: Path) -> list[str]:
    """The shards the run planned; a folder that is not a synthesize run is one line."""
    if not run_dir.is_dir():
        raise UserError(f"run folder not found: {run_dir}")
    shards = RunFolder(run_dir).expected_shards()
    if shards is None:
        raise UserError(f"{run_dir} is not a synthesize run folder (no {IDENTITY_FILE})")
    return shards


def check_shards(run_dir: Path) -> tuple[int, list[dict[str, Any]]]:
    """Every shard present, complete and unmodified; return (num_shards, manifests)."""
    shards = expected_shards(run_dir)
    problems = shard_problems(run_dir, shards)
    if problems:
        raise UserError(
            f"cannot merge {run_dir}: {summarize(problems)} (rerun those shard_id values)"
        )
    folder = RunFolder(run_dir)
    manifests = [json.loads(folder.shard_manifest(shard).read_text()) for shard in shards]
    return len(shards), manifests


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
        tmp = temp_path(target)
        pq.write_table(pa.table({c: pa.array(v, pa.string()) for c, v in self.buffer.items()}), tmp)
        publish(tmp, target)
        self.files.append(target)
        self.buffer = {c: [] for c in RELEASED_COLUMNS}


def merge_run(cfg: MergeConfig) -> dict[str, Any]:
    run_dir = Path(cfg.run_dir)
    if cfg.rows_per_file < 1:
        raise UserError(f"rows_per_file={cfg.rows_per_file} must be >= 1")
    expected_shards(run_dir)  # read-only: a folder that is not a run gets no locks/ folder
    with take_lock(run_dir, "merge", what=f"the merge of {run_dir}"):
        return _merge(run_dir, cfg)


def _merge(run_dir: Path, cfg: MergeConfig) -> dict[str, Any]:
    folder = RunFolder(run_dir)
    num_shards, manifests = check_shards(run_dir)
    seen: set[bytes] = set()
    duplicates = 0
    by_style: dict[str, dict[str, int]] = defaultdict(
        lambda: {"conversations": 0, "prompt_tokens": 0, "completion_tokens": 0, "cached_tokens": 0}
    )
    staged = staging_folder(folder.export)
    shutil.rmtree(staged, ignore_errors=True)  # what a killed merge left
    exports: dict[str, StyleExport] = {}
    for manifest in manifests:
        for row in iter_jsonl(folder.conversations(manifest["shard"])):
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
                    exports[style] = StyleExport(staged / style, cfg.rows_per_file)
                exports[style].add(row)
    if duplicates:
        shutil.rmtree(staged, ignore_errors=True)
        raise UserError(f"{duplicates} conversation keys appear in more than one shard")
    for export in exports.values():
        export.flush()
    if cfg.export_parquet:
        staged.mkdir(parents=True, exist_ok=True)  # a run of 0 conversations exports nothing
        publish_folder(staged, folder.export)
    files = [folder.export / p.relative_to(staged) for e in exports.values() for p in e.files]
    manifest = {
        "run_dir": str(run_dir),
        "status": "complete",
        "num_shards": num_shards,
        "conversations": sum(t["conversations"] for t in by_style.values()),
        "contexts": sum(int(m.get("contexts") or 0) for m in manifests),
        "failures": sum(int(m.get("failures") or 0) for m in manifests),
        "by_style": dict(sorted(by_style.items())),
        "shards": {m["shard"]: {k: m.get(k) for k in SHARD_FIELDS} for m in manifests},
        "sessions": {m["shard"]: m.get("session", {}) for m in manifests},
        "export": {str(p.relative_to(run_dir)): file_sha256(p) for p in files},
    }
    return write_marker(folder.manifest, manifest, files=files, root=run_dir)


@exit_on_user_error
def run_merge(raw: DictConfig) -> dict[str, Any]:
    cfg = typed_config(raw, MergeConfig)
    manifest = merge_run(cfg)
    rows = [[s, t["conversations"], t["prompt_tokens"], t["completion_tokens"]]
            for s, t in manifest["by_style"].items()]  # fmt: skip
    print(f"merged {manifest['num_shards']} shards of {cfg.run_dir}")
    print(format_table(["style", "conversations", "prompt tok", "completion tok"], rows))
    print(
        f"manifest: {RunFolder(Path(cfg.run_dir)).manifest}; "
        f"export: {len(manifest['export'])} files"
    )
    return manifest


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="merge")
def main(cfg: DictConfig) -> None:
    run_merge(cfg)
