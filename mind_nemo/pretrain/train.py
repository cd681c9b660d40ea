"""The training loop: megatron-core's forward/backward schedule, AdamW, checkpoints, metrics.

Each step feeds this rank's micro-batches (see :mod:`mind_nemo.pretrain.data`) to megatron-core's
``get_forward_backward_func()`` (no pipelining, or 1F1B across pipeline stages), steps the
optimizer and the LR schedule, and logs loss, LR, grad norm and tokens/s. Every
``save_interval`` steps and at the end it writes a distributed checkpoint; a rerun resumes from
the latest one at the same step, schedule and data order. Validation loss is measured on fixed
held-out batches of the blend's validation split, so successive values are comparable.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import torch

from mind_nemo.pretrain import checkpoint, data
from mind_nemo.pretrain.config import PretrainConfig
from mind_nemo.pretrain.metrics import MetricsLogger
from mind_nemo.pretrain.runtime import Runtime


def loss_func(loss_mask: torch.Tensor, output_tensor: torch.Tensor) -> tuple[Any, ...]:
    """Sum of token losses, token count, and a detached copy for reporting: the schedule divides
    ``output_tensor`` in place, so the report must be a clone, not a view."""
    mask = loss_mask.view(-1).float()
    loss_sum = torch.sum(output_tensor.view(-1).float() * mask)
    num_tokens = mask.sum().to(torch.int)
    report = torch.stack([loss_sum.clone().detach(), num_tokens.clone().detach().float()])
    return loss_sum, num_tokens, {"lm loss": report}


def forward_step(data_iterator: Iterator[dict[str, torch.Tensor]], model: Any) -> tuple[Any, Any]:
    """One micro-batch through the model; megatron's schedule calls this."""
    batch = next(data_iterator)
    device = next(model.parameters()).device
    batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    output = model(batch["tokens"], batch["position_ids"], None, labels=batch["labels"])
    return output, partial(loss_func, batch["loss_mask"])


class Trainer:
    """Owns one run's model, optimizer, schedule and datasets; ``run`` trains to the end."""

    def __init__(
        self,
        cfg: PretrainConfig,
        runtime: Runtime,
        model: Any,
        optimizer: Any,
        scheduler: Any,
        datasets: tuple[Any, Any],
        train_iters: int,
        metrics: MetricsLogger,
    ) -> None:
        from megatron.core import parallel_state as ps

        self.cfg, self.recipe, self.runtime = cfg, cfg.pretrain, runtime
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.train_ds, self.valid_ds = datasets
        self.train_iters = train_iters
        self.metrics = metrics
        self.ckpt_root = Path(cfg.output_dir) / "checkpoints"
        self.dp_rank = ps.get_data_parallel_rank()
        self.dp_size = ps.get_data_parallel_world_size()
        self.num_microbatches = self.recipe.global_batch_size // (
            self.recipe.micro_batch_size * self.dp_size
        )

    def _run_schedule(self, dataset: Any, step: int, forward_only: bool) -> float:
        """Forward (+ backward) over one global batch; the mean token loss, reduced over
        data-parallel ranks and sent from the last pipeline stage to the others."""
        from megatron.core import parallel_state as ps
        from megatron.core.pipeline_parallel import get_forward_backward_func

        batches = data.micro_batches(dataset, step, self.recipe, self.dp_rank, self.dp_size)
        outputs = get_forward_backward_func()(
            forward_step_func=forward_step,
            data_iterator=batches,
            model=[self.model],
            num_microbatches=self.num_microbatches,
            seq_length=self.recipe.seq_length,
            micro_batch_size=self.recipe.micro_batch_size,
            forward_only=forward_only,
        )
        total = torch.zeros(2, device=self.runtime.device)
        if ps.is_pipeline_last_stage():
            total += torch.stack([o["lm loss"] for o in outputs]).sum(dim=0).to(total.device)
            if self.dp_size > 1:
                torch.distributed.all_reduce(total, group=ps.get_data_parallel_group())
        if ps.get_pipeline_model_parallel_world_size() > 1:  # every rank reports the same loss
            torch.distributed.broadcast(
                total,
                src=ps.get_pipeline_model_parallel_last_rank(),
                group=ps.get_pipeline_model_parallel_group(),
            )
        return float(total[0] / total[1].clamp(min=1))

    def train_step(self, step: int) -> dict[str, float]:
        self.model.train()
        if hasattr(self.model, "zero_grad_buffer"):
            self.model.zero_grad_buffer()
        self.optimizer.zero_grad()
        start = time.perf_counter()
        lr = float(self.optimizer.param_groups[0]["lr"])  # the LR this step uses
        loss = self._run_schedule(self.train_ds, step, forward_only=False)
        _, grad_norm, _ = self.optimizer.step()
        self.scheduler.step(increment=1)
        if self.runtime.on_gpu:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        tokens = self.recipe.global_batch_size * self.recipe.seq_length
        return {
            "loss": loss,
            "lr": lr,
            "grad_norm": float(grad_norm) if grad_norm is not None else float("nan"),
            "tokens_per_s": tokens / seconds,
            "step_time_s": seconds,
            "consumed_tokens": float((step + 1) * tokens),
        }

    @torch.no_grad()
    def evaluate(self) -> float:
        """Mean loss over ``eval_iters`` fixed global batches of the validation split."""
        self.model.eval()
        losses = [
            self._run_schedule(self.valid_ds, i, forward_only=True)
            for i in range(self.recipe.eval_iters)
        ]
        self.model.train()
        return sum(losses) / len(losses)

    def run(self, start: int) -> dict[str, Any]:
        """Train from iteration ``start`` to the end (or ``exit_after_iters``)."""
        stop = self.train_iters
        if self.cfg.exit_after_iters is not None:
            stop = min(stop, self.cfg.exit_after_iters)
        first_val = self.evaluate() if start == 0 else None
        if first_val is not None:
            self.metrics.log(0, {"val_loss": first_val})
        last = None
        for step in range(start, stop):
            row = self.train_step(step)
            done = step + 1
            if done % self.recipe.log_interval == 0 or done == stop:
                self.metrics.log(done, row)
            every = self.recipe.eval_interval
            if (every and done % every == 0) or done == self.train_iters:
                last = self.evaluate()
                self.metrics.log(done, {"val_loss": last})
            if done % self.recipe.save_interval == 0 or done == stop:
                checkpoint.save(self.ckpt_root, done, self.model, self.optimizer, self.scheduler)
        return {
            "iteration": max(stop, start),
            "finished": stop >= self.train_iters,
            "first_val_loss": first_val,
            "last_val_loss": last,
        }
