"""The mix's blend as megatron-core datasets, and the batches of each training step.

The mix stage wrote one Megatron indexed dataset per source and ``blend.json`` with their
weights. Here megatron-core's own ``BlendedMegatronDatasetBuilder`` turns that into a
``BlendedDataset`` of ``GPTDataset``s (train and validation splits of every source, sampled by
weight, shuffled with a fixed seed, index files cached under ``output_dir/data_cache``).

Data order is a pure function of the step: step *s* reads global samples
``[s x global_batch, (s + 1) x global_batch)``, spread over data-parallel ranks as Megatron-LM's
pretraining sampler does. Resuming at step *s* therefore reads exactly what an uninterrupted run
would have read, with no sampler state to save.

Before any of that, :func:`check_split` refuses a recipe ``split`` that would give some source 0
documents in a part (counted from the ``.idx`` files, as megatron-core counts them): megatron-core
would spin forever building that part instead of failing.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mind_nemo.core.errors import UserError
from mind_nemo.core.megatron_split import (
    active_parts,
    describe_empty,
    empty_parts,
    nearest_safe_split,
)
from mind_nemo.core.run_folder import BLEND_FILE, DATASETS, RUN_MANIFEST
from mind_nemo.pretrain.config import RecipeConfig

#: What a micro-batch holds (GPTDataset also returns a dataset id, which the model never sees).
BATCH_KEYS = ("tokens", "labels", "loss_mask", "position_ids")


def read_blend(mix_dir: str | Path) -> dict[str, Any]:
    """``blend.json`` of a mix run: prefixes (checked on disk), weights, tokenizer facts."""
    mix = Path(mix_dir)
    blend_path = mix / BLEND_FILE
    if not blend_path.is_file():
        raise UserError(f"mix_dir={mix}: no blend.json there (run python -m mind_nemo.mix first)")
    blend = json.loads(blend_path.read_text())
    names, prefixes, weights = [], [], []
    for name, weight in blend["weights"].items():
        prefix = Path(blend["prefixes"][name])
        if not prefix.with_suffix(".idx").is_file():  # the folder may have moved: look beside it
            prefix = mix / DATASETS / prefix.name
        if not (prefix.with_suffix(".bin").is_file() and prefix.with_suffix(".idx").is_file()):
            raise UserError(f"mix_dir={mix}: dataset {name} is missing ({prefix}.bin/.idx)")
        names.append(name)
        prefixes.append(str(prefix))
        weights.append(float(weight))
    manifest_path = mix / RUN_MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    tokenizer = manifest.get("tokenizer") or {}
    return {"names": names, "prefixes": prefixes, "weights": weights, "tokenizer": tokenizer}


def document_counts(blend: dict[str, Any]) -> dict[str, int]:
    """Source -> documents, as ``GPTDataset`` counts what it splits: the sequences in the
    source's ``.idx`` (read by megatron-core's ``IndexedDataset``; the mix writes one per
    document)."""
    with warnings.catch_warnings():  # it warns about optional GPU libraries on CPU machines
        warnings.simplefilter("ignore")
        from megatron.core.datasets.indexed_dataset import IndexedDataset
    return {
        name: int(IndexedDataset(prefix).sequence_lengths.shape[0])
        for name, prefix in zip(blend["names"], blend["prefixes"], strict=True)
    }


def check_split(split: str, blend: dict[str, Any]) -> dict[str, int]:
    """Refuse a split megatron-core could not build from this blend; return the document counts.

    Training measures validation loss, so the validation part must have a share; and every built
    part needs a document of every source (:mod:`mind_nemo.core.megatron_split`)."""
    given = f"pretrain.split={split}"
    active = active_parts(split)
    if "validation" not in active:
        raise UserError(
            f"{given} gives the validation part no share, but training measures validation "
            "loss on it; give it one, e.g. pretrain.split=90/10/0"
        )
    documents = document_counts(blend)
    empty = empty_parts(split, documents)
    if not empty:
        return documents
    safe = nearest_safe_split(split, documents)
    if safe is not None:
        safe = safe.replace(",", "/")  # Hydra reads a,b on the command line as a sweep
        fix = f"use pretrain.split={safe}, whose parts all get documents, or mix more data"
    else:
        small = min(documents, key=lambda n: documents[n])
        each = "both parts" if len(active) == 2 else "every part"
        fix = (
            f"no {'/'.join(active)} split gives {small!r} a document in {each}: mix at least "
            f"{len(active)} documents of it (more data, or a filter that keeps more) or leave it "
            "out of the mix"
        )
    raise UserError(
        f"{given} gives {describe_empty(empty)}, and megatron-core never finishes building a "
        f"part with none; {fix}"
    )


class BlendTokenizer:
    """What ``GPTDataset`` asks of a tokenizer (vocabulary size, end-of-document id); the text
    is already tokenized by the mix stage, so nothing here encodes."""

    def __init__(self, vocab_size: int, eod: int) -> None:
        self.vocab_size = vocab_size
        self.eod = eod
        self.unique_identifiers = {"class": "BlendTokenizer", "vocab": vocab_size, "eod": eod}

    def tokenize(self, text: str) -> np.ndarray:
        raise NotImplementedError("the mix stage tokenized the data already")


def check_tokenizer(blend: dict[str, Any], vocab_size: int) -> BlendTokenizer:
    """The mix's token ids must fit the model's embedding."""
    tok = blend["tokenizer"]
    mix_vocab = int(tok.get("vocab_size", vocab_size))
    if mix_vocab > vocab_size:
        raise UserError(
            f"the mix was tokenized with a {mix_vocab}-token vocabulary ({tok.get('name')}) but "
            f"the model has {vocab_size}: re-run the mix with the model's tokenizer"
        )
    return BlendTokenizer(vocab_size=vocab_size, eod=int(tok.get("eod", 0)))


def build_datasets(
    recipe: RecipeConfig, blend: dict[str, Any], train_iters: int, cache_dir: Path
) -> tuple[Any, Any]:
    """Train and validation ``BlendedDataset``s sized for the run (built rank 0 first)."""
    from megatron.core.datasets.blended_megatron_dataset_builder import (
        BlendedMegatronDatasetBuilder,
    )
    from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig

    cache_dir.mkdir(parents=True, exist_ok=True)
    config = GPTDatasetConfig(
        random_seed=recipe.seed,
        sequence_length=recipe.seq_length,
        blend=(blend["prefixes"], blend["weights"]),
        split=recipe.split,
        path_to_cache=str(cache_dir),
        tokenizer=check_tokenizer(blend, recipe.model.vocab_size),
        reset_position_ids=False,
        reset_attention_mask=False,
        eod_mask_loss=False,
        create_attention_mask=False,
    )
    sizes = [train_iters * recipe.global_batch_size, recipe.eval_iters * recipe.global_batch_size]
    try:
        train, valid, _ = BlendedMegatronDatasetBuilder(
            GPTDataset, [*sizes, 0], lambda: True, config
        ).build()
    except (AssertionError, ValueError, IndexError) as err:
        message = f"cannot build datasets from the blend (split {recipe.split}): {err}"
        raise UserError(message) from None
    return train, valid


def micro_batches(
    dataset: Any, step: int, recipe: RecipeConfig, dp_rank: int, dp_size: int
) -> Iterator[dict[str, torch.Tensor]]:
    """This rank's micro-batches of global step ``step`` (Megatron-LM's sampler order)."""
    gbs, mbs = recipe.global_batch_size, recipe.micro_batch_size
    if gbs % (mbs * dp_size):
        raise UserError(
            f"global_batch_size={gbs} is not a multiple of micro_batch_size x data-parallel "
            f"size = {mbs} x {dp_size}"
        )
    start = step * gbs
    for first in range(start, start + gbs, mbs * dp_size):
        idx = range(first + dp_rank * mbs, first + (dp_rank + 1) * mbs)
        samples = [dataset[i % len(dataset)] for i in idx]
        yield {k: torch.stack([s[k] for s in samples]) for k in BATCH_KEYS}
