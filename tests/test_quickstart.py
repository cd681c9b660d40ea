"""``recipes/quickstart.sh`` end to end: every stage on this CPU with the embedded model.

The one test that runs the whole pipeline as a user would (synthesize, filter + variants, report,
mix, continued pretraining, evaluation, comparison) and then checks each stage left what the
next one read. Slow (minutes on two cores); the recipe is also checked for syntax in a blink.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.helpers import REPO

RECIPE = REPO / "recipes" / "quickstart.sh"


def test_recipe_is_valid_bash():
    assert subprocess.run(["bash", "-n", str(RECIPE)]).returncode == 0


@pytest.mark.slow
@pytest.mark.integration
def test_quickstart_runs_every_stage(quickstart_run):
    run, result = quickstart_run.root, quickstart_run
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    for n in range(1, 8):
        assert f"=== {n}/7 " in result.stdout  # every step ran, in order
    synth = json.loads((run / "synthesize" / "manifest.json").read_text())
    assert synth["status"] == "complete" and len(synth["by_style"]) == 7
    filtered = json.loads((run / "filter" / "manifest.json").read_text())
    totals = filtered["conversations"]
    assert totals["input"] == 7 and totals["kept"] + totals["rejected"] == 7
    assert (run / "filter" / "report.md").is_file()
    mix = json.loads((run / "mix" / "manifest.json").read_text())
    assert set(mix["sources"]) == {"conversations", "raw_math", "general_web"}
    assert (run / "pretrain" / "hf" / "config.json").is_file()
    for name in ("base", "continued"):
        results = json.loads((run / "evaluate" / name / "results.json").read_text())
        assert results["name"] == name and results["columns"]
    assert (run / "compare" / "table.md").is_file()
    assert "quickstart done" in result.stdout
