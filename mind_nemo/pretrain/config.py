"""Typed configs of ``python -m mind_nemo.pretrain``, registered in Hydra's ConfigStore.

A recipe (``hydra_configs/pretrain/<name>.yaml``) fills :class:`RecipeConfig`: the model's shape,
the optimizer, the schedule, the parallel layout and the checkpoint cadence. The top-level
:class:`PretrainConfig` adds what changes per run (mix folder, base checkpoint, output folder,
launcher). A misspelt key or a wrong type fails at start-up with one line, before torch or
megatron-core is imported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from omegaconf import MISSING, DictConfig, OmegaConf

from mind_nemo.core.config import register_schema
from mind_nemo.core.errors import UserError

#: What ``step=`` may say (see :mod:`mind_nemo.pretrain.__main__`).
STEPS: tuple[str, ...] = ("auto", "convert", "train", "export")


@dataclass
class ModelConfig:
    """A llama-family decoder: RMSNorm, RoPE, SwiGLU, GQA, optional biases and tied embeddings."""

    num_layers: int = MISSING
    hidden_size: int = MISSING
    ffn_hidden_size: int = MISSING
    num_attention_heads: int = MISSING
    #: Key/value heads (GQA); equal to ``num_attention_heads`` is plain multi-head attention.
    num_query_groups: int = MISSING
    #: Vocabulary of the tokenizer (the embedding is padded past it, Megatron style).
    vocab_size: int = MISSING
    make_vocab_size_divisible_by: int = 128
    max_position_embeddings: int = 4096
    rotary_base: float = 10000.0
    norm_epsilon: float = 1e-5
    add_bias_linear: bool = False
    #: Tied input embedding and output layer (SmolLM2: yes; the paper's 7B: no).
    tie_embeddings: bool = False
    init_method_std: float = 0.02
    hidden_dropout: float = 0.0
    attention_dropout: float = 0.0


@dataclass
class OptimizerConfig:
    """AdamW with a warmup + cosine decay, gradient clipping (the paper: 0.9/0.95, wd 0.1)."""

    lr: float = 3e-4
    min_lr: float = 3e-6
    weight_decay: float = 0.1
    adam_beta1: float = 0.9
    adam_beta2: float = 0.95
    adam_eps: float = 1e-8
    clip_grad: float = 1.0
    warmup_iters: int = 0
    #: ``cosine``, ``linear`` or ``constant`` (megatron-core's OptimizerParamScheduler styles).
    decay_style: str = "cosine"


@dataclass
class ParallelConfig:
    """How one model is split over GPUs; data parallel size is what is left of the world."""

    tensor_model_parallel_size: int = 1
    pipeline_model_parallel_size: int = 1
    sequence_parallel: bool = False
    #: ZeRO-1 style sharding of optimizer state over data-parallel ranks (GPU only).
    use_distributed_optimizer: bool = False
    #: ``bf16``, ``fp16`` or ``fp32``; CPU runs always use fp32.
    precision: str = "bf16"


@dataclass
class RecipeConfig:
    """One continued-pretraining recipe: model, optimizer, schedule, parallelism, cadence."""

    name: str = MISSING
    model: ModelConfig = field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    seq_length: int = 4096
    micro_batch_size: int = 1
    #: Sequences per optimizer step, over all data-parallel ranks and micro-batches.
    global_batch_size: int = 1
    #: Length of training in tokens (``train_iters`` = tokens / (global batch x seq)), or iters.
    train_tokens: float | None = None
    train_iters: int | None = None
    #: Default base weights of this recipe (the top-level ``base_checkpoint`` overrides it).
    #: Required: a recipe says ``null`` (random init) explicitly, never by omission.
    base_checkpoint: str | None = MISSING
    save_interval: int = 1000
    log_interval: int = 1
    #: Evaluate on the blend's validation split every this many steps (0: only at the end).
    eval_interval: int = 0
    eval_iters: int = 4
    #: Percent split of every dataset into train, validation, test documents.
    split: str = "98,2,0"
    seed: int = 1234
    #: Expected parameter count (checked by the tests on the meta device; 0: not recorded).
    expected_params: int = 0

    def iterations(self) -> int:
        """Optimizer steps of the run, from ``train_iters`` or ``train_tokens``."""
        if self.train_iters is not None:
            return int(self.train_iters)
        if self.train_tokens is None:
            raise UserError("set pretrain.train_iters or pretrain.train_tokens")
        return math.ceil(self.train_tokens / (self.global_batch_size * self.seq_length))


@dataclass
class LaunchConfig:
    """How the run is launched: one local process, torchrun on local GPUs, or SLURM nodes."""

    #: ``local`` (one process; torchrun when gpus_per_node > 1) or ``slurm``.
    type: str = "local"
    nodes: int = 1
    gpus_per_node: int = 1
    partition: str | None = None
    account: str | None = None
    time: str = "04:00:00"
    job_name: str = "mind-pretrain"
    #: Python interpreter on the nodes (a venv path, or ``python``).
    python: str = "python"
    rdzv_port: int = 29500
    #: Extra ``#SBATCH`` lines, e.g. ``["--exclusive", "--mem=0"]``.
    extra_sbatch: list[str] = field(default_factory=list)
    #: Shell lines run on every node before torchrun (module loads, env vars).
    setup: list[str] = field(default_factory=list)


@dataclass
class PretrainConfig:
    """``python -m mind_nemo.pretrain``: a mix's blend + base weights -> trained checkpoints."""

    pretrain: RecipeConfig = field(default_factory=RecipeConfig)
    #: A mix run folder (``blend.json``, ``datasets/*_text_document.{bin,idx}``).
    mix_dir: str = MISSING
    #: ``embedded`` (packaged SmolLM2-135M-Instruct), a Hugging Face llama-family model folder,
    #: a Megatron distributed checkpoint folder, or ``null`` (random init; only when asked).
    base_checkpoint: str | None = None
    output_dir: str = MISSING
    #: ``auto``: convert the base if needed, train, export (one process); under torchrun only
    #: train. ``convert``/``train``/``export``: that step alone (the SLURM script chains them).
    step: str = "auto"
    #: Stop after this step in this session (a clean exit with a checkpoint; for tests/preemption).
    exit_after_iters: int | None = None
    #: Write the final Hugging Face export into ``output_dir/hf``.
    export_hf: bool = True
    tensorboard: bool = True
    #: Torch threads on CPU (``null``: torch's default).
    cpu_threads: int | None = None
    launch: LaunchConfig = field(default_factory=LaunchConfig)


def settle_base_checkpoint(raw: DictConfig) -> None:
    """The top-level ``base_checkpoint`` defaults to the recipe's; a recipe without one (the GPU
    recipes) needs it on the command line, and gets the user's value so both agree."""
    given = not OmegaConf.is_interpolation(raw, "base_checkpoint")
    if OmegaConf.is_missing(raw.pretrain, "base_checkpoint"):
        if not given:
            raise UserError(
                f"recipe {raw.pretrain.name} needs base_checkpoint=<Hugging Face folder | Megatron "
                "checkpoint | embedded | null for random init>"
            )
        raw.pretrain.base_checkpoint = raw.base_checkpoint


register_schema("pretrain_schema", PretrainConfig)  # recipes merge into its typed field
