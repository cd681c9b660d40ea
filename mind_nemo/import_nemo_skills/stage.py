"""``python -m mind_nemo.import_nemo_skills``: NeMo-Skills generations -> a synthesize run folder.

Generating with NeMo-Skills (``nemo_skills.inference.generate`` on our contexts rows with our
prompt files) is an alternative to ``mind_nemo.synthesize``; this stage turns its output into
the run folder synthesize would have written (the same shards, contexts, shard manifests as done
markers, run manifest and config), so filter, report, merge and mix take it unchanged.

Finished output files are found by NeMo-Skills' own names (:mod:`.outputs`); each row is mapped
field by field (:mod:`.rows`). Rows that cannot be mapped are skipped, counted by reason in the
manifest (``rows_skipped``) and logged; a file none of whose rows has the answer field is
refused in one line. A conversation key seen twice is kept once (``duplicate_key``), each context
is written once per shard; both checks use an on-disk table, so memory stays flat. The import
writes a fresh folder: an ``output_dir`` that already holds conversations is refused.
"""

from __future__ import annotations

import logging
import sqlite3
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from mind_nemo.core.cli import CONFIG_PATH
from mind_nemo.core.config import typed_config
from mind_nemo.core.errors import UserError, exit_on_user_error
from mind_nemo.core.jsonl import read_lines, write_atomic, write_json_atomic
from mind_nemo.core.run_folder import RunFolder, make_folder, take_lock
from mind_nemo.core.tables import format_table
from mind_nemo.import_nemo_skills.config import ImportConfig
from mind_nemo.import_nemo_skills.outputs import OutputFile, find_outputs
from mind_nemo.import_nemo_skills.rows import FILE_LEVEL, Mapped, map_row
from mind_nemo.synthesize.plan import shard_of
from mind_nemo.synthesize.shard_store import ShardStore

log = logging.getLogger("mind_nemo.import_nemo_skills")
#: Skipped rows logged per reason (the rest are only counted).
LOGGED_PER_REASON = 3


class SeenKeys:
    """Conversation and context keys already written, in an on-disk SQLite table."""

    def __init__(self, folder: str) -> None:
        self.db = sqlite3.connect(Path(folder) / "keys.sqlite")
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("CREATE TABLE keys (key TEXT PRIMARY KEY) WITHOUT ROWID")

    def first_time(self, key: str) -> bool:
        """Record ``key``; True when it was not recorded before."""
        return self.db.execute("INSERT OR IGNORE INTO keys VALUES (?)", (key,)).rowcount == 1

    def close(self) -> None:
        self.db.close()


class Importer:
    """Writes the run folder of one import."""

    def __init__(self, cfg: ImportConfig, seen: SeenKeys) -> None:
        self.cfg, self.seen = cfg, seen
        self.run_dir = Path(cfg.output_dir)
        self.stores = [ShardStore(self.run_dir, i, cfg.num_shards) for i in range(cfg.num_shards)]
        self.skipped: Counter[str] = Counter()
        self.contexts_missing = 0
        self.rows_read = 0

    def run(self, outputs: list[OutputFile]) -> None:
        for store in self.stores:
            store.open()
        try:
            for output in outputs:
                self._import_file(output)
        finally:
            for store in self.stores:
                store.close()

    def _skip(self, reason: str, where: str) -> None:
        self.skipped[reason] += 1
        if self.skipped[reason] <= LOGGED_PER_REASON:
            log.warning("%s: row skipped (%s)", where, reason)

    def _import_file(self, output: OutputFile) -> None:
        cfg = self.cfg
        file_reasons: Counter[str] = Counter()
        rows = 0
        for number, row, _ in read_lines(output.path):
            rows += 1
            where = f"{output.path}:{number}"
            if row is None:
                file_reasons["malformed_json"] += 1
                self._skip("malformed_json", where)
                continue
            mapped = map_row(
                row,
                style=output.style,
                sample=output.sample,
                model=cfg.server.model,
                generation_key=cfg.generation_key,
                prefix_key=cfg.start_assistant_response_key,
            )
            if isinstance(mapped, str):
                file_reasons[mapped] += 1
                self._skip(mapped, where)
                continue
            self._write(mapped, where)
        self.rows_read += rows
        for reason in FILE_LEVEL:
            if rows and file_reasons[reason] == rows:
                raise UserError(
                    f"{output.path}: no row has its {_field(reason, cfg)}; is it NeMo-Skills "
                    "generate output of a mind_nemo contexts file? (set generation_key= if "
                    "generate ran with another ++generation_key)"
                )
        log.info("%s: %d rows as %s sample %d", output.path, rows, output.style, output.sample)

    def _write(self, mapped: Mapped, where: str) -> None:
        conversation = mapped.conversation
        store = self.stores[shard_of(conversation.document_id, self.cfg.num_shards)]
        if not self.seen.first_time("c\x00" + "\x00".join(map(str, conversation.key))):
            self._skip("duplicate_key", where)
            return
        context = mapped.context
        if context is None:
            self.contexts_missing += 1
        elif self.seen.first_time(f"x\x00{context.document_id}\x00{context.index}"):
            store.add_context(context)
        store.commit(conversation)

    def finish(self, outputs: list[OutputFile]) -> dict[str, Any]:
        """Write every shard's manifest (the done marker) and the run's; return the run's."""
        extra = {
            "detail": "",
            "source": "nemo_skills",
            "styles": sorted({o.style for o in outputs}),
            "model": self.cfg.server.model,
            "server": "nemo_skills",
            "input_files": [str(o.path) for o in outputs],
            "rows_read": self.rows_read,
            "rows_skipped": dict(self.skipped),
            "contexts_missing": self.contexts_missing,
        }
        manifests = [s.write_manifest("complete", s.totals(), extra) for s in self.stores]
        folder = RunFolder(self.run_dir)
        identity = {"source": "nemo_skills", "num_shards": self.cfg.num_shards}
        write_json_atomic(folder.identity, identity)
        if self.cfg.num_shards == 1:
            write_json_atomic(folder.manifest, manifests[0])
        return {
            **extra,
            "conversations": sum(m["conversations"] for m in manifests),
            "contexts": sum(m["contexts"] for m in manifests),
            "by_style": _sum_styles(manifests),
        }


def _field(reason: str, cfg: ImportConfig) -> str:
    names = {
        "missing_generation": f"'{cfg.generation_key}' field",
        "missing_document_id": "'document_id' field",
        "missing_index": "'index' field",
    }
    return names[reason]


def _sum_styles(manifests: list[dict[str, Any]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for manifest in manifests:
        for style, t in manifest["by_style"].items():
            total[style] += t["conversations"]
    return dict(total)


def check_output_dir(run_dir: Path) -> None:
    make_folder(run_dir, "output_dir")
    if RunFolder(run_dir).shards():
        raise UserError(
            f"output_dir={run_dir} already holds conversations; import into a new folder"
        )


@exit_on_user_error
def run_import(raw_cfg: DictConfig) -> dict[str, Any]:
    cfg: ImportConfig = typed_config(raw_cfg, ImportConfig)
    if cfg.style is None:
        raise UserError("say which style the input holds, e.g. +style=debate (or +style=all)")
    styles = list(cfg.style.styles) or [cfg.style.name]
    outputs = find_outputs(Path(cfg.input), styles)
    run_dir = Path(cfg.output_dir)
    check_output_dir(run_dir)
    start = time.monotonic()
    with take_lock(run_dir, "import", what=f"the import into {run_dir}"):
        write_atomic(RunFolder(run_dir).config, OmegaConf.to_yaml(raw_cfg, resolve=True))
        with tempfile.TemporaryDirectory(prefix="mind-nemo-import-") as tmp:
            seen = SeenKeys(tmp)
            try:
                importer = Importer(cfg, seen)
                importer.run(outputs)
                summary = importer.finish(outputs)
            finally:
                seen.close()
    print_summary(run_dir, summary, time.monotonic() - start)
    return summary


def print_summary(run_dir: Path, summary: dict[str, Any], seconds: float) -> None:
    rows = [[style, n] for style, n in sorted(summary["by_style"].items())]
    print(format_table(["style", "conversations"], rows or [["-", 0]]))
    skipped = ", ".join(f"{r}={n}" for r, n in sorted(summary["rows_skipped"].items()))
    print(f"run folder:     {run_dir}")
    files = len(summary["input_files"])
    print(f"rows read:      {summary['rows_read']} from {files} files in {seconds:.1f}s")
    print(
        f"imported:       {summary['conversations']} conversations, {summary['contexts']} "
        f"contexts ({summary['contexts_missing']} rows without one)"
    )
    print(f"skipped:        {skipped or 'none'}")
    print(f"next:           python -m mind_nemo.filter run_dir={run_dir}")


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="import_nemo_skills")
def main(cfg: DictConfig) -> None:
    run_import(cfg)
