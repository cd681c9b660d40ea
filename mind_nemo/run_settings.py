"""Settings a stage derives before it starts: typed config, shard, context window, run identity.

These are the checks that turn a wrong setting into one clear line at start-up instead of a
failure an hour in: a type error in an override, a shard id out of range, or resuming a run folder
with a different model or prompt (which would silently mix two datasets in one folder).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mind_nemo.config import ServerConfig, SynthesizeConfig
from mind_nemo.errors import UserError
from mind_nemo.jsonl import write_json_atomic
from mind_nemo.prompts import StylePrompt

T = TypeVar("T")
IDENTITY_FILE = "run_identity.json"


def typed_config(raw: DictConfig, schema: type[T]) -> T:
    """The dataclass instance behind a Hydra config; a missing or bad value is a UserError."""
    try:
        return OmegaConf.to_object(raw)  # type: ignore[return-value]
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", "") or ""
        message = str(err).splitlines()[0]
        raise UserError(f"bad config value{f' at {key}' if key else ''}: {message}") from None


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


def context_window(cfg: ServerConfig) -> int:
    """The model's context length: from the config, else the model's config.json, else 4096."""
    if cfg.context_window:
        return cfg.context_window
    from mind_nemo.embedded_model import resolve_model_path

    config_path = Path(resolve_model_path(cfg.model)) / "config.json"
    if config_path.is_file():
        data = json.loads(config_path.read_text())
        for key in ("max_position_embeddings", "n_positions", "max_seq_len"):
            if isinstance(data.get(key), int):
                return int(data[key])
    return 4096


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
