"""Continued-pretraining throughput on CPU, and a projection of the paper's run on H100s.

Measured in the same process, on the same tiny-recipe model shape and the same token batches,
one step of each variant in turn (so a shared machine's load hits all of them alike):

- ``mind_nemo``: our :class:`~mind_nemo.pretrain.train.Trainer` step: batches drawn from the
  mix's ``BlendedDataset``, megatron-core's forward/backward schedule, AdamW, LR schedule;
- ``plain megatron model``: a bare PyTorch loop over the same ``GPTModel`` (pre-built batches,
  ``loss.backward()``, ``torch.optim.AdamW``): what the schedule and data pipeline cost;
- ``plain HF llama``: a bare PyTorch loop over ``transformers``' ``LlamaForCausalLM`` of the same
  shape: how megatron-core's local (non-fused) layers compare with HF's on CPU.

Then the model-FLOPs formula (:func:`mind_nemo.pretrain.model.flops_per_token`: 6 x matmul
parameters + 12 x layers x seq x hidden per token) gives the CPU's achieved FLOP/s, and projects
the paper's 50B-token continued pretraining of the 7B recipe (and llama3_8b) to H100 GPU-hours
at stated model-FLOPs utilisations. **That part is a projection, not a measurement.**

    .venv/bin/python bench/bench_pretrain.py --mix-dir runs/mix/quickstart --steps 10
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from mind_nemo.core.errors import UserError
from mind_nemo.core.package_files import CONFIG_MODULE
from mind_nemo.pretrain import data, optim, runtime
from mind_nemo.pretrain import model as model_lib
from mind_nemo.pretrain.config import settle_base_checkpoint
from mind_nemo.pretrain.metrics import MetricsLogger
from mind_nemo.pretrain.train import Trainer

H100_BF16_DENSE = 989e12  # FLOP/s, SXM, dense (no sparsity)


def load_cfg(name: str, *overrides: str) -> Any:
    with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
        raw = compose("pretrain", overrides=[f"pretrain={name}", *overrides])
    settle_base_checkpoint(raw)
    return OmegaConf.to_object(raw)


def interleaved(steps: dict[str, Any], n: int, warmup: int) -> dict[str, float]:
    """Median seconds per step of each variant, their steps taken in turn (round robin), so a
    shared machine's changing load hits every variant alike."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    for i in range(warmup + n):
        for name, step in steps.items():
            start = time.perf_counter()
            step(i)
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: sorted(t)[len(t) // 2] for name, t in times.items()}


def ours(cfg: Any, rt: Any, blend: dict, iters: int, tmp: Path) -> Any:
    recipe = cfg.pretrain
    model = model_lib.build_model(recipe, on_gpu=rt.on_gpu)
    opt = optim.build_optimizer(model, recipe, rt.on_gpu)
    sched = optim.build_scheduler(opt, recipe, iters)
    datasets = data.build_datasets(recipe, blend, iters, tmp / "cache")
    metrics = MetricsLogger(tmp, enabled=False, tensorboard=False)
    trainer = Trainer(cfg, rt, model, opt, sched, datasets, iters, metrics)
    return trainer.train_step


def fixed_batches(cfg: Any, blend: dict, n: int, tmp: Path) -> list[dict[str, torch.Tensor]]:
    recipe = cfg.pretrain
    train, _ = data.build_datasets(recipe, blend, n, tmp / "cache_plain")
    out = []
    for step in range(n):
        for mb in data.micro_batches(train, step, recipe, 0, 1):
            out.append(mb)
    return out


def plain_megatron(cfg: Any, batches: list) -> Any:
    recipe = cfg.pretrain
    model = model_lib.build_model(recipe, on_gpu=False)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    per_step = recipe.global_batch_size // recipe.micro_batch_size

    def step(i: int) -> None:
        opt.zero_grad()
        for mb in batches[i * per_step : (i + 1) * per_step]:
            losses = model(mb["tokens"], mb["position_ids"], None, labels=mb["labels"])
            (losses.float().mean() / per_step).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    return step


def plain_hf(cfg: Any, batches: list) -> Any:
    from transformers import LlamaForCausalLM

    from mind_nemo.pretrain.hf_convert import hf_config

    recipe = cfg.pretrain
    model = LlamaForCausalLM(hf_config(recipe.model, 1, 2)).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    per_step = recipe.global_batch_size // recipe.micro_batch_size

    def step(i: int) -> None:
        opt.zero_grad()
        for mb in batches[i * per_step : (i + 1) * per_step]:
            logits = model(mb["tokens"]).logits
            loss = torch.nn.functional.cross_entropy(
                logits.float().view(-1, logits.shape[-1]), mb["labels"].view(-1)
            )
            (loss / per_step).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    return step


def projection(name: str, mfus: tuple[float, ...]) -> list[str]:
    r = load_cfg(name, "base_checkpoint=null").pretrain
    per_token = model_lib.flops_per_token(r.model, r.seq_length)
    tokens = float(r.train_tokens or 0)
    lines = [
        f"{name}: {r.expected_params / 1e9:.2f}B params, seq {r.seq_length}, "
        f"{per_token / 1e9:.1f} GFLOP/token (6N + attention), {tokens / 1e9:.0f}B tokens "
        f"= {per_token * tokens:.3e} FLOP"
    ]
    for mfu in mfus:
        gpu_hours = per_token * tokens / (H100_BF16_DENSE * mfu) / 3600
        tok_s = H100_BF16_DENSE * mfu / per_token
        lines.append(
            f"  MFU {mfu:.0%}: {tok_s:,.0f} tokens/s/GPU -> {gpu_hours:,.0f} H100 GPU-hours "
            f"({gpu_hours / 64 / 24:.1f} days on 64 GPUs)"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mix-dir", default="runs/mix/quickstart")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    if not (Path(args.mix_dir) / "blend.json").is_file():
        raise SystemExit(f"{args.mix_dir}: no blend.json; run python -m mind_nemo.mix first")
    torch.set_num_threads(args.threads)
    cfg = load_cfg("tiny_cpu", f"mix_dir={args.mix_dir}", "output_dir=unused")
    recipe = cfg.pretrain
    tokens = recipe.global_batch_size * recipe.seq_length
    blend = data.read_blend(args.mix_dir)
    try:  # as pretrain does: megatron-core would hang on a part with no document
        data.check_split(cfg.pretrain.split, blend)
    except UserError as err:
        raise SystemExit(f"error: {err}") from None
    rt = runtime.init(recipe)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        n = args.steps + args.warmup
        batches = fixed_batches(cfg, blend, n, tmp)
        steps = {
            "mind_nemo (megatron-core schedule)": ours(cfg, rt, blend, n, tmp),
            "plain loop, same GPTModel": plain_megatron(cfg, batches),
            "plain loop, HF LlamaForCausalLM": plain_hf(cfg, batches),
        }
        results = interleaved(steps, args.steps, args.warmup)
    runtime.shutdown()
    per_token = model_lib.flops_per_token(recipe.model, recipe.seq_length)
    base = results["plain loop, same GPTModel"]
    print(
        f"tiny_cpu: {recipe.expected_params:,} params, {tokens} tokens/step "
        f"({recipe.global_batch_size} x {recipe.seq_length}), {args.threads} threads, "
        f"median of {args.steps} interleaved steps after {args.warmup} warm-up"
    )
    print(f"{'':36} {'s/step':>8} {'tokens/s':>10} {'GFLOP/s':>8} {'vs plain':>9}")
    for name, sec in results.items():
        print(
            f"{name:36} {sec:8.3f} {tokens / sec:10.0f} {per_token * tokens / sec / 1e9:8.2f} "
            f"{base / sec:8.2f}x"
        )
    print("\nProjection (model FLOPs on H100 bf16 dense 989 TFLOP/s; not measured here):")
    for name in ("mind_7b", "llama3_8b"):
        print("\n".join(projection(name, (0.35, 0.45, 0.55))))


if __name__ == "__main__":
    main()
