"""AdamW and its LR schedule: megatron-core's optimizer on GPUs, a plain torch twin on CPU.

On GPUs the model is wrapped in megatron-core's ``DistributedDataParallel`` and optimized by
``get_megatron_optimizer`` (mixed precision, optionally the distributed optimizer). Both
allocate CUDA buffers and use fused CUDA kernels, so on CPU :class:`CpuAdamW` stands in: torch's
AdamW with the same decay/no-decay groups, gradient clipping, and the same ``sharded_state_dict``
contract, so CPU checkpoints have megatron's layout (``optimizer.state.exp_avg.<param key>``).
The schedule is megatron-core's ``OptimizerParamScheduler`` in both cases.
"""

from __future__ import annotations

from itertools import chain
from typing import Any

import torch

from mind_nemo.pretrain.config import RecipeConfig


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Megatron's rule: no weight decay on biases and norm weights (1-D parameters)."""
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for param in model.parameters():
        if param.requires_grad:
            (no_decay if param.ndim == 1 else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay, "wd_mult": 1.0},
        {"params": no_decay, "weight_decay": 0.0, "wd_mult": 0.0},
    ]


class CpuAdamW:
    """torch AdamW behind the subset of megatron's ``MegatronOptimizer`` the loop uses."""

    def __init__(self, model: torch.nn.Module, recipe: RecipeConfig) -> None:
        o = recipe.optimizer
        self.model = model
        self.clip_grad = o.clip_grad
        self.optimizer = torch.optim.AdamW(
            _param_groups(model, o.weight_decay),
            lr=o.lr,
            betas=(o.adam_beta1, o.adam_beta2),
            eps=o.adam_eps,
            foreach=False,
        )

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.optimizer.param_groups

    def _params(self) -> list[torch.nn.Parameter]:
        return list(chain.from_iterable(g["params"] for g in self.optimizer.param_groups))

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def step(self) -> tuple[bool, float, None]:
        """Clip, step; return (success, grad norm before clipping, zeros) like megatron."""
        max_norm = self.clip_grad if self.clip_grad > 0 else float("inf")
        norm = torch.nn.utils.clip_grad_norm_(self._params(), max_norm)
        self.optimizer.step()
        return True, float(norm), None

    def _init_state(self) -> None:
        """Empty moments for every parameter, so a checkpoint has something to load into."""
        for param in self._params():
            if not self.optimizer.state[param]:
                self.optimizer.state[param] = {
                    "step": torch.tensor(0.0),
                    "exp_avg": torch.zeros_like(param),
                    "exp_avg_sq": torch.zeros_like(param),
                }

    def sharded_state_dict(
        self, model_sharded_state_dict: dict[str, Any], is_loading: bool = False
    ) -> dict[str, Any]:
        """Moments as ShardedTensors keyed like their parameters (megatron's FP32Optimizer form)."""
        from megatron.core.dist_checkpointing.optimizer import (
            get_param_id_to_sharded_param_map,
            optim_state_to_sharding_state,
        )

        self._init_state()
        state = self.optimizer.state_dict()
        steps = [float(s["step"]) for s in state["state"].values()]
        id_map = get_param_id_to_sharded_param_map(model_sharded_state_dict, self._params())
        optim_state_to_sharding_state(state, id_map, exclude_keys=("step",))
        return {"optimizer": state, "common_step": max(steps, default=0.0)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        inner = state["optimizer"]
        for param_state in inner["state"].values():
            param_state["step"] = torch.tensor(float(state["common_step"]))
        self.optimizer.load_state_dict(inner)


def build_optimizer(model: Any, recipe: RecipeConfig, on_gpu: bool) -> Any:
    """CPU: :class:`CpuAdamW`. GPU: megatron-core's optimizer over a megatron DDP model."""
    if not on_gpu:
        return CpuAdamW(model, recipe)
    from megatron.core.optimizer import OptimizerConfig, get_megatron_optimizer

    o, p = recipe.optimizer, recipe.parallel
    config = OptimizerConfig(
        optimizer="adam",
        lr=o.lr,
        min_lr=o.min_lr,
        weight_decay=o.weight_decay,
        adam_beta1=o.adam_beta1,
        adam_beta2=o.adam_beta2,
        adam_eps=o.adam_eps,
        clip_grad=o.clip_grad,
        bf16=p.precision == "bf16",
        fp16=p.precision == "fp16",
        params_dtype=torch.bfloat16 if p.precision == "bf16" else torch.float32,
        use_distributed_optimizer=p.use_distributed_optimizer,
    )
    return get_megatron_optimizer(config, [model])


def wrap_ddp(model: Any, recipe: RecipeConfig, on_gpu: bool) -> Any:
    """GPU: megatron-core's Float16Module (bf16/fp16) inside its DDP (gradient buffers,
    reduce-scatter for the distributed optimizer), hooked into the model config so the pipeline
    schedule syncs and finalizes gradients.
    CPU: the model itself (one process, nothing to reduce)."""
    if not on_gpu:
        return model
    from megatron.core.distributed import (
        DistributedDataParallel,
        DistributedDataParallelConfig,
        finalize_model_grads,
    )
    from megatron.core.transformer.module import Float16Module

    if recipe.parallel.precision in ("bf16", "fp16"):  # float32 logits and loss, as Megatron-LM
        model = Float16Module(model.config, model)
    ddp_config = DistributedDataParallelConfig(
        grad_reduce_in_fp32=True,
        overlap_grad_reduce=False,
        use_distributed_optimizer=recipe.parallel.use_distributed_optimizer,
    )
    wrapped = DistributedDataParallel(config=model.config, ddp_config=ddp_config, module=model)
    model.config.no_sync_func = wrapped.no_sync
    model.config.finalize_model_grads_func = finalize_model_grads
    return wrapped


def build_scheduler(optimizer: Any, recipe: RecipeConfig, train_iters: int) -> Any:
    """megatron-core's ``OptimizerParamScheduler``: warmup, then decay to ``min_lr``."""
    from megatron.core.optimizer_param_scheduler import OptimizerParamScheduler

    o = recipe.optimizer
    warmup = min(o.warmup_iters, max(train_iters - 1, 0))
    return OptimizerParamScheduler(
        optimizer,
        init_lr=0.0 if warmup else o.lr,
        max_lr=o.lr,
        min_lr=o.min_lr,
        lr_warmup_steps=warmup,
        lr_decay_steps=max(train_iters, 1),
        lr_decay_style=o.decay_style,
        start_wd=o.weight_decay,
        end_wd=o.weight_decay,
        wd_incr_steps=max(train_iters, 1),
        wd_incr_style="constant",
    )
