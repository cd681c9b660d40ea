"""The trained weights as a Hugging Face llama folder, for evaluation with any HF-based harness.

After a one-process run the live model is exported directly. After a tensor/pipeline-parallel
run, ``step=export`` (one process) builds the model unsharded, loads the latest distributed
checkpoint into it (megatron reshards) and exports that. The folder is written under a temporary
name and renamed, and holds ``config.json``, ``model.safetensors`` and the tokenizer files, so
``AutoModelForCausalLM.from_pretrained(output_dir / "hf")`` just works.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from mind_nemo.core.errors import UserError
from mind_nemo.pretrain import checkpoint, hf_convert
from mind_nemo.pretrain.base import Base, single_process_recipe
from mind_nemo.pretrain.config import PretrainConfig, RecipeConfig

log = logging.getLogger(__name__)


def _tokenizer(base: Base, mix_tokenizer: dict[str, Any]) -> Any | None:
    """The base model's tokenizer, else the mix's (when Hugging Face can load it)."""
    from transformers import AutoTokenizer

    from mind_nemo.servers.embedded_model import load_tokenizer

    try:
        if base.kind == "hf" and base.path is not None:
            return AutoTokenizer.from_pretrained(base.path)
        name = mix_tokenizer.get("name")
        if name and mix_tokenizer.get("type", "huggingface") == "huggingface":
            return load_tokenizer(name)
    except (OSError, ValueError, UserError) as err:
        log.warning("no tokenizer exported: %s", str(err).splitlines()[0])
    return None


def export_model(
    model: Any, recipe: RecipeConfig, out_dir: Path, base: Base, mix_tokenizer: dict[str, Any]
) -> Path:
    """Write ``model`` (whole, unsharded) as an HF ``LlamaForCausalLM`` folder at ``out_dir``."""
    from transformers import LlamaForCausalLM

    state = {
        k: v.detach().to("cpu")
        for k, v in checkpoint.unwrap(model).state_dict().items()
        if not k.endswith("_extra_state") and v is not None
    }
    tokenizer = _tokenizer(base, mix_tokenizer)
    bos = getattr(tokenizer, "bos_token_id", None)
    eos = getattr(tokenizer, "eos_token_id", None)
    config = hf_convert.hf_config(recipe.model, bos, eos)
    dtype = next(iter(state.values())).dtype
    config.dtype = str(dtype).removeprefix("torch.")
    with torch.device("meta"):
        hf_model = LlamaForCausalLM(config)
    hf_state = hf_convert.megatron_to_hf(state, recipe.model)
    result = hf_model.load_state_dict(hf_state, strict=False, assign=True)
    tied = {"lm_head.weight"} if recipe.model.tie_embeddings else set()
    if set(result.missing_keys) - tied or result.unexpected_keys:
        raise RuntimeError(f"export mismatch: {result.missing_keys} {result.unexpected_keys}")
    if recipe.model.tie_embeddings:
        hf_model.tie_weights()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        hf_model.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        shutil.rmtree(out_dir, ignore_errors=True)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def export_from_checkpoint(cfg: PretrainConfig, base: Base, mix_tokenizer: dict[str, Any]) -> Path:
    """``step=export``: latest checkpoint of ``output_dir`` -> ``output_dir/hf`` (one process)."""
    from mind_nemo.pretrain import model as model_lib
    from mind_nemo.pretrain import runtime

    root = Path(cfg.output_dir) / "checkpoints"
    if checkpoint.latest_iteration(root) is None:
        raise UserError(f"{root}: no checkpoint to export (train first)")
    recipe = single_process_recipe(cfg.pretrain)
    rt = runtime.init(recipe, cfg.cpu_threads)
    try:
        model = model_lib.build_model(recipe, on_gpu=rt.on_gpu, init=False)
        checkpoint.load_weights(root, model)
        return export_model(model, recipe, Path(cfg.output_dir) / "hf", base, mix_tokenizer)
    finally:
        runtime.shutdown()
