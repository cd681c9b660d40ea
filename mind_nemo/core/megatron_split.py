"""Which parts of a Megatron ``--split`` get 0 documents of a dataset, in megatron-core's math.

megatron-core cuts *every* dataset of a blend by the same train/validation/test fractions, and a
part that gets 0 documents of one dataset never finishes building: ``GPTDataset`` sizes its epochs
by adding the part's tokens per epoch until they cover the samples asked for, and 0 tokens never
do, so the process spins at 100% CPU without a message. Two stages must know this ahead of time:
the mix, which prints the split it hands to Megatron-LM and NeMo, and pretrain, which builds
megatron-core datasets with its recipe's split. The rule lives here, in ``core`` (which imports no
stage), so both use the same arithmetic and neither imports the other.

The arithmetic is megatron-core 0.16.1's, step for step: ``parse_and_normalize_split`` (every
number in the string, missing parts 0, divided by their sum in numpy float64),
``convert_split_vector_to_split_matrix`` (cumulative bookends; a part of width 0 is ``None`` and
not built at all) and ``BlendedMegatronDatasetBuilder._build_megatron_dataset_splits`` (part *i*
of an ``n``-element dataset is ``[round(lo x n), round(hi x n))``; for ``GPTDataset`` ``n`` is the
number of sequences in the ``.idx``, one per document as the mix writes them).
``tests/core/test_megatron_split.py`` checks this against megatron-core's own builder.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from mind_nemo.core.errors import UserError

#: The three parts, in NeMo's key names (megatron-core's ``Split`` enum says ``valid``).
SPLIT_PARTS = ("train", "validation", "test")


@dataclass(frozen=True)
class EmptyPart:
    """A dataset that would get no document in one part of a split."""

    source: str
    part: str
    documents: int


def split_values(split: str) -> list[float]:
    """The three raw proportions of a split string, read as megatron-core reads them (every
    number in it, missing parts 0); a string it would choke on is one :class:`UserError`."""
    try:
        values = [float(v) for v in re.findall(r"[.0-9]+", str(split))]
    except ValueError:  # "1.2.3": a number megatron-core's float() would fail on as well
        values = []
    if not values or len(values) > len(SPLIT_PARTS) or not sum(values) > 0:
        raise UserError(
            f"split={split!r} must be up to three proportions for train, validation and test, "
            "e.g. split=99:1:0 or split='969,30,1'"
        )
    return values + [0.0] * (len(SPLIT_PARTS) - len(values))


def clean_split(split: str) -> str:
    """The split as one shell word (Megatron-LM's own default ``969, 30, 1`` has spaces)."""
    return ",".join(f"{v:g}" for v in split_values(split))


def active_parts(split: str) -> list[str]:
    """The parts megatron-core builds under this split (those with a proportion above 0)."""
    return [part for part, v in zip(SPLIT_PARTS, split_values(split), strict=True) if v > 0]


def split_documents(split: str, documents: int) -> list[int | None]:
    """Documents of a ``documents``-long dataset in each part (``None``: a part of width 0,
    which megatron-core does not build)."""
    weights = np.array(split_values(split), dtype=np.float64)
    fractions = (weights / np.sum(weights)).tolist()
    ends = functools.reduce(lambda acc, f: [*acc, acc[-1] + f], fractions, [0.0])
    parts: list[int | None] = []
    for lo, hi in itertools.pairwise(ends):
        if hi <= lo:
            parts.append(None)
        else:
            parts.append(round(hi * float(documents)) - round(lo * float(documents)))
    return parts


def empty_parts(split: str, documents: Mapping[str, int]) -> list[EmptyPart]:
    """Every (source, built part) that would get 0 documents: what megatron-core never finishes."""
    return [
        EmptyPart(name, SPLIT_PARTS[i], n)
        for name, n in documents.items()
        for i, count in enumerate(split_documents(split, n))
        if count == 0
    ]


def describe_empty(empty: list[EmptyPart]) -> str:
    """``source 'a' (1 document) 0 validation and 0 test documents, ...`` for an error line."""
    by_source: dict[str, list[EmptyPart]] = {}
    for e in empty:
        by_source.setdefault(e.source, []).append(e)
    said = []
    for name, parts in by_source.items():
        n = parts[0].documents
        zeros = " and ".join(f"0 {p.part}" for p in parts)
        said.append(f"source {name!r} ({n} document{'' if n == 1 else 's'}) {zeros} documents")
    return ", ".join(said)


def nearest_safe_split(split: str, documents: Mapping[str, int]) -> str | None:
    """The split itself (cleaned) when no source gets an empty part, else the least change
    that gives every source a document in each built part, else ``None`` (a source too small).

    A 0 part stays 0; the other parts become integer proportions out of ``10^k`` (at least
    1000, finer than the smallest source), each raised to the smallest size that gives every
    source a document in it, the largest part paying for the rest, so a large source's parts
    barely move."""
    cleaned = clean_split(split)
    if not empty_parts(cleaned, documents):
        return cleaned
    values = split_values(split)
    active = [i for i, v in enumerate(values) if v > 0]
    smallest = min(documents.values())
    if smallest < len(active):
        return None
    scale = 10 ** max(3, len(str(smallest)) + 1)
    total = sum(values)
    base = [round(v / total * scale) if i in active else 0 for i, v in enumerate(values)]
    largest = max(active, key=lambda i: values[i])
    for need in range(1, scale // len(active) + 1):
        units = [max(u, need) if i in active else 0 for i, u in enumerate(base)]
        units[largest] -= sum(units) - scale
        if units[largest] < need:
            break
        candidate = ",".join(str(u) for u in units)
        if not empty_parts(candidate, documents):
            return candidate
    return None
