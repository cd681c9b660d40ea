"""What a filtered run keeps where, and which of it says "done" (paths from the run folder)::

config.yaml                      the resolved filter config
filter_identity.json             source run + settings hash; a rerun must match it
manifests/shard-*.json           pass 1 done for a shard: a done marker (input checksum,
                                 settings hash) vouching for the shard's staged files
work/                            pass 1 staging: kept rows, rejects, dedup signatures
conversations/shard-*.jsonl      kept conversations (after dedup), one per source shard
rejects/shard-*.jsonl            every rejected row with its ``reject_reason``
variants/<name>/part-*.jsonl     LONGEST / ALL / CONCAT / RAW training sets
manifest.json                    written last, a done marker for all of the above: counts,
                                 reasons, tokens, variants, checksums
locks/                           who is writing: one lock per pass-1 task, one for finalize

The names themselves are spelled once, in :mod:`mind_nemo.core.run_folder`.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

from mind_nemo.core import run_folder as rf
from mind_nemo.core.errors import UserError
from mind_nemo.core.run_folder import RunFolder, read_done, write_json_atomic, write_marker
from mind_nemo.filter.config import VariantsConfig

#: What a filter run writes (and ``overwrite=true`` removes); never ``locks/``, whose files
#: the running process holds.
OWNED = (
    rf.CONVERSATIONS,
    rf.REJECTS,
    rf.VARIANTS,
    rf.staging_folder(Path(rf.VARIANTS)).name,
    rf.retired_folder(Path(rf.VARIANTS)).name,
    rf.MANIFESTS,
    rf.WORK,
    rf.REPORT_PLOTS,
)
OWNED_FILES = (
    rf.RUN_MANIFEST,
    rf.FILTER_IDENTITY_FILE,
    rf.CONFIG_FILE,
    rf.REPORT_MD,
    rf.REPORT_HTML,
)


class OutputLayout:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.folder = RunFolder(root)
        self.work = self.folder.work
        self.manifest = self.folder.manifest
        self.config = self.folder.config

    def conversations(self, shard: str) -> Path:
        return self.folder.conversations(shard)

    def rejects(self, shard: str) -> Path:
        return self.folder.rejects(shard)

    def marker(self, shard: str) -> Path:
        return self.folder.shard_manifest(shard)

    def staged_kept(self, shard: str) -> Path:
        return self.folder.staged(rf.KEPT, shard)

    def staged_rejects(self, shard: str) -> Path:
        return self.folder.staged(rf.REJECTS, shard)

    def fingerprints(self, shard: str) -> Path:
        return self.folder.staged(rf.DEDUP, shard, ".fp")

    def signatures(self, shard: str) -> Path:
        return self.folder.staged(rf.DEDUP, shard, ".sig")

    def context_index(self, shard: str) -> Path:
        return self.folder.context_index(shard)

    def staged(self, shard: str) -> list[Path]:
        return [
            self.staged_kept(shard),
            self.staged_rejects(shard),
            self.fingerprints(shard),
            self.signatures(shard),
        ]

    # -- done markers -----------------------------------------------------------------------
    def write_shard_marker(self, shard: str, record: dict[str, Any]) -> dict[str, Any]:
        """Pass 1 of ``shard`` is done: vouch for its staged files (written last)."""
        return write_marker(self.marker(shard), record, files=self.staged(shard), root=self.root)

    def shard_marker(self, shard: str, input_sha: str, settings_hash: str) -> dict | None:
        """The pass-1 marker of ``shard`` if it is done for this input and these settings (and
        its staged files are still as it wrote them), else None."""
        expect = {"input_sha256": input_sha, "settings_hash": settings_hash}
        return read_done(self.marker(shard), expect=expect, root=self.root)

    def write_manifest(self, manifest: dict[str, Any], shards: list[str]) -> dict[str, Any]:
        """The run is done: vouch for every final file (conversations, rejects, variants)."""
        files = [p for s in shards for p in (self.conversations(s), self.rejects(s))]
        for name in manifest.get("variants", {}).values():
            files += [self.root / rel for rel in name.get("files", {})]
        return write_marker(self.manifest, manifest, files=files, root=self.root)

    def finished(
        self, settings_hash: str, inputs: dict[str, str], variants: VariantsConfig
    ) -> dict | None:
        """The run manifest if the run is finished for these inputs, settings and variants."""
        expect = {
            "settings_hash": settings_hash,
            "inputs": inputs,
            "variants_config": dataclasses.asdict(variants),
        }
        return read_done(self.manifest, expect=expect, root=self.root)

    def finalized_inputs(self, settings_hash: str) -> dict[str, str]:
        """Source shard -> input checksum that a finished run with these settings covers (status
        only: a pass-1 task needs to know its shards are in it, not to re-hash the outputs)."""
        expect = {"settings_hash": settings_hash}
        record = read_done(self.manifest, expect=expect, verify="status")
        return dict(record.get("inputs") or {}) if record else {}

    def read_manifest(self) -> dict[str, Any] | None:
        return json.loads(self.manifest.read_text()) if self.manifest.is_file() else None

    def claim(self, identity: dict[str, Any], overwrite: bool) -> None:
        """Make the folder ours for this source run and these settings (or refuse)."""
        path = self.folder.filter_identity
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
