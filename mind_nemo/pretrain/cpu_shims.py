"""Everything megatron-core needs to train on a machine without a GPU, in one place.

megatron-core 0.16.1 assumes CUDA on its training path: rotary embeddings move ``inv_freq`` to
``torch.cuda.current_device()``, attention buffers and the global memory buffer are allocated
there, the default causal mask and the pipeline schedule's token counter are created with
``device="cuda"``, checkpoint saving calls ``torch.cuda.synchronize()``, and the RNG tracker
forks CUDA generator states. None of that is about the
math; it only names a device. So, **only when no GPU is present**, :func:`apply` does two things:

1. In a short, explicit list of megatron modules (:data:`PATCHED_MODULES`) the module-level name
   ``torch`` is replaced by :class:`CpuTorch`, a stand-in that forwards every attribute to the
   real ``torch`` except that ``torch.cuda.current_device()`` answers ``cpu`` and the tensor
   factories (``zeros``, ``ones``, ``empty``, ``tensor``, ...) turn ``device="cuda"`` into CPU.
   Nothing outside those modules sees a difference; the real ``torch`` is untouched.
2. The model-parallel RNG tracker is replaced by :class:`CpuRNGStatesTracker`, the same
   bookkeeping over CPU generator states.

Megatron's DDP wrapper and optimizers allocate CUDA buffers and use fused CUDA kernels; on CPU we
do not shim them but use :mod:`mind_nemo.pretrain.optim`'s plain AdamW with the same sharded
checkpoint format. ``tests/test_pretrain_cpu_shims.py`` fails loudly when an upgrade moves any of
the patched names, or when the shims stop being enough for a forward, backward and checkpoint.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
from collections.abc import Callable, Iterator
from typing import Any

import torch

#: The megatron-core version these shims were written against.
MEGATRON_VERSION = "0.16.1"

#: Modules whose ``torch`` is replaced, and the CUDA-only spot in each (for the next upgrade).
PATCHED_MODULES: dict[str, str] = {
    "megatron.core.models.common.embeddings.rotary_pos_embedding": "inv_freq to current_device",
    "megatron.core.transformer.dot_product_attention": "softmax offset on current_device",
    "megatron.core.transformer.attention": "KV buffers on current_device",
    "megatron.core.transformer.utils": 'default causal mask device="cuda"',
    "megatron.core.pipeline_parallel.schedules": 'token counter device="cuda"',
    "megatron.core.models.gpt.gpt_model": "sequence offsets on current_device",
    "megatron.core.tensor_parallel.layers": "weights/buffers on current_device",
    "megatron.core.utils": "GlobalMemoryBuffer on current_device",
    "megatron.core.dist_checkpointing.strategies.filesystem_async": "cuda.synchronize on save",
    "megatron.core.dist_checkpointing.strategies.async_utils": "cuda.synchronize on save",
    "megatron.core.dist_checkpointing.strategies.state_dict_saver": 'flags device="cuda"',
}
_FACTORIES = frozenset(
    {"zeros", "ones", "empty", "full", "tensor", "arange", "rand", "randn", "randint", "as_tensor"}
)
_CPU = torch.device("cpu")


def needed() -> bool:
    """The shims apply only where torch sees no GPU."""
    return not torch.cuda.is_available()


def _cpu_device(device: Any) -> Any:
    """``cuda``, ``cuda:N``, an int or a CUDA ``torch.device`` -> CPU; anything else unchanged."""
    if isinstance(device, int) or (isinstance(device, str) and device.startswith("cuda")):
        return _CPU
    if isinstance(device, torch.device) and device.type == "cuda":
        return _CPU
    return device


def _on_cpu(factory: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(factory)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if "device" in kwargs:
            kwargs["device"] = _cpu_device(kwargs["device"])
        return factory(*args, **kwargs)

    return wrapper


class _CpuCuda:
    """``torch.cuda`` as the patched modules see it: the current device is the CPU."""

    @staticmethod
    def current_device() -> torch.device:
        return _CPU

    @staticmethod
    def synchronize(device: Any = None) -> None:
        """CPU work is already finished when the call returns."""

    def __getattr__(self, name: str) -> Any:
        return getattr(torch.cuda, name)


class CpuTorch:
    """Stand-in for ``torch`` inside :data:`PATCHED_MODULES`; see the module docstring."""

    cuda = _CpuCuda()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(torch, name)
        return _on_cpu(attr) if name in _FACTORIES else attr


class CpuRNGStatesTracker:
    """megatron's ``CudaRNGStatesTracker`` contract (add/fork/get_states/set_states) on the CPU
    generator: a named stream forked for dropout inside tensor-parallel regions."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.states_: dict[str, torch.Tensor] = {}
        self.seeds_: set[int] = set()
        self._is_initialized = False

    def is_initialized(self) -> bool:
        return self._is_initialized

    def get_states(self) -> dict[str, torch.Tensor]:
        return dict(self.states_)

    def set_states(self, states: dict[str, torch.Tensor]) -> None:
        self._is_initialized = True
        self.states_ = dict(states)

    def add(self, name: str, seed: int) -> None:
        if seed in self.seeds_ or name in self.states_:
            raise RuntimeError(f"rng state {name} (seed {seed}) already exists")
        self._is_initialized = True
        self.seeds_.add(seed)
        self.states_[name] = torch.Generator().manual_seed(seed).get_state()

    @contextlib.contextmanager
    def fork(self, name: str = "model-parallel-rng") -> Iterator[None]:
        if name not in self.states_:
            raise RuntimeError(f"rng state {name} is not added")
        outside = torch.get_rng_state()
        torch.set_rng_state(self.states_[name])
        try:
            yield
        finally:
            self.states_[name] = torch.get_rng_state()
            torch.set_rng_state(outside)


def install_rng_tracker() -> CpuRNGStatesTracker:
    """Make megatron's ``get_cuda_rng_tracker()`` return a :class:`CpuRNGStatesTracker` (the
    one already installed, if any, so its seeded streams survive a second call)."""
    from megatron.core.tensor_parallel import random as mrandom

    if isinstance(mrandom._CUDA_RNG_STATE_TRACKER, CpuRNGStatesTracker):
        return mrandom._CUDA_RNG_STATE_TRACKER
    tracker = CpuRNGStatesTracker()
    mrandom._CUDA_RNG_STATE_TRACKER = tracker
    mrandom._CUDA_RNG_STATE_TRACKER_INITIALIZED = True
    return tracker


def apply() -> list[str]:
    """Patch the modules listed above (idempotent); return their names. No-op with a GPU."""
    if not needed():
        return []
    stand_in = CpuTorch()
    for name in PATCHED_MODULES:
        module = importlib.import_module(name)
        if getattr(module, "torch", None) is not torch and not isinstance(module.torch, CpuTorch):
            raise RuntimeError(f"{name} no longer imports torch as 'torch'; update cpu_shims")
        module.torch = stand_in  # type: ignore[attr-defined]
    install_rng_tracker()
    return list(PATCHED_MODULES)


def seed_model_parallel(seed: int) -> None:
    """Seed torch and the model-parallel stream as megatron's ``model_parallel_cuda_manual_seed``
    does (offset 2718 + tensor-parallel rank), on CPU or GPU."""
    from megatron.core import parallel_state
    from megatron.core.tensor_parallel import random as mrandom

    torch.manual_seed(seed)
    if not needed():
        mrandom.model_parallel_cuda_manual_seed(seed)
        return
    tracker = install_rng_tracker()
    tracker.reset()
    tp_rank = parallel_state.get_tensor_model_parallel_rank()
    tracker.add(mrandom._MODEL_PARALLEL_RNG_TRACKER_NAME, seed + 2718 + tp_rank)
