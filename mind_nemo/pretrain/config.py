"""Typed configs of ``python -m mind_nemo.pretrain``, registered in Hydra's ConfigStore.

A recipe (``hydra_configs/pretrain/<name>.yaml``) fills :class:`RecipeConfig`: the model's shape,
the optimizer, the schedule, the parallel layout and the checkpoint cadence. The top-level
:class:`PretrainConfig` adds what changes per run (mix folder, base checkpoint, output folder,
launcher). A misspelt key, a wrong type or a value outside its range (each setting declares it,
:func:`~mind_nemo.core.config.setting`; checked when the dataclass is built) fails at start-up
with one line, before torch or megatron-core is imported.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from omegaconf import MISSING, DictConfig, OmegaConf

from mind_nemo.core.config import Checked, bad_value, check_settings, register_schema, setting
from mind_nemo.core.errors import UserError

#: What ``step=`` may say (see :mod:`mind_nemo.pretrain.__main__`).
STEPS: tuple[str, ...] = ("auto", "convert", "train", "export")
#: megatron-core's OptimizerParamScheduler styles, the precisions, the launchers.
DECAY_STYLES: tuple[str, ...] = ("cosine", "linear", "constant")
PRECISIONS: tuple[str, ...] = ("bf16", "fp16", "fp32")
LAUNCHERS: tuple[str, ...] = ("local", "slurm")
#: Megatron's ``--split``: up to three non-negative weights (train, validation, test).
_SPLIT = re.compile(r"^\s*\d+(\.\d*)?(\s*[,/]\s*\d+(\.\d*)?){0,2}\s*$")


@dataclass
class ModelConfig:
    """A llama-family decoder: RMSNorm, RoPE, SwiGLU, GQA, optional biases and tied embeddings."""

    num_layers: int = setting(MISSING, ge=1)
    #: A multiple of ``num_attention_heads``.
    hidden_size: int = setting(MISSING, ge=1)
    ffn_hidden_size: int = setting(MISSING, ge=1)
    num_attention_heads: int = setting(MISSING, ge=1)
    #: Key/value heads (GQA), dividing ``num_attention_heads``; equal to it is plain multi-head
    #: attention.
    num_query_groups: int = setting(MISSING, ge=1)
    #: Vocabulary of the tokenizer (the embedding is padded past it, Megatron style).
    vocab_size: int = setting(MISSING, ge=1)
    make_vocab_size_divisible_by: int = setting(128, ge=1)
    max_position_embeddings: int = setting(4096, ge=1)
    rotary_base: float = setting(10000.0, gt=0)
    norm_epsilon: float = setting(1e-5, gt=0)
    add_bias_linear: bool = False
    #: Tied input embedding and output layer (SmolLM2: yes; the paper's 7B: no).
    tie_embeddings: bool = False
    init_method_std: float = setting(0.02, gt=0)
    hidden_dropout: float = setting(0.0, ge=0, lt=1)
    attention_dropout: float = setting(0.0, ge=0, lt=1)

    def __post_init__(self) -> None:
        check_settings(self)
        heads, groups = self.num_attention_heads, self.num_query_groups
        if MISSING in (heads, groups, self.hidden_size):
            return  # a recipe fills these in
        if heads % groups:
            why = f"must divide num_attention_heads={heads}"
            raise bad_value("num_query_groups", groups, why)
        if self.hidden_size % heads:
            why = f"must be a multiple of num_attention_heads={heads}"
            raise bad_value("hidden_size", self.hidden_size, why)


@dataclass
class OptimizerConfig:
    """AdamW with a warmup + cosine decay, gradient clipping (the paper: 0.9/0.95, wd 0.1)."""

    lr: float = setting(3e-4, gt=0)
    #: Where the decay ends; at most ``lr``.
    min_lr: float = setting(3e-6, ge=0)
    weight_decay: float = setting(0.1, ge=0)
    adam_beta1: float = setting(0.9, ge=0, lt=1)
    adam_beta2: float = setting(0.95, ge=0, lt=1)
    adam_eps: float = setting(1e-8, gt=0)
    #: Gradient-norm clip (0: no clipping).
    clip_grad: float = setting(1.0, ge=0)
    warmup_iters: int = setting(0, ge=0)
    #: ``cosine``, ``linear`` or ``constant`` (megatron-core's OptimizerParamScheduler styles).
    decay_style: str = setting("cosine", choices=DECAY_STYLES)

    def __post_init__(self) -> None:
        check_settings(self)
        if self.min_lr > self.lr:
            raise bad_value("min_lr", self.min_lr, f"must be <= lr={self.lr}")


@dataclass
class ParallelConfig(Checked):
    """How one model is split over GPUs; data parallel size is what is left of the world."""

    tensor_model_parallel_size: int = setting(1, ge=1)
    pipeline_model_parallel_size: int = setting(1, ge=1)
    sequence_parallel: bool = False
    #: ZeRO-1 style sharding of optimizer state over data-parallel ranks (GPU only).
    use_distributed_optimizer: bool = False
    #: ``bf16``, ``fp16`` or ``fp32``; CPU runs always use fp32.
    precision: str = setting("bf16", choices=PRECISIONS)


@dataclass
class RecipeConfig:
    """One continued-pretraining recipe: model, optimizer, schedule, parallelism, cadence."""

    name: str = MISSING
    model: ModelConfig = field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    seq_length: int = setting(4096, ge=1)
    micro_batch_size: int = setting(1, ge=1)
    #: Sequences per optimizer step, over all data-parallel ranks and micro-batches (a multiple
    #: of ``micro_batch_size``).
    global_batch_size: int = setting(1, ge=1)
    #: Length of training in tokens (``train_iters`` = tokens / (global batch x seq)), or iters.
    train_tokens: float | None = setting(None, gt=0)
    train_iters: int | None = setting(None, ge=1)
    #: Default base weights of this recipe (the top-level ``base_checkpoint`` overrides it).
    #: Required: a recipe says ``null`` (random init) explicitly, never by omission.
    base_checkpoint: str | None = MISSING
    save_interval: int = setting(1000, ge=1)
    log_interval: int = setting(1, ge=1)
    #: Evaluate on the blend's validation split every this many steps (0: only at the end).
    eval_interval: int = setting(0, ge=0)
    eval_iters: int = setting(4, ge=1)
    #: Percent split of every dataset into train, validation, test documents. Every part with a
    #: share needs a document of every source (checked against the mix's ``.idx`` files before
    #: training; megatron-core would hang on an empty part). On the command line: ``98/2/0``.
    split: str = "98,2,0"
    seed: int = setting(1234, ge=0)
    #: Expected parameter count (checked by the tests on the meta device; 0: not recorded).
    expected_params: int = setting(0, ge=0)

    def __post_init__(self) -> None:
        check_settings(self)
        if self.global_batch_size % self.micro_batch_size:
            why = f"must be a multiple of micro_batch_size={self.micro_batch_size}"
            raise bad_value("global_batch_size", self.global_batch_size, why)
        if not _SPLIT.match(self.split) or not any(
            float(part) for part in re.split(r"[,/]", self.split)
        ):
            raise bad_value("split", self.split, "must be up to 3 weights like 98,2,0 (sum > 0)")

    def iterations(self) -> int:
        """Optimizer steps of the run, from ``train_iters`` or ``train_tokens``."""
        if self.train_iters is not None:
            return int(self.train_iters)
        if self.train_tokens is None:
            raise UserError("set pretrain.train_iters or pretrain.train_tokens")
        return math.ceil(self.train_tokens / (self.global_batch_size * self.seq_length))


@dataclass
class LaunchConfig(Checked):
    """How the run is launched: one local process, torchrun on local GPUs, or SLURM nodes."""

    #: ``local`` (one process; torchrun when gpus_per_node > 1) or ``slurm``.
    type: str = setting("local", choices=LAUNCHERS)
    nodes: int = setting(1, ge=1)
    gpus_per_node: int = setting(1, ge=1)
    partition: str | None = None
    account: str | None = None
    time: str = "04:00:00"
    job_name: str = "mind-pretrain"
    #: Python interpreter on the nodes (a venv path, or ``python``).
    python: str = "python"
    rdzv_port: int = setting(29500, ge=1, le=65535)
    #: Extra ``#SBATCH`` lines, e.g. ``["--exclusive", "--mem=0"]``.
    extra_sbatch: list[str] = field(default_factory=list)
    #: Shell lines run on every node before torchrun (module loads, env vars).
    setup: list[str] = field(default_factory=list)


@dataclass
class PretrainConfig(Checked):
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
    step: str = setting("auto", choices=STEPS)
    #: Stop after this step in this session (a clean exit with a checkpoint; for tests/preemption).
    exit_after_iters: int | None = setting(None, ge=1)
    #: Write the final Hugging Face export into ``output_dir/hf``.
    export_hf: bool = True
    tensorboard: bool = True
    #: Torch threads on CPU (``null``: torch's default).
    cpu_threads: int | None = setting(None, ge=1)
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
