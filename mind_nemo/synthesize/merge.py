"""``python -m mind_nemo.merge run_dir=RUN``: check a sharded synthesize run and publish it.

Each shard of a job array writes its own files and manifest. Merging refuses to go on unless
every shard is complete (:func:`~mind_nemo.core.run_folder.shard_problem`: its manifest says
``complete`` and its conversations and contexts files still have the checksums recorded there);
it then checks that no key appears twice across shards, writes one run-level ``manifest.json``
(counts, tokens, checksums) and a Parquet export, one folder per style, in our naming or the
released Nemotron-MIND one (``export.schema``, :mod:`~mind_nemo.synthesize.export`), with a
dataset card (:mod:`~mind_nemo.synthesize.card`) so ``datasets.load_dataset(export, style)``
works. The export is built beside its final place and swapped in whole, so a re-merge never
leaves old parts beside new ones.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from mind_nemo.core.cli import CONFIG_PATH
from mind_nemo.core.config import typed_config
from mind_nemo.core.errors import UserError, exit_on_user_error
from mind_nemo.core.jsonl import iter_jsonl
from mind_nemo.core.run_folder import (
    IDENTITY_FILE,
    RunFolder,
    file_sha256,
    publish_folder,
    shard_problems,
    staging_folder,
    summarize,
    take_lock,
    write_marker,
)
from mind_nemo.core.tables import format_table
from mind_nemo.synthesize.card import card_text, sampling_label, write_card
from mind_nemo.synthesize.config import ExportConfig, MergeConfig
from mind_nemo.synthesize.export import StyleExport, style_folder
from mind_nemo.synthesize.shard_store import row_key

#: Distinct models + sampling settings collected for the card (it names a few, counts more).
MAX_DISTINCT = 1000
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


class Export:
    """The whole export being staged: a writer per style folder, and what the card will say."""

    def __init__(self, staged: Path, cfg: ExportConfig) -> None:
        self.staged, self.cfg = staged, cfg
        self.styles: dict[str, StyleExport] = {}
        self.models: set[str] = set()
        self.samplings: set[str] = set()

    def add(self, row: dict[str, Any]) -> None:
        name = style_folder(row["conversational_style"], self.cfg.schema)
        if name not in self.styles:
            self.styles[name] = StyleExport(self.staged / name, self.cfg.rows_per_file,
                                            self.cfg.schema)  # fmt: skip
        self.styles[name].add(row)
        if len(self.models) + len(self.samplings) < MAX_DISTINCT:  # a card line, not a census
            self.models.add(str(row.get("model") or ""))
            self.samplings.add(sampling_label(row.get("sampling")))

    def finish(self, run_name: str) -> list[Path]:
        """Flush every style, write the card; the staged files (card last)."""
        for style in self.styles.values():
            style.flush()
        self.staged.mkdir(parents=True, exist_ok=True)  # 0 conversations: the card alone
        counts = {name: style.rows for name, style in self.styles.items()}
        text = card_text(self.cfg.schema, counts, self.models - {""}, self.samplings - {""},
                         run_name)  # fmt: skip
        return [*(p for s in self.styles.values() for p in s.files), write_card(self.staged, text)]


def merge_run(cfg: MergeConfig) -> dict[str, Any]:
    run_dir = Path(cfg.run_dir)
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
    export = Export(staged, cfg.export) if cfg.export.parquet else None
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
            if export is not None:
                export.add(row)
    if duplicates:
        shutil.rmtree(staged, ignore_errors=True)
        raise UserError(f"{duplicates} conversation keys appear in more than one shard")
    files = []
    if export is not None:
        staged_files = export.finish(run_dir.name)
        publish_folder(staged, folder.export)
        files = [folder.export / p.relative_to(staged) for p in staged_files]
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
        f"export ({cfg.export.schema}): {len(manifest['export'])} files"
    )
    return manifest


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="merge")
def main(cfg: DictConfig) -> None:
    run_merge(cfg)
