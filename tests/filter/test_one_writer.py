"""The filter takes the run folder's lock for its step: a second writer is refused in one line.

Pass 1 locks its task's share (``locks/shard-i-of-n.lock``), finalize the whole of pass 2
(``locks/finalize.lock``); ``step=all`` takes both. The lock is held here by this test process
(a second open file description conflicts with it just as another process would).
"""

from __future__ import annotations

import pytest

from mind_nemo.core.errors import UserError
from mind_nemo.core.run_folder import take_lock
from tests.filter.helpers import context_row, conversation_row, filter_run, make_run


@pytest.mark.parametrize("held", ["shard-00000-of-00001", "finalize"])
def test_a_second_filter_writer_is_refused_then_the_run_goes_on(tmp_path, held):
    run = make_run(tmp_path / "run", [[conversation_row(0, 0, "debate")]], [[context_row(0, 0)]])
    out = tmp_path / "out"
    with take_lock(out, held):
        with pytest.raises(UserError, match=f"{held} of filter run .* being written by pid"):
            filter_run(run, out)
        assert not (out / "manifest.json").exists()
    assert filter_run(run, out)["conversations"]["kept"] == 1
