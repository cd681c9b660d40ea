"""Build a blend's datasets with megatron-core exactly as Megatron-LM's ``pretrain_gpt.py`` does.

Run as ``python -m tests.mix.megatron_build '<json list>'`` (in a subprocess with a timeout,
because megatron-core loops forever on a split part with 0 documents). Each JSON entry names
what a user passes: ``data_args_path`` (read and split like ``--data-args-path``) or ``paths``
(NeMo's ``paths=``), ``split``, ``seq_length``, ``train_samples``, and the batch settings
Megatron-LM sizes validation and test from. It prints ``imported`` once megatron-core is loaded
(so a caller can tell a slow import from a hang), then one JSON line per entry: the length of
each split and the documents of every source in it.
"""

from __future__ import annotations

import json
import sys
import warnings
from types import SimpleNamespace
from typing import Any


def sizes(spec: dict[str, Any]) -> list[int]:
    """Megatron-LM's ``get_train_valid_test_num_samples`` for sample-based training."""
    gbs, eval_iters = spec["global_batch_size"], spec["eval_iters"]
    train_iters = spec["train_samples"] // gbs
    return [
        spec["train_samples"],
        (train_iters // spec["eval_interval"] + 1) * eval_iters * gbs,
        eval_iters * gbs,
    ]


def main(argv: list[str]) -> None:
    warnings.simplefilter("ignore")
    import megatron.core.datasets.blended_megatron_dataset_builder  # noqa: F401
    import torch.distributed as dist

    print("imported", flush=True)
    for i, spec in enumerate(json.loads(argv[0])):
        init = f"file://{spec['cache']}.pg{i}"
        dist.init_process_group("gloo", init_method=init, rank=0, world_size=1)
        try:
            print(json.dumps(build(spec)), flush=True)
        finally:
            dist.destroy_process_group()


def build(spec: dict[str, Any]) -> dict[str, Any]:
    from megatron.core.datasets.blended_megatron_dataset_builder import (
        BlendedMegatronDatasetBuilder,
    )
    from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig
    from megatron.core.datasets.utils import get_blend_from_list

    if "data_args_path" in spec:  # megatron.training.utils.get_blend_and_blend_per_split
        with open(spec["data_args_path"]) as f:
            blend = get_blend_from_list(f.read().split())
    else:  # nemo.collections.llm.gpt.data.pre_training.PreTrainingDataModule.__init__
        paths, weights = get_blend_from_list(spec["paths"])
        blend = (paths, None if len(paths) == 1 else weights)
    eod = spec["eod"]
    tokenizer = SimpleNamespace(
        eod=eod, vocab_size=spec["vocab_size"], pad=-1, unique_identifiers={"eod": eod}
    )
    config = GPTDatasetConfig(
        random_seed=1234,
        sequence_length=spec["seq_length"],
        blend=blend,
        split=spec["split"],
        path_to_cache=spec["cache"],
        tokenizer=tokenizer,
        reset_position_ids=False,
        reset_attention_mask=False,
        eod_mask_loss=False,
    )
    built = BlendedMegatronDatasetBuilder(GPTDataset, sizes(spec), lambda: True, config).build()
    out: dict[str, Any] = {"sizes": sizes(spec), "splits": []}
    for dataset in built:
        if dataset is None:
            out["splits"].append(None)
            continue
        parts = getattr(dataset, "datasets", [dataset])
        out["splits"].append(
            {
                "length": len(dataset),
                "documents": {str(p.dataset_path): len(p.indices) for p in parts},
            }
        )
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
