"""Hugging Face llama-family weights <-> megatron-core ``GPTModel`` weights (full, unsharded).

Layouts that differ between the two (everything else is a rename):

- attention: HF keeps ``q_proj``/``k_proj``/``v_proj``; megatron one ``linear_qkv`` whose rows
  are grouped per key/value head: for group *g*, its query heads, then its key, then its value.
- SwiGLU: HF ``gate_proj`` and ``up_proj``; megatron one ``linear_fc1`` = [gate; up].
- embeddings: megatron pads the vocabulary (zero rows past the tokenizer's); tied models (SmolLM2)
  have no ``output_layer`` / ``lm_head`` tensor at all.
- norms: megatron's local spec names ``input_layernorm``/``pre_mlp_layernorm``; Transformer
  Engine's fuses them into ``linear_qkv.layer_norm_weight``/``linear_fc1.layer_norm_weight``.
  :func:`hf_to_megatron` writes whichever names the target model has.

Both RoPE layouts are "rotate half", so query/key rows are copied as they are.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from mind_nemo.core.errors import UserError
from mind_nemo.pretrain.config import ModelConfig

_LAYER = "decoder.layers.{i}."
_HF_LAYER = "model.layers.{i}."


def hf_model_config(model_dir: str | Path) -> dict[str, Any]:
    """The fields of :class:`ModelConfig` a llama-family ``config.json`` determines."""
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        raise UserError(f"{model_dir} is not a Hugging Face model folder (no config.json)")
    cfg = json.loads(path.read_text())
    if cfg.get("model_type") not in ("llama", "mistral", "qwen2"):
        raise UserError(f"{model_dir}: model_type {cfg.get('model_type')!r} is not llama-family")
    rope = cfg.get("rope_parameters") or {}
    heads = cfg["num_attention_heads"]
    return {
        "num_layers": cfg["num_hidden_layers"],
        "hidden_size": cfg["hidden_size"],
        "ffn_hidden_size": cfg["intermediate_size"],
        "num_attention_heads": heads,
        "num_query_groups": cfg.get("num_key_value_heads") or heads,
        "vocab_size": cfg["vocab_size"],
        "rotary_base": float(cfg.get("rope_theta") or rope.get("rope_theta") or 10000.0),
        "tie_embeddings": bool(cfg.get("tie_word_embeddings", False)),
        "add_bias_linear": bool(cfg.get("attention_bias", False)),
    }


def check_shape_matches(model: ModelConfig, model_dir: str | Path) -> None:
    """A base checkpoint must have the recipe's shape; say which fields differ."""
    hf = hf_model_config(model_dir)
    wrong = [
        f"{k}={getattr(model, k)} (base: {v})"
        for k, v in hf.items()
        if (abs(getattr(model, k) - v) > 1e-3 if isinstance(v, float) else getattr(model, k) != v)
    ]
    if wrong:
        raise UserError(f"base {model_dir} does not fit the recipe: {', '.join(wrong)}")


def load_hf_state(model_dir: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors model folder (single file or sharded), on CPU."""
    from safetensors.torch import load_file

    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        raise UserError(f"{model_dir}: no *.safetensors weights found")
    state: dict[str, torch.Tensor] = {}
    for file in files:
        state.update(load_file(str(file)))
    return state


def _pad_rows(weight: torch.Tensor, rows: int) -> torch.Tensor:
    if weight.shape[0] >= rows:
        return weight[:rows]
    return torch.cat([weight, weight.new_zeros(rows - weight.shape[0], *weight.shape[1:])])


def _qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, m: ModelConfig) -> torch.Tensor:
    head_dim = m.hidden_size // m.num_attention_heads
    groups, per_group = m.num_query_groups, m.num_attention_heads // m.num_query_groups
    q = q.reshape(groups, per_group * head_dim, -1)
    k = k.reshape(groups, head_dim, -1)
    v = v.reshape(groups, head_dim, -1)
    return torch.cat([q, k, v], dim=1).reshape(-1, q.shape[-1])


def _split_qkv(qkv: torch.Tensor, m: ModelConfig) -> tuple[torch.Tensor, ...]:
    head_dim = m.hidden_size // m.num_attention_heads
    groups, per_group = m.num_query_groups, m.num_attention_heads // m.num_query_groups
    grouped = qkv.reshape(groups, (per_group + 2) * head_dim, -1)
    q, k, v = torch.split(grouped, [per_group * head_dim, head_dim, head_dim], dim=1)
    return tuple(t.reshape(-1, qkv.shape[-1]) for t in (q, k, v))


def _norm_names(target_keys: set[str]) -> tuple[str, str]:
    """Local spec or Transformer Engine names of the two per-layer norms."""
    if any(k.endswith("linear_qkv.layer_norm_weight") for k in target_keys):
        return "self_attention.linear_qkv.layer_norm_weight", "mlp.linear_fc1.layer_norm_weight"
    return "input_layernorm.weight", "pre_mlp_layernorm.weight"


def hf_to_megatron(
    hf: dict[str, torch.Tensor], m: ModelConfig, padded_vocab: int, target_keys: set[str]
) -> dict[str, torch.Tensor]:
    """HF llama tensors -> megatron ``GPTModel`` (TP=1, PP=1) state dict for ``target_keys``."""
    attn_norm, mlp_norm = _norm_names(target_keys)
    embed = _pad_rows(hf["model.embed_tokens.weight"], padded_vocab)
    out = {"embedding.word_embeddings.weight": embed}
    for i in range(m.num_layers):
        src, dst = _HF_LAYER.format(i=i), _LAYER.format(i=i)
        out[dst + attn_norm] = hf[src + "input_layernorm.weight"]
        out[dst + mlp_norm] = hf[src + "post_attention_layernorm.weight"]
        attn = src + "self_attn."
        out[dst + "self_attention.linear_qkv.weight"] = _qkv(
            hf[attn + "q_proj.weight"], hf[attn + "k_proj.weight"], hf[attn + "v_proj.weight"], m
        )
        if m.add_bias_linear:
            out[dst + "self_attention.linear_qkv.bias"] = _qkv(
                hf[attn + "q_proj.bias"], hf[attn + "k_proj.bias"], hf[attn + "v_proj.bias"], m
            )
        out[dst + "self_attention.linear_proj.weight"] = hf[attn + "o_proj.weight"]
        mlp = src + "mlp."
        out[dst + "mlp.linear_fc1.weight"] = torch.cat(
            [hf[mlp + "gate_proj.weight"], hf[mlp + "up_proj.weight"]]
        )
        out[dst + "mlp.linear_fc2.weight"] = hf[mlp + "down_proj.weight"]
    out["decoder.final_layernorm.weight"] = hf["model.norm.weight"]
    if not m.tie_embeddings:
        out["output_layer.weight"] = _pad_rows(hf["lm_head.weight"], padded_vocab)
    missing = sorted(k for k in target_keys if k not in out and not k.endswith("_extra_state"))
    if missing:
        raise UserError(f"HF conversion has no source for {missing[0]} (+{len(missing) - 1} more)")
    return out


def megatron_to_hf(mg: dict[str, torch.Tensor], m: ModelConfig) -> dict[str, torch.Tensor]:
    """The inverse of :func:`hf_to_megatron` (vocabulary padding cut off)."""
    keys = set(mg)
    attn_norm, mlp_norm = _norm_names(keys)
    vocab = m.vocab_size
    out = {"model.embed_tokens.weight": mg["embedding.word_embeddings.weight"][:vocab]}
    for i in range(m.num_layers):
        src, dst = _LAYER.format(i=i), _HF_LAYER.format(i=i)
        out[dst + "input_layernorm.weight"] = mg[src + attn_norm]
        out[dst + "post_attention_layernorm.weight"] = mg[src + mlp_norm]
        q, k, v = _split_qkv(mg[src + "self_attention.linear_qkv.weight"], m)
        attn = dst + "self_attn."
        out[attn + "q_proj.weight"], out[attn + "k_proj.weight"] = q, k
        out[attn + "v_proj.weight"] = v
        if m.add_bias_linear:
            bias = mg[src + "self_attention.linear_qkv.bias"].unsqueeze(-1)
            for name, part in zip(("q", "k", "v"), _split_qkv(bias, m), strict=True):
                out[f"{attn}{name}_proj.bias"] = part.squeeze(-1)
        out[attn + "o_proj.weight"] = mg[src + "self_attention.linear_proj.weight"]
        gate, up = torch.chunk(mg[src + "mlp.linear_fc1.weight"], 2, dim=0)
        out[dst + "mlp.gate_proj.weight"], out[dst + "mlp.up_proj.weight"] = gate, up
        out[dst + "mlp.down_proj.weight"] = mg[src + "mlp.linear_fc2.weight"]
    out["model.norm.weight"] = mg["decoder.final_layernorm.weight"]
    if not m.tie_embeddings:
        out["lm_head.weight"] = mg["output_layer.weight"][:vocab]
    return {k: v.contiguous() for k, v in out.items()}


def hf_config(m: ModelConfig, bos: int | None, eos: int | None) -> Any:
    """A ``LlamaConfig`` with the recipe's shape (for the export)."""
    from transformers import LlamaConfig

    config = LlamaConfig(
        vocab_size=m.vocab_size,
        hidden_size=m.hidden_size,
        intermediate_size=m.ffn_hidden_size,
        num_hidden_layers=m.num_layers,
        num_attention_heads=m.num_attention_heads,
        num_key_value_heads=m.num_query_groups,
        head_dim=m.hidden_size // m.num_attention_heads,
        max_position_embeddings=m.max_position_embeddings,
        rms_norm_eps=m.norm_epsilon,
        tie_word_embeddings=m.tie_embeddings,
        attention_bias=m.add_bias_linear,
        mlp_bias=False,
        bos_token_id=bos,
        eos_token_id=eos,
        rope_parameters={"rope_type": "default", "rope_theta": m.rotary_base},
    )
    config.architectures = ["LlamaForCausalLM"]
    return config
