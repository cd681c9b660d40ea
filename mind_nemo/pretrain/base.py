"""Where continued pretraining starts: the base checkpoint, resolved and loaded (weights only).

``base_checkpoint`` is ``embedded`` (the packaged SmolLM2-135M-Instruct, converted once into a
Hugging Face folder), a Hugging Face llama-family folder, a Megatron distributed checkpoint, or
``null`` (random init, only when a recipe or the user says so). A path that does not exist, or
is none of these, is an error: a run never silently starts from random weights.

A Hugging Face base is converted in memory when one process holds the whole model. For
tensor/pipeline-parallel runs, ``step=convert`` (one process, run first by the launcher) writes
it once as a weights-only Megatron checkpoint in ``output_dir/base_megatron``, which every rank
then loads with megatron's resharding.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mind_nemo.core.errors import UserError
from mind_nemo.pretrain import checkpoint, hf_convert
from mind_nemo.pretrain.config import PretrainConfig, RecipeConfig

CONVERTED_DIR = "base_megatron"


@dataclass
class Base:
    """A resolved base: ``kind`` is ``hf``, ``megatron`` or ``scratch``."""

    kind: str
    path: Path | None
    spec: str | None

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": str(self.path) if self.path else None, "spec": self.spec}


def resolve(spec: str | None) -> Base:
    """Check the base exists and say what it is, before anything heavy starts."""
    if spec is None or str(spec).lower() in ("null", "none", "scratch"):
        return Base("scratch", None, None)
    if spec == "embedded":
        from mind_nemo.servers.embedded_model import embedded_model_dir

        return Base("hf", embedded_model_dir(), spec)
    path = Path(spec).expanduser()
    if not path.exists():
        raise UserError(f"base_checkpoint={spec}: no such file or directory")
    if (path / "config.json").is_file():
        return Base("hf", path, spec)
    return Base("megatron", checkpoint.resolve_dist_checkpoint(path), spec)


def single_process_recipe(recipe: RecipeConfig) -> RecipeConfig:
    """The recipe as one process holds it (TP = PP = 1), with the *training* layout's vocabulary
    padding, so its checkpoint loads into the parallel model and back."""
    tp = recipe.parallel.tensor_model_parallel_size
    model = dataclasses.replace(
        recipe.model, make_vocab_size_divisible_by=recipe.model.make_vocab_size_divisible_by * tp
    )
    parallel = dataclasses.replace(
        recipe.parallel, tensor_model_parallel_size=1, pipeline_model_parallel_size=1
    )
    return dataclasses.replace(recipe, model=model, parallel=parallel)


def load_hf_into(model: Any, base: Base, recipe: RecipeConfig) -> None:
    """Convert an HF llama folder into ``model`` (a whole, unsharded GPTModel)."""
    assert base.path is not None
    hf_convert.check_shape_matches(recipe.model, base.path)
    target = checkpoint.unwrap(model)
    own = target.state_dict()
    padded = own["embedding.word_embeddings.weight"].shape[0]
    converted = hf_convert.hf_to_megatron(
        hf_convert.load_hf_state(base.path), recipe.model, padded, set(own)
    )
    dtype = own["embedding.word_embeddings.weight"].dtype
    checkpoint.load_checked(target, {k: v.to(dtype) for k, v in converted.items()})


def load(model: Any, base: Base, cfg: PretrainConfig) -> str:
    """Put the base weights into a freshly built ``model``; say where they came from."""
    if base.kind == "scratch":
        return "random init (base_checkpoint=null)"
    if base.kind == "hf" and _unsharded(cfg.pretrain):  # each rank holds the whole model
        load_hf_into(model, base, cfg.pretrain)
        return f"Hugging Face weights {base.path} (converted in memory)"
    path = base.path
    if base.kind == "hf":
        path = Path(cfg.output_dir) / CONVERTED_DIR
        if not (path / "metadata.json").is_file():
            raise UserError(
                f"{path} is missing: run step=convert once before a multi-process run "
                "(the SLURM launcher does)"
            )
    assert path is not None
    checkpoint.load_weights(path, model)
    return f"Megatron checkpoint {path}"


def _unsharded(recipe: RecipeConfig) -> bool:
    p = recipe.parallel
    return p.tensor_model_parallel_size == 1 and p.pipeline_model_parallel_size == 1


def convert(cfg: PretrainConfig, base: Base) -> Path | None:
    """``step=convert``: the HF base as a weights-only Megatron checkpoint (one process)."""
    from mind_nemo.pretrain import model as model_lib
    from mind_nemo.pretrain import runtime

    if base.kind != "hf":
        return base.path  # a Megatron checkpoint (or none): every rank loads it as it is
    recipe = single_process_recipe(cfg.pretrain)
    out = Path(cfg.output_dir) / CONVERTED_DIR
    source = out / "source.json"
    if source.is_file() and json.loads(source.read_text()) == json.loads(
        json.dumps(base.describe())
    ):
        return out  # converted by an earlier submission of the same job
    rt = runtime.init(recipe, cfg.cpu_threads)
    try:
        model = model_lib.build_model(recipe, on_gpu=rt.on_gpu, init=False)
        load_hf_into(model, base, recipe)
        checkpoint.save_weights(out, model)
        (out / "source.json").write_text(json.dumps(base.describe()) + "\n")
    finally:
        runtime.shutdown()
    return out
