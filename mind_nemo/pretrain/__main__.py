"""``python -m mind_nemo.pretrain pretrain=RECIPE mix_dir=MIX output_dir=OUT [base_checkpoint=..]``.

Continued pretraining with megatron-core on a mix's blend: from a base checkpoint (HF llama
folder, Megatron dist checkpoint, ``embedded`` SmolLM2, or ``null`` for random init), with
distributed checkpoints, resume, JSONL/TensorBoard metrics and a final Hugging Face export. One
process on CPU; under torchrun on GPUs; ``launch=slurm`` prints the sbatch script instead.
"""

from __future__ import annotations

import logging
import os
import sys

import hydra
from omegaconf import DictConfig

from mind_nemo.core.cli import CONFIG_PATH, run_hydra_main
from mind_nemo.core.config import typed_config
from mind_nemo.core.errors import exit_on_user_error
from mind_nemo.pretrain.config import (
    PretrainConfig,
    settle_base_checkpoint,
)


def print_summary(summary: dict) -> None:
    if "step" in summary:  # step=convert / step=export
        print(f"{summary['step']}: {summary['path'] or 'nothing to do (no Hugging Face base)'}")
        return
    print(
        f"status:      {summary['status']} at iteration {summary['iteration']}"
        f"/{summary['train_iters']} ({summary['recipe']}, {summary['parameters']:,} params)"
    )
    print(f"started:     {summary['start']}")
    print(f"val loss:    {summary['first_val_loss']} -> {summary['last_val_loss']}")
    print(f"checkpoint:  {summary['checkpoint']}")
    if summary.get("hf"):
        print(f"HF export:   {summary['hf']}")


@exit_on_user_error
def run(raw_cfg: DictConfig) -> dict:
    settle_base_checkpoint(raw_cfg)
    cfg: PretrainConfig = typed_config(raw_cfg, PretrainConfig)
    if cfg.launch.type == "slurm":
        from mind_nemo.pretrain.launch import render_sbatch

        print(render_sbatch(cfg, sys.argv[1:]), end="")
        return {}
    from mind_nemo.pretrain.run import run_pretrain

    summary = run_pretrain(cfg, raw_cfg)
    if int(os.environ.get("RANK", "0")) == 0:
        print_summary(summary)
    return summary


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="pretrain")
def main(cfg: DictConfig) -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.getLogger("megatron").setLevel(logging.WARNING)
    run(cfg)


if __name__ == "__main__":  # the guard matters: checkpoint saving starts worker processes
    run_hydra_main("pretrain", main)
