"""One pretraining session, step by step: check inputs, build, load, resume, train, export.

Kept apart from the Hydra entry point so tests and the benchmark can call :func:`run_pretrain`
with a typed config. Everything a user can get wrong (recipe, mix folder, base path, a run
folder of another recipe) is checked before torch or megatron-core starts.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mind_nemo.core.errors import UserError
from mind_nemo.core.jsonl import write_atomic, write_json_atomic
from mind_nemo.core.run_folder import CONFIG_FILE, RUN_MANIFEST
from mind_nemo.pretrain import base as base_lib
from mind_nemo.pretrain.config import PretrainConfig


def _check_run_folder(cfg: PretrainConfig, raw: DictConfig | None) -> None:
    """A run folder belongs to one recipe; refuse to resume it with another."""
    out = Path(cfg.output_dir)
    saved = out / CONFIG_FILE
    if saved.is_file():
        loaded = OmegaConf.load(saved)  # a mapping: we wrote it (a list would be no run of ours)
        previous = loaded.get("pretrain", {}) if isinstance(loaded, DictConfig) else {}
        if previous.get("name") not in (None, cfg.pretrain.name):
            raise UserError(
                f"{out} holds a {previous.get('name')} run; use another output_dir for "
                f"{cfg.pretrain.name}"
            )
    if raw is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_atomic(saved, OmegaConf.to_yaml(raw, resolve=True))


def run_pretrain(cfg: PretrainConfig, raw: DictConfig | None = None) -> dict[str, Any]:
    """Run ``cfg.step``; return the manifest (also written to ``output_dir/manifest.json``)."""
    from mind_nemo.pretrain import data, runtime

    started = time.time()
    base = base_lib.resolve(cfg.base_checkpoint)
    blend = data.read_blend(cfg.mix_dir)
    train_iters = cfg.pretrain.iterations()
    if cfg.step == "convert":
        path = base_lib.convert(cfg, base)
        return {"step": "convert", "path": str(path) if path else None, "base": base.describe()}
    if cfg.step == "export":
        from mind_nemo.pretrain.export import export_from_checkpoint

        path = export_from_checkpoint(cfg, base, blend["tokenizer"])
        return {"step": "export", "path": str(path)}
    rt = runtime.init(cfg.pretrain, cfg.cpu_threads)
    try:
        data.check_split(cfg.pretrain.split, blend)  # megatron-core would hang, not fail, on it
        if rt.is_main:
            _check_run_folder(cfg, raw)
        summary = _train(cfg, rt, base, blend, train_iters)
        summary["wall_s"] = round(time.time() - started, 2)
        if rt.is_main:
            write_json_atomic(Path(cfg.output_dir) / RUN_MANIFEST, summary)
        return summary
    finally:
        runtime.shutdown()


def _train(cfg: PretrainConfig, rt: Any, base: Any, blend: dict, train_iters: int) -> dict:
    from megatron.core import parallel_state as ps

    from mind_nemo.pretrain import checkpoint, data, optim
    from mind_nemo.pretrain import model as model_lib
    from mind_nemo.pretrain.export import export_model
    from mind_nemo.pretrain.metrics import MetricsLogger, last_per_step, read_metrics
    from mind_nemo.pretrain.train import Trainer

    recipe, out = cfg.pretrain, Path(cfg.output_dir)
    ckpt_root = out / "checkpoints"
    resume_at = checkpoint.latest_iteration(ckpt_root)
    model = model_lib.build_model(recipe, on_gpu=rt.on_gpu, init=resume_at is None)
    params = model_lib.count_parameters(model)
    source = "resumed" if resume_at is not None else base_lib.load(model, base, cfg)
    model = optim.wrap_ddp(model, recipe, rt.on_gpu)
    optimizer = optim.build_optimizer(model, recipe, rt.on_gpu)
    scheduler = optim.build_scheduler(optimizer, recipe, train_iters)
    start = checkpoint.load_training(ckpt_root, model, optimizer, scheduler)
    datasets = data.build_datasets(recipe, blend, train_iters, out / "data_cache")
    logs = (
        ps.is_pipeline_last_stage()
        and ps.get_tensor_model_parallel_rank() == 0
        and ps.get_data_parallel_rank() == 0
    )
    metrics = MetricsLogger(out, enabled=logs, tensorboard=cfg.tensorboard)
    if start:
        metrics.log(start, {"resumed_from": start})
    trainer = Trainer(cfg, rt, model, optimizer, scheduler, datasets, train_iters, metrics)
    result = trainer.run(start)
    metrics.close()
    hf_dir = None
    if result["finished"] and cfg.export_hf and rt.world_size == 1:
        hf_dir = str(export_model(model, recipe, out / "hf", base, blend["tokenizer"]))
    tokens = recipe.global_batch_size * recipe.seq_length
    first_val = result["first_val_loss"]
    if first_val is None and metrics.path.is_file():  # measured by the session that started
        first_val = last_per_step(read_metrics(metrics.path), "val_loss").get(0)
    return {
        "status": "complete" if result["finished"] else "stopped",
        "recipe": recipe.name,
        "parameters": params,
        "base": base.describe(),
        "start": source,
        "mix_dir": str(cfg.mix_dir),
        "blend": {"prefixes": blend["prefixes"], "weights": blend["weights"]},
        "train_iters": train_iters,
        "iteration": result["iteration"],
        "resumed_from": start or None,
        "tokens_per_step": tokens,
        "consumed_tokens": result["iteration"] * tokens,
        "first_val_loss": first_val,
        "last_val_loss": result["last_val_loss"],
        "world_size": rt.world_size,
        "device": "cuda" if rt.on_gpu else "cpu",
        "checkpoint": str(checkpoint.iter_dir(ckpt_root, result["iteration"])),
        "hf": hf_dir,
    }
