"""The synthesize run a filter stage reads: its shards, its prompts and its tokenizer.

Checks that the folder is a synthesize run (``conversations/shard-*.jsonl``) and, unless
``allow_incomplete``, that every shard it planned is complete by the run folder's one definition
(:func:`~mind_nemo.core.run_folder.shard_problem`): filtering a shard that is still being written
would silently miss its tail. Opening checks every shard's status; :meth:`SourceRun.check_inputs`
then checks the checksums of the shards this process reads, with the digests it computed anyway,
so an array task reads only its own shards.

An export folder (``RUN/export`` from ``merge``, or a download of the released Nemotron-MIND:
``<STYLE>/*.parquet``, in either naming) is read too: its Parquet files, sorted by path, are its
shards (``shard-00000-of-N`` is the first file; the log lists them). It has no shard manifests
and no contexts, so there is nothing to verify and the context checks count
``missing_context``; its tokenizer comes from the run's ``config.yaml`` when the export sits in
a synthesize run, else from ``tokenizer=NAME``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mind_nemo.core.errors import UserError
from mind_nemo.core.run_folder import (
    EXPORT_FILE_GLOB,
    RunFolder,
    shard_name,
    shard_problems,
    summarize,
)
from mind_nemo.core.styles import ALL_STYLES
from mind_nemo.filter.rules.leakage import instruction_text
from mind_nemo.synthesize.styles import load_prompt

log = logging.getLogger(__name__)


@dataclass
class SourceRun:
    run_dir: Path
    #: Shard names (``shard-NNNNN-of-MMMMM``) that have a conversations file, sorted.
    shards: list[str]
    config: dict[str, Any] = field(default_factory=dict)
    allow_incomplete: bool = False
    #: For an export folder: shard name -> its Parquet file (None for a synthesize run).
    files: dict[str, Path] | None = None

    def conversations(self, shard: str) -> Path:
        if self.files is not None:
            return self.files[shard]
        return RunFolder(self.run_dir).conversations(shard)

    def contexts(self, shard: str) -> Path:
        return RunFolder(self.run_dir).contexts(shard)

    def manifests(self) -> list[dict[str, Any]]:
        """Shard manifests (for the report's throughput timeline)."""
        found = []
        for shard in self.shards:
            path = RunFolder(self.run_dir).shard_manifest(shard)
            if path.is_file():
                found.append(json.loads(path.read_text()))
        return found

    def check_inputs(self, shas: dict[str, str]) -> None:
        """The shards this process reads (shard -> SHA-256 of its conversations, as read) are
        still what their manifests vouch for; else refuse, unless ``allow_incomplete``.
        An export folder has no shard manifests: nothing to check."""
        if self.files is not None:
            return
        digests = {self.conversations(shard): sha for shard, sha in shas.items()}
        _judge(self.run_dir, shard_problems(self.run_dir, shas, digests=digests),
               self.allow_incomplete)  # fmt: skip

    def tokenizer_name(self) -> str | None:
        server = self.config.get("server") or {}
        return server.get("tokenizer") or server.get("model")

    def instructions(self) -> dict[str, str]:
        """Style -> the words of the prompt that generated it (for echo detection)."""
        style_cfg = self.config.get("style") or {}
        styles = list(style_cfg.get("styles") or []) or [style_cfg.get("name")]
        styles = [s for s in styles if s] or list(ALL_STYLES)
        prompt_file = style_cfg.get("prompt_file") if len(styles) == 1 else None
        found = {}
        for style in styles:
            try:
                prompt = load_prompt(style, prompt_file)
            except UserError as err:
                log.warning("no instruction-echo check for style %s: %s", style, err)
                continue
            found[style] = instruction_text(prompt.user, prompt.system or "")
        return found


def open_source_run(run_dir: Path, allow_incomplete: bool = False) -> SourceRun:
    if not run_dir.is_dir():
        raise UserError(f"run folder not found: {run_dir}")
    folder = RunFolder(run_dir)
    shards = folder.shards()
    if not shards:
        exported = sorted(run_dir.glob(EXPORT_FILE_GLOB))
        if exported:
            return _export_source(run_dir, exported)
        raise UserError(
            f"{run_dir} is not a synthesize run (no conversations/shard-*.jsonl) nor an export "
            f"({EXPORT_FILE_GLOB}); pass the output_dir of python -m mind_nemo.synthesize"
        )
    config = _read_config(folder.config)
    expected = folder.expected_shards() or shards
    _judge(run_dir, shard_problems(run_dir, expected, verify="status"), allow_incomplete)
    return SourceRun(run_dir, shards, config, allow_incomplete)


def _export_source(run_dir: Path, exported: list[Path]) -> SourceRun:
    """An export folder: one shard per Parquet file; the run's config if it sits in one."""
    files = {shard_name(i, len(exported)): path for i, path in enumerate(exported)}
    for shard, path in files.items():
        log.info("%s is %s", shard, path.relative_to(run_dir))
    run = RunFolder(run_dir.resolve().parent)
    config = _read_config(run.config) if run.export == run_dir.resolve() else {}
    return SourceRun(run_dir, list(files), config, files=files)


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError:
        log.warning("%s is not valid YAML; using defaults", path)
        return {}
    return config if isinstance(config, dict) else {}


def _judge(run_dir: Path, problems: list[str], allow_incomplete: bool) -> None:
    if not problems:
        return
    if not allow_incomplete:
        raise UserError(
            f"{run_dir} is not finished: {summarize(problems, 3)} "
            "(finish synthesis, or allow_incomplete=true)"
        )
    log.warning("filtering an unfinished run: %s", summarize(problems, 3))
