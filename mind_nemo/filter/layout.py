"""Where a filtered run keeps what (one place, so the stage, the report and tests agree)::

config.yaml                      the resolved filter config
filter_identity.json             source run + settings hash; a rerun must match it
manifests/shard-*.json           pass 1 done for a shard (counts, input checksum)
work/                            pass 1 staging: kept rows, rejects, dedup signatures
conversations/shard-*.jsonl      kept conversations (after dedup), one per source shard
rejects/shard-*.jsonl            every rejected row with its ``reject_reason``
variants/<name>/part-*.jsonl     LONGEST / ALL / CONCAT / RAW training sets
manifest.json                    written last: counts, reasons, tokens, variants, checksums
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from mind_nemo.core.errors import UserError
from mind_nemo.core.jsonl import write_json_atomic

IDENTITY = "filter_identity.json"
OWNED = (
    "conversations",
    "rejects",
    "variants",
    "variants.partial",
    "variants.old",
    "manifests",
    "work",
)
OWNED_FILES = ("manifest.json", IDENTITY, "config.yaml", "report.md", "report.html")


class OutputLayout:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.work = root / "work"
        self.manifest = root / "manifest.json"

    def conversations(self, shard: str) -> Path:
        return self.root / "conversations" / f"{shard}.jsonl"

    def rejects(self, shard: str) -> Path:
        return self.root / "rejects" / f"{shard}.jsonl"

    def marker(self, shard: str) -> Path:
        return self.root / "manifests" / f"{shard}.json"

    def staged_kept(self, shard: str) -> Path:
        return self.work / "kept" / f"{shard}.jsonl"

    def staged_rejects(self, shard: str) -> Path:
        return self.work / "rejects" / f"{shard}.jsonl"

    def fingerprints(self, shard: str) -> Path:
        return self.work / "dedup" / f"{shard}.fp"

    def signatures(self, shard: str) -> Path:
        return self.work / "dedup" / f"{shard}.sig"

    def staged(self, shard: str) -> list[Path]:
        return [
            self.staged_kept(shard),
            self.staged_rejects(shard),
            self.fingerprints(shard),
            self.signatures(shard),
        ]

    def read_manifest(self) -> dict[str, Any] | None:
        return json.loads(self.manifest.read_text()) if self.manifest.is_file() else None

    def claim(self, identity: dict[str, Any], overwrite: bool) -> None:
        """Make the folder ours for this source run and these settings (or refuse)."""
        path = self.root / IDENTITY
        if path.is_file() and json.loads(path.read_text()) != identity:
            if not overwrite:
                raise UserError(
                    f"{self.root} holds a filter run of another source run or with other "
                    "settings; pick a new output_dir or pass overwrite=true"
                )
            self.wipe()
        elif overwrite:
            self.wipe()
        write_json_atomic(path, identity)

    def wipe(self) -> None:
        """Remove what a filter run wrote here (and nothing else)."""
        for name in OWNED:
            shutil.rmtree(self.root / name, ignore_errors=True)
        for name in OWNED_FILES:
            (self.root / name).unlink(missing_ok=True)
        shutil.rmtree(self.root / "report_plots", ignore_errors=True)
