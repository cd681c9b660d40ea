"""Process group and megatron-core parallel state: one process on CPU, torchrun ranks on GPUs.

Megatron-core needs ``torch.distributed`` even for a single process (its layers ask for the
tensor-parallel rank). Under torchrun (``RANK``/``WORLD_SIZE`` set) we join the launcher's group
with NCCL; alone we start a one-process gloo group on a free loopback port. On CPU the shims of
:mod:`mind_nemo.pretrain.cpu_shims` are applied before any model is built. From here on every
child forked from the main thread (megatron's checkpoint writers) dies with this process, so a
SIGKILLed rank leaves nothing running.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass

import torch

from mind_nemo.core.children import forked_children_die_with_this_process
from mind_nemo.core.errors import UserError
from mind_nemo.pretrain import cpu_shims
from mind_nemo.pretrain.config import RecipeConfig
from mind_nemo.servers.launch import free_port


@dataclass
class Runtime:
    """Where this process sits: rank, world, device."""

    rank: int
    world_size: int
    local_rank: int
    on_gpu: bool

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def device(self) -> torch.device:
        return torch.device("cuda", self.local_rank) if self.on_gpu else torch.device("cpu")


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init(recipe: RecipeConfig, cpu_threads: int | None = None) -> Runtime:
    """Start (or join) the process group and megatron's parallel state for ``recipe``."""
    import torch.distributed as dist
    from megatron.core import parallel_state

    if importlib.util.find_spec("psutil") is None:  # without it the checkpoint writer dies and
        raise UserError("checkpoint saving needs psutil: pip install psutil")  # its parent hangs
    forked_children_die_with_this_process()
    on_gpu = torch.cuda.is_available()
    tp = recipe.parallel.tensor_model_parallel_size
    pp = recipe.parallel.pipeline_model_parallel_size
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if not on_gpu and tp * pp > 1:
        raise UserError(
            f"recipe {recipe.name} uses TP={tp}, PP={pp}: that needs GPUs; this machine has none "
            "(use pretrain=tiny_cpu or smollm2_135m here; launch.type=slurm renders a GPU job)"
        )
    if world % (tp * pp):
        raise UserError(
            f"recipe {recipe.name} needs a multiple of TP x PP = {tp * pp} processes, got {world}"
        )
    if on_gpu:
        torch.cuda.set_device(local_rank)
    elif cpu_threads:
        torch.set_num_threads(cpu_threads)
    if not dist.is_initialized():
        # Alone: a private loopback rendezvous, never a MASTER_PORT inherited from a parent.
        init = None if launched_by_torchrun() else f"tcp://127.0.0.1:{free_port()}"
        backend = "nccl" if on_gpu else "gloo"
        dist.init_process_group(backend, init_method=init, rank=rank, world_size=world)
    if not parallel_state.model_parallel_is_initialized():
        parallel_state.initialize_model_parallel(
            tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp
        )
    cpu_shims.apply()
    cpu_shims.seed_model_parallel(recipe.seed)
    return Runtime(rank=rank, world_size=world, local_rank=local_rank, on_gpu=on_gpu)


def shutdown() -> None:
    """Leave the parallel state and the process group (so a test can start another run)."""
    import torch.distributed as dist
    from megatron.core import parallel_state

    parallel_state.destroy_model_parallel()
    if dist.is_initialized():
        dist.destroy_process_group()
