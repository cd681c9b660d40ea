"""The synthesize run a filter stage reads: its shards, its prompts and its tokenizer.

Checks that the folder is a synthesize run (``conversations/shard-*.jsonl``) and, unless
``allow_incomplete``, that every shard it planned is ``complete`` (filtering a shard that is
still being written would silently miss its tail).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mind_nemo.core.errors import UserError
from mind_nemo.core.run_folder import IDENTITY_FILE, shard_name
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

    def conversations(self, shard: str) -> Path:
        return self.run_dir / "conversations" / f"{shard}.jsonl"

    def contexts(self, shard: str) -> Path:
        return self.run_dir / "contexts" / f"{shard}.jsonl"

    def manifests(self) -> list[dict[str, Any]]:
        """Shard manifests (for the report's throughput timeline)."""
        found = []
        for shard in self.shards:
            path = self.run_dir / "manifests" / f"{shard}.json"
            if path.is_file():
                found.append(json.loads(path.read_text()))
        return found

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
            found[style] = instruction_text(prompt.user, prompt.system)
        return found


def open_source_run(run_dir: Path, allow_incomplete: bool = False) -> SourceRun:
    if not run_dir.is_dir():
        raise UserError(f"run folder not found: {run_dir}")
    shards = sorted(p.stem for p in (run_dir / "conversations").glob("shard-*.jsonl"))
    if not shards:
        raise UserError(
            f"{run_dir} is not a synthesize run (no conversations/shard-*.jsonl); "
            "pass the output_dir of python -m mind_nemo.synthesize"
        )
    config: dict[str, Any] = {}
    config_path = run_dir / "config.yaml"
    if config_path.is_file():
        try:
            config = yaml.safe_load(config_path.read_text()) or {}
        except yaml.YAMLError:
            log.warning("%s is not valid YAML; using defaults", config_path)
    problems = _incomplete(run_dir, shards)
    if problems:
        shown = "; ".join(problems[:3]) + (
            f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
        )
        if not allow_incomplete:
            raise UserError(
                f"{run_dir} is not finished: {shown} (finish synthesis, or allow_incomplete=true)"
            )
        log.warning("filtering an unfinished run: %s", shown)
    return SourceRun(run_dir, shards, config if isinstance(config, dict) else {})


def _incomplete(run_dir: Path, shards: list[str]) -> list[str]:
    expected = shards
    identity = run_dir / IDENTITY_FILE
    if identity.is_file():
        num_shards = int(json.loads(identity.read_text()).get("num_shards") or 1)
        expected = [shard_name(i, num_shards) for i in range(num_shards)]
    problems = []
    for shard in expected:
        manifest = run_dir / "manifests" / f"{shard}.json"
        if not manifest.is_file():
            problems.append(f"{shard} has no manifest")
            continue
        status = json.loads(manifest.read_text()).get("status")
        if status != "complete":
            problems.append(f"{shard} is {status}")
    return problems
