"""A synthesize run's identity: the settings that must not change between its sessions.

Resuming a run folder with a different model, prompt, sampling or chunking would silently mix two
datasets in one folder; the first session records its identity and later ones are checked
against it, so that mistake is one clear line at start-up.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mind_nemo.core.errors import UserError
from mind_nemo.core.jsonl import write_json_atomic
from mind_nemo.core.run_folder import IDENTITY_FILE, resolve_shard
from mind_nemo.synthesize.config import SynthesizeConfig
from mind_nemo.synthesize.styles import StylePrompt


def run_identity(cfg: SynthesizeConfig, prompts: list[StylePrompt]) -> dict[str, Any]:
    """What must stay the same for conversations of two sessions to belong to one dataset."""
    return {
        "model": cfg.server.model,
        "api": cfg.server.api,
        "prompts": {p.style: p.fingerprint() for p in prompts},
        "samples_per_context": cfg.style.samples_per_context if cfg.style else 1,
        "sampling": {
            "temperature": cfg.sampling.temperature,
            "top_p": cfg.sampling.top_p,
            "max_total_tokens": cfg.sampling.max_total_tokens,
        },
        "chunking": vars(cfg.chunking).copy(),
        "corpus": {
            "path": cfg.corpus.path,
            "text_field": cfg.corpus.text_field,
            "id_field": cfg.corpus.id_field,
        },
        "num_shards": cfg.num_shards,
    }


def check_run_identity(
    run_dir: Path, cfg: SynthesizeConfig, prompts: list[StylePrompt], *, record: bool = True
) -> None:
    """Refuse to resume a run folder made with different generation settings; on a new folder
    record this run's identity (when ``record``)."""
    path = run_dir / IDENTITY_FILE
    current = run_identity(cfg, prompts)
    current["num_shards"] = resolve_shard(cfg.shard_id, cfg.num_shards)[1]
    if path.exists():
        saved = json.loads(path.read_text())
        changed = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
        if changed:
            raise UserError(
                f"{run_dir} holds a run with different {', '.join(changed)}; "
                "pick a new output_dir (or delete that folder) instead of mixing two datasets"
            )
        return
    if record:
        write_json_atomic(path, current)
