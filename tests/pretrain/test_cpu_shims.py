"""The CPU shims: loud failures when a megatron-core upgrade moves what they patch.

Each patched module must still exist, still import ``torch`` under that name, and still contain
a CUDA-only spot (if one disappears, the shim for it is dead weight and should go). Then a real
forward, backward, optimizer step, checkpoint save and load of the tiny recipe must work on CPU
through megatron-core's own schedule and ``dist_checkpointing``.
"""

from __future__ import annotations

import importlib
import inspect

import pytest
import torch

from mind_nemo.pretrain import checkpoint, cpu_shims, optim
from mind_nemo.pretrain import model as model_lib
from mind_nemo.pretrain.train import forward_step
from tests.helpers import REPO
from tests.pretrain.helpers import recipe

pytest_plugins = ("tests.pretrain.helpers",)  # fixtures: megatron_runtime

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="CPU shims apply only on CPU")


def test_megatron_is_the_version_the_shims_were_written_for():
    from megatron.core import package_info

    assert package_info.__version__ == cpu_shims.MEGATRON_VERSION, (
        "megatron-core changed: re-check mind_nemo/pretrain/cpu_shims.py, then bump its version"
    )


def test_checkpoint_saving_prerequisites():
    import psutil  # noqa: F401  (megatron's checkpoint writer dies without it; the parent hangs)

    main = (REPO / "mind_nemo/pretrain/__main__.py").read_text()
    assert 'if __name__ == "__main__":' in main  # the writer's subprocess re-imports __main__


@pytest.mark.parametrize("name", sorted(cpu_shims.PATCHED_MODULES))
def test_each_patched_module_still_has_its_cuda_spot(name):
    module = importlib.import_module(name)
    assert hasattr(module, "torch"), f"{name} no longer imports torch: cpu_shims patches nothing"
    source = inspect.getsource(module)
    assert "cuda" in source, f"{name} has no CUDA-only code any more: drop it from PATCHED_MODULES"


def test_rng_tracker_contract_is_still_the_one_we_mirror():
    from megatron.core.tensor_parallel import random as mrandom

    for attr in ("_CUDA_RNG_STATE_TRACKER", "_CUDA_RNG_STATE_TRACKER_INITIALIZED"):
        assert hasattr(mrandom, attr), f"megatron renamed {attr}: update install_rng_tracker"
    for method in ("add", "fork", "get_states", "set_states", "is_initialized", "reset"):
        assert hasattr(mrandom.CudaRNGStatesTracker, method)
        assert hasattr(cpu_shims.CpuRNGStatesTracker, method)


def test_shims_are_scoped_and_real_torch_is_untouched(megatron_runtime):
    rope = importlib.import_module("megatron.core.models.common.embeddings.rotary_pos_embedding")
    assert isinstance(rope.torch, cpu_shims.CpuTorch)
    assert rope.torch.cuda.current_device() == torch.device("cpu")
    assert rope.torch.zeros(2, device="cuda").device.type == "cpu"
    with pytest.raises((AssertionError, RuntimeError)):
        torch.cuda.current_device()  # the real torch still has no GPU
    assert cpu_shims.apply() == list(cpu_shims.PATCHED_MODULES)  # idempotent


def test_rng_fork_uses_its_own_stream_and_restores_the_outer_one(megatron_runtime):
    from megatron.core.tensor_parallel import get_cuda_rng_tracker

    tracker = get_cuda_rng_tracker()
    assert isinstance(tracker, cpu_shims.CpuRNGStatesTracker)
    before = torch.get_rng_state()
    with tracker.fork():
        inside = torch.rand(3)
    assert torch.equal(torch.get_rng_state(), before)
    with tracker.fork():
        again = torch.rand(3)
    assert not torch.equal(inside, again)  # the named stream advanced


def test_forward_backward_step_save_load_on_cpu(megatron_runtime, tmp_path):
    from megatron.core.pipeline_parallel import get_forward_backward_func

    cfg = recipe("tiny_cpu", "pretrain.seq_length=32")
    r = cfg.pretrain
    model = model_lib.build_model(r, on_gpu=False)
    optimizer = optim.build_optimizer(model, r, on_gpu=False)
    scheduler = optim.build_scheduler(optimizer, r, train_iters=4)
    tokens = torch.randint(0, 1000, (2, 32))
    batch = {
        "tokens": tokens,
        "labels": torch.roll(tokens, -1, 1),
        "loss_mask": torch.ones(2, 32),
        "position_ids": torch.arange(32).expand(2, -1),
    }
    out = get_forward_backward_func()(
        forward_step_func=forward_step,
        data_iterator=iter([batch]),
        model=[model],
        num_microbatches=1,
        seq_length=32,
        micro_batch_size=2,
        forward_only=False,
    )
    loss_sum, count = out[0]["lm loss"]
    assert count == 64 and 5 < loss_sum / count < 15  # ~ln(49152) for random weights
    assert all(p.grad is not None for p in model.parameters())
    ok, grad_norm, _ = optimizer.step()
    assert ok and grad_norm > 0
    scheduler.step(1)
    saved = checkpoint.save(tmp_path, 1, model, optimizer, scheduler)
    assert (saved / "metadata.json").is_file() and checkpoint.latest_iteration(tmp_path) == 1

    fresh = model_lib.build_model(r, on_gpu=False)
    fresh_opt = optim.build_optimizer(fresh, r, on_gpu=False)
    fresh_sched = optim.build_scheduler(fresh_opt, r, train_iters=4)
    assert checkpoint.load_training(tmp_path, fresh, fresh_opt, fresh_sched) == 1
    for (name, a), b in zip(model.state_dict().items(), fresh.state_dict().values(), strict=True):
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b), name
    moments = [s["exp_avg"] for s in fresh_opt.optimizer.state.values()]
    assert moments and any(m.abs().sum() > 0 for m in moments)
    assert fresh_sched.num_steps == scheduler.num_steps == 1
