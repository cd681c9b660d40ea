"""The split the mix prints is one megatron-core can build, or the mix refuses in one line.

``plan_split`` decides with ``mind_nemo.core.megatron_split`` (the rule pretrain uses too); the
reference here is megatron-core's own ``BlendedMegatronDatasetBuilder.build`` (see
``tests/core/test_megatron_split.py``), over many small sources beside a large one, since the
smallest source decides the split of all.
"""

from __future__ import annotations

import pytest

from mind_nemo.core.errors import UserError
from mind_nemo.core.megatron_split import active_parts
from mind_nemo.mix.blend import plan_split
from tests.core.test_megatron_split import megatron_documents

#: Requested split -> whether some small source of the grid below needs it resized (even thirds
#: give each part a document as soon as a source has 3; a training-only split never resizes).
REQUESTED = {
    "969,30,1": True,
    "969, 30, 1": True,
    "99,1,0": True,
    "99:1:0": True,
    "874,63,63": True,
    "1,1,1": False,
    "100:0:0": False,
}


@pytest.mark.parametrize(("requested", "resizes"), REQUESTED.items())
def test_the_printed_split_builds_every_part_or_is_refused(requested, resizes):
    refused, resized = 0, 0
    for smallest in range(1, 1200, 7):
        documents = {"small": smallest, "large": 50_001}
        try:
            plan = plan_split(requested, documents)
        except UserError as err:
            assert "\n" not in str(err) and "small" in str(err)
            assert smallest < len(active_parts(requested)) + 3  # only a source of a few docs
            refused += 1
            continue
        assert active_parts(plan.split) == active_parts(requested)  # no part dropped or added
        for name, n in documents.items():
            parts = megatron_documents(plan.split, n)
            assert all(p is None or p > 0 for p in parts), (requested, plan.split, name, n)
            assert list(plan.documents[name].values()) == parts  # what blend.json records
        if plan.resized_because is not None:
            resized += 1
            assert plan.split != plan.requested and "'small'" in plan.resized_because
    assert (resized > 0) == resizes
    assert (refused > 0) == (len(active_parts(requested)) > 1)  # 1 document, 2 or 3 parts


def test_a_one_document_source_is_refused_unless_training_only():
    with pytest.raises(UserError, match=r"source 'c' has 1 documents, too few for split=99,1,0"):
        plan_split("99,1,0", {"c": 1, "big": 10_000})
    assert plan_split("100:0:0", {"c": 1}).documents == {
        "c": {"train": 1, "validation": None, "test": None}
    }
