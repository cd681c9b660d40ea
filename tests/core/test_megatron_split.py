"""The split rule of ``mind_nemo.core.megatron_split`` against megatron-core's own builder.

megatron-core has no public "documents per part" function: the split string becomes a matrix in
``BlendedMegatronDatasetConfig`` and the per-part document ranges are cut inside
``BlendedMegatronDatasetBuilder.build``. So the reference here is ``build()`` itself, run with a
recording dataset class in place of ``GPTDataset``: each part it builds reports how many
document indices megatron-core handed it. Over a grid of splits and dataset sizes our count must
be the same, part for part, including which parts are not built at all.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

from mind_nemo.core.errors import UserError
from mind_nemo.core.megatron_split import (
    EmptyPart,
    active_parts,
    describe_empty,
    empty_parts,
    nearest_safe_split,
    split_documents,
)

SPLITS = [
    "969,30,1",
    "969, 30, 1",
    "99,1,0",
    "98,2,0",
    "90,10,0",
    "874,63,63",
    "100,0,0",
    "100:0:0",
    "1,1,1",
    "0,1,0",
    "0,0,1",
    "1,0,1",
    "2/1",
    "1",
    "33.3,33.3,33.4",
    "0.7,0.2,0.1",
    "0.1,0.1,0.1",
    "9990,5,5",
    "499,1,500",
]
SIZES = [*range(0, 130), 199, 200, 201, 333, 999, 1000, 1001, 1999, 2000, 12345, 99999]


class _Recorder:
    """Stands in for ``GPTDataset``: the low-level dataset is its document count (the prefix
    string), and each built part keeps the document indices megatron-core gave it."""

    def __init__(self, low_level: int, path: str, indices: np.ndarray, *rest: Any) -> None:
        self.documents = len(indices)

    def __len__(self) -> int:
        return self.documents

    @staticmethod
    def build_low_level_dataset(path: str, config: Any) -> int:
        return int(path)

    @staticmethod
    def numel_low_level_dataset(low_level: int) -> int:
        return low_level


def megatron_documents(split: str, documents: int) -> list[int | None]:
    """Documents per part as megatron-core's ``BlendedMegatronDatasetBuilder.build`` cuts them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from megatron.core.datasets.blended_megatron_dataset_builder import (
            BlendedMegatronDatasetBuilder,
        )
        from megatron.core.datasets.blended_megatron_dataset_config import (
            BlendedMegatronDatasetConfig,
        )
    config = BlendedMegatronDatasetConfig(
        random_seed=1, sequence_length=8, blend=([str(documents)], None), split=split
    )
    built = BlendedMegatronDatasetBuilder(_Recorder, [None] * 3, lambda: True, config).build()
    return [None if part is None else len(part) for part in built]


@pytest.mark.parametrize("split", SPLITS)
def test_documents_per_part_match_megatron_core(split):
    for n in SIZES:
        assert split_documents(split, n) == megatron_documents(split, n), (split, n)


def test_random_splits_match_megatron_core():
    rng = np.random.default_rng(0)
    for _ in range(300):
        weights = rng.integers(0, 1000, size=3)
        if not weights.sum():
            continue
        split = ",".join(str(w) for w in weights)
        n = int(rng.integers(0, 5000))
        assert split_documents(split, n) == megatron_documents(split, n), (split, n)


def test_empty_parts_are_the_built_parts_with_no_document():
    documents = {"big": 10_000, "one": 1, "thirty": 30}
    assert empty_parts("969,30,1", documents) == [
        EmptyPart("one", "validation", 1),
        EmptyPart("one", "test", 1),
        EmptyPart("thirty", "test", 30),
    ]
    assert empty_parts("100,0,0", documents) == []  # parts of width 0 are not built at all
    assert active_parts("90,10,0") == ["train", "validation"]
    assert describe_empty(empty_parts("90,10,0", {"c": 1})) == (
        "source 'c' (1 document) 0 validation documents"
    )


@pytest.mark.parametrize("split", ["969,30,1", "99,1,0", "90,10,0", "874,63,63", "1,0,1"])
@pytest.mark.parametrize("smallest", [2, 3, 5, 26, 40, 99, 500, 1500])
def test_the_nearest_safe_split_builds_every_part_in_megatron_core(split, smallest):
    documents = {"small": smallest, "large": 123_457}
    safe = nearest_safe_split(split, documents)
    if safe is None:  # only when the source is too small for any split of these parts
        assert smallest < 20, (split, smallest)
        return
    assert active_parts(safe) == active_parts(split)  # a 0 part stays 0, no part is dropped
    for n in documents.values():
        parts = megatron_documents(safe, n)
        assert all(p is None or p > 0 for p in parts), (safe, n, parts)
    if not empty_parts(split, documents):
        assert safe == ",".join(f"{float(v):g}" for v in split.split(","))  # untouched


def test_a_source_smaller_than_the_parts_has_no_safe_split():
    assert nearest_safe_split("90,10,0", {"c": 1}) is None
    assert nearest_safe_split("1,1,1", {"c": 2}) is None
    assert nearest_safe_split("100,0,0", {"c": 1}) == "100,0,0"


@pytest.mark.parametrize("split", ["train", "1,2,3,4", "0,0,0", "1.2.3,1", ""])
def test_a_split_megatron_core_cannot_read_is_one_user_error(split):
    with pytest.raises(UserError, match="must be up to three proportions"):
        split_documents(split, 10)
