"""Build the megatron-core ``GPTModel`` a recipe describes, and count what it holds.

One place turns :class:`~mind_nemo.pretrain.config.ModelConfig` into megatron-core's
``TransformerConfig`` + ``GPTModel`` (RMSNorm, RoPE, SwiGLU, GQA, no biases, tied or untied
embeddings), so training, HF conversion, export and the meta-device shape tests all build the
same thing. On GPU with Transformer Engine installed we use its layer spec (fused kernels); on
CPU, or without it, megatron-core's local spec (plain torch modules).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from mind_nemo.pretrain.config import ModelConfig, RecipeConfig

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def padded_vocab_size(model: ModelConfig, tensor_parallel: int) -> int:
    """Megatron pads the embedding to a multiple of ``divisible_by x TP`` rows."""
    multiple = model.make_vocab_size_divisible_by * tensor_parallel
    return math.ceil(model.vocab_size / multiple) * multiple


def params_dtype(recipe: RecipeConfig, on_gpu: bool) -> torch.dtype:
    """bf16/fp16 only where a GPU runs the recipe; CPU training is fp32."""
    return DTYPES[recipe.parallel.precision] if on_gpu else torch.float32


def transformer_config(recipe: RecipeConfig, *, on_gpu: bool, init: bool = True) -> Any:
    """megatron-core's ``TransformerConfig`` for the recipe (fusions only where a GPU has them)."""
    from megatron.core.transformer.transformer_config import TransformerConfig

    m, p = recipe.model, recipe.parallel
    dtype = params_dtype(recipe, on_gpu)
    return TransformerConfig(
        num_layers=m.num_layers,
        hidden_size=m.hidden_size,
        ffn_hidden_size=m.ffn_hidden_size,
        num_attention_heads=m.num_attention_heads,
        num_query_groups=m.num_query_groups,
        kv_channels=m.hidden_size // m.num_attention_heads,
        normalization="RMSNorm",
        layernorm_epsilon=m.norm_epsilon,
        gated_linear_unit=True,
        activation_func=F.silu,
        add_bias_linear=m.add_bias_linear,
        add_qkv_bias=m.add_bias_linear,
        init_method_std=m.init_method_std,
        hidden_dropout=m.hidden_dropout,
        attention_dropout=m.attention_dropout,
        tensor_model_parallel_size=p.tensor_model_parallel_size,
        pipeline_model_parallel_size=p.pipeline_model_parallel_size,
        sequence_parallel=p.sequence_parallel and p.tensor_model_parallel_size > 1,
        params_dtype=dtype,
        bf16=dtype == torch.bfloat16,
        fp16=dtype == torch.float16,
        pipeline_dtype=dtype,
        use_cpu_initialization=not on_gpu,
        perform_initialization=init,
        # Fused kernels are CUDA code; off on CPU.
        bias_activation_fusion=on_gpu,
        masked_softmax_fusion=on_gpu,
        persist_layer_norm=on_gpu,
        bias_dropout_fusion=on_gpu,
        apply_rope_fusion=False,
        gradient_accumulation_fusion=False,
    )


def layer_spec(on_gpu: bool) -> Any:
    """Transformer Engine's spec on GPU when it is installed; megatron-core's local one else."""
    from megatron.core.models.gpt import gpt_layer_specs as specs

    if on_gpu:
        try:
            import transformer_engine  # noqa: F401

            return specs.get_gpt_layer_with_transformer_engine_spec()
        except ImportError:
            pass
    return specs.get_gpt_layer_local_spec(normalization="RMSNorm")


def build_model(recipe: RecipeConfig, *, on_gpu: bool, init: bool = True) -> Any:
    """The recipe's ``GPTModel`` for this pipeline stage (parallel state must be initialised)."""
    from megatron.core import parallel_state
    from megatron.core.models.gpt import GPTModel

    m = recipe.model
    tp = recipe.parallel.tensor_model_parallel_size
    model = GPTModel(
        config=transformer_config(recipe, on_gpu=on_gpu, init=init),
        transformer_layer_spec=layer_spec(on_gpu),
        vocab_size=padded_vocab_size(m, tp),
        max_sequence_length=max(m.max_position_embeddings, recipe.seq_length),
        pre_process=parallel_state.is_pipeline_first_stage(),
        post_process=parallel_state.is_pipeline_last_stage(),
        share_embeddings_and_output_weights=m.tie_embeddings,
        position_embedding_type="rope",
        rotary_base=m.rotary_base,
    )
    if on_gpu:
        model.cuda(torch.cuda.current_device())
    return model


def count_parameters(model: torch.nn.Module) -> int:
    """Distinct parameters (a tied embedding counted once)."""
    seen = {id(p): p.numel() for p in model.parameters()}
    return sum(seen.values())


def formula_parameters(m: ModelConfig, padded_vocab: int) -> int:
    """Parameter count from the shape alone (no biases): what a full model must hold."""
    head_dim = m.hidden_size // m.num_attention_heads
    attn = m.hidden_size * head_dim * (m.num_attention_heads + 2 * m.num_query_groups)
    attn += m.num_attention_heads * head_dim * m.hidden_size
    mlp = 3 * m.hidden_size * m.ffn_hidden_size
    norms = 2 * m.hidden_size
    embeddings = padded_vocab * m.hidden_size * (1 if m.tie_embeddings else 2)
    return m.num_layers * (attn + mlp + norms) + m.hidden_size + embeddings


def flops_per_token(m: ModelConfig, seq_length: int) -> float:
    """Training FLOPs per token (forward + backward = 3 x forward), attention scores included:
    6 x non-embedding matmul params + 6 x the output layer + 12 x layers x seq x hidden (the
    PaLM / Megatron model-FLOPs formula; no activation recomputation counted)."""
    head_dim = m.hidden_size // m.num_attention_heads
    attn = m.hidden_size * head_dim * (m.num_attention_heads + 2 * m.num_query_groups)
    attn += m.num_attention_heads * head_dim * m.hidden_size
    matmul = m.num_layers * (attn + 3 * m.hidden_size * m.ffn_hidden_size)
    matmul += m.vocab_size * m.hidden_size
    return 6.0 * matmul + 12.0 * m.num_layers * seq_length * m.hidden_size
