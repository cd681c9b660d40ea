"""The mix stage takes the run folder's lock for its step: a second writer is refused in one line,
before it tokenizes anything; once the holder is gone the same run goes through."""

from __future__ import annotations

import pytest

from mind_nemo.core.errors import UserError
from mind_nemo.core.run_folder import take_lock
from mind_nemo.mix.config import MixConfig
from mind_nemo.mix.run import MixRun
from tests.mix.helpers import write_jsonl


def test_a_second_mix_writer_is_refused_then_the_run_goes_on(tmp_path):
    data = write_jsonl(tmp_path / "in" / "a.jsonl", [{"text": f"doc {i}"} for i in range(5)])
    out = tmp_path / "run"
    cfg = MixConfig(name="one", sources={"data": {"path": str(data)}}, output_dir=str(out),
                    workers=0, progress=False)  # fmt: skip
    with take_lock(out, "shard-00000-of-00001"):
        with pytest.raises(UserError, match="of mix run .* already being written by pid"):
            MixRun(cfg).run()
        assert not (out / "datasets").exists()
    assert MixRun(cfg).run()["status"] == "complete"
