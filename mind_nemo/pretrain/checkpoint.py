"""Megatron distributed checkpoints: save at intervals, resume from the latest, load base weights.

Layout (Megatron-LM's): ``checkpoints/iter_0000020/`` (a ``dist_checkpointing`` folder) and
``checkpoints/latest_checkpointed_iteration.txt``. A checkpoint is written under
``iter_N.tmp``, renamed when every rank has finished, and only then named in the marker, so a
kill during a save leaves the previous checkpoint as the latest. Each holds the model and the
optimizer state as ShardedTensors (so a different TP/PP layout can load them), the scheduler,
the iteration and every rank's RNG states.

A *base* checkpoint is different: weights only (fresh optimizer and schedule, as continued
pretraining does), from a folder that is either a dist checkpoint or a Megatron-LM checkpoint
root with its marker.

Saving starts processes: megatron forks one writer per file bucket (they die with us through
the at-fork hook :func:`mind_nemo.pretrain.runtime.init` installs) and, on first use, spawns a
multiprocessing manager that serves its results queue for the rest of the run. That manager is
started here, by :func:`_results_queue_dies_with_us`, so that a SIGKILLed run does not leave it
(and with it the resource tracker) behind.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import shutil
from multiprocessing.managers import SyncManager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mind_nemo.core.children import die_with_parent
from mind_nemo.core.errors import UserError
from mind_nemo.core.jsonl import write_atomic

MARKER = "latest_checkpointed_iteration.txt"


def iter_dir(root: Path, iteration: int) -> Path:
    return root / f"iter_{iteration:07d}"


def latest_iteration(root: Path) -> int | None:
    """The iteration the marker names, if its folder is there."""
    marker = root / MARKER
    if not marker.is_file():
        return None
    text = marker.read_text().strip()
    if not text.isdigit() or not iter_dir(root, int(text)).is_dir():
        return None
    return int(text)


def unwrap(model: Any) -> Any:
    """The ``GPTModel`` inside DDP / Float16Module wrappers."""
    while hasattr(model, "module"):
        model = model.module
    return model


def _rng_object(loading: bool) -> Any:
    """This rank's RNG states as a ShardedObject (one per pipeline x tensor x data rank)."""
    from megatron.core import parallel_state as ps
    from megatron.core.dist_checkpointing.mapping import ShardedObject
    from megatron.core.tensor_parallel import get_cuda_rng_tracker

    state = None
    if not loading:
        state = {
            "python": random.getstate(),
            "numpy": np.random.get_state(),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() else None,
            "tracker": get_cuda_rng_tracker().get_states(),
        }
    shape = (
        ps.get_pipeline_model_parallel_world_size(),
        ps.get_tensor_model_parallel_world_size(),
        ps.get_data_parallel_world_size(),
    )
    offset = (
        ps.get_pipeline_model_parallel_rank(),
        ps.get_tensor_model_parallel_rank(),
        ps.get_data_parallel_rank(),
    )
    return ShardedObject("rng_state", state, shape, offset, replica_id=0)


def _restore_rng(state: dict[str, Any]) -> None:
    from megatron.core.tensor_parallel import get_cuda_rng_tracker

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
    get_cuda_rng_tracker().set_states(state["tracker"])


def _training_state(model: Any, optimizer: Any, scheduler: Any, loading: bool) -> dict[str, Any]:
    model_sd = unwrap(model).sharded_state_dict()
    return {
        "model": model_sd,
        "optimizer": optimizer.sharded_state_dict(model_sd, is_loading=loading),
        "scheduler": scheduler.state_dict(),
        "rng_state": _rng_object(loading),
        "iteration": 0,
    }


def _barrier() -> None:
    if torch.distributed.is_initialized():
        torch.distributed.barrier()


_manager: SyncManager | None = None


def _results_queue_dies_with_us() -> None:
    """Start the manager behind megatron's write-results queue ourselves, with a parent-death
    signal, before megatron starts one of its own that outlives a SIGKILLed run.

    megatron-core (0.16) creates it lazily as ``filesystem_async._results_queue`` from a spawn
    context ``Manager()`` with no initializer; a version without that global is left alone
    (tests/pretrain/test_orphans.py would then show what stays behind)."""
    global _manager
    from megatron.core.dist_checkpointing.strategies import filesystem_async

    if getattr(filesystem_async, "_results_queue", True) is not None:
        return
    _manager = SyncManager(ctx=multiprocessing.get_context("spawn"))
    _manager.start(initializer=die_with_parent, initargs=(os.getpid(),))
    filesystem_async._results_queue = _manager.Queue()


def save(root: Path, iteration: int, model: Any, optimizer: Any, scheduler: Any) -> Path:
    """Write checkpoint ``iteration`` (all ranks call this), then move the marker to it."""
    from megatron.core import dist_checkpointing

    _results_queue_dies_with_us()
    final, tmp = iter_dir(root, iteration), root / f"iter_{iteration:07d}.tmp"
    is_main = not torch.distributed.is_initialized() or torch.distributed.get_rank() == 0
    if is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    _barrier()
    state = _training_state(model, optimizer, scheduler, loading=False)
    state["iteration"] = iteration
    dist_checkpointing.save(state, str(tmp))
    _barrier()
    if is_main:
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        write_atomic(root / MARKER, f"{iteration}\n")
    _barrier()
    return final


def load_training(root: Path, model: Any, optimizer: Any, scheduler: Any) -> int:
    """Restore model, optimizer, scheduler and RNG from the latest checkpoint; its iteration."""
    from megatron.core import dist_checkpointing

    iteration = latest_iteration(root)
    if iteration is None:
        return 0
    template = _training_state(model, optimizer, scheduler, loading=True)
    state = dist_checkpointing.load(template, str(iter_dir(root, iteration)))
    unwrap(model).load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    _restore_rng(state["rng_state"])
    return int(state["iteration"])


def resolve_dist_checkpoint(path: Path) -> Path:
    """A dist checkpoint folder itself, or the latest one under a checkpoint root."""
    if (path / "metadata.json").is_file():
        return path
    iteration = latest_iteration(path)
    if iteration is not None:
        return iter_dir(path, iteration)
    raise UserError(
        f"base_checkpoint={path} is neither a Hugging Face model (config.json) nor a Megatron "
        f"distributed checkpoint (metadata.json, or {MARKER})"
    )


def load_weights(path: Path, model: Any) -> None:
    """Model weights only from a dist checkpoint (any TP/PP layout it was saved with)."""
    from megatron.core import dist_checkpointing

    ckpt = resolve_dist_checkpoint(path)
    target = unwrap(model)
    template = target.sharded_state_dict()
    try:
        state = dist_checkpointing.load(template, str(ckpt))
    except Exception as err:  # megatron raises assorted types for a foreign checkpoint
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(f"cannot load model weights from {ckpt}: {first[:300]}") from None
    # a training checkpoint's common part (optimizer groups, scheduler, iteration) comes along
    load_checked(target, {k: v for k, v in state.items() if k in template})


def load_checked(model: Any, state: dict[str, Any]) -> None:
    """``load_state_dict`` that tolerates only Transformer Engine's ``_extra_state`` gaps."""
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("_extra_state")]
    if missing or result.unexpected_keys:
        raise UserError(
            f"checkpoint does not fit the model: missing {missing[:3]}, "
            f"unexpected {list(result.unexpected_keys)[:3]}"
        )


def save_weights(path: Path, model: Any) -> None:
    """A weights-only dist checkpoint (the converted base)."""
    from megatron.core import dist_checkpointing

    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    dist_checkpointing.save(unwrap(model).sharded_state_dict(), str(tmp))
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)
