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
    # The training set is the paper rule's output (its loops counted in the filter's manifest).
    kept = [json.loads(line) for path in sorted((run / "filter" / "conversations").glob("*.jsonl"))
            for line in path.read_text().splitlines()]  # fmt: skip
    assert len(kept) == totals["kept"]
    verdict = json.loads((run / "filter-default" / "manifest.json").read_text())["conversations"]
    assert verdict["input"] == 7
    assert f"default filter: kept {verdict['kept']} of 7; top reasons: " in result.stdout
    assert (
        f"training set (paper rule; loops counted, not removed): kept {totals['kept']} of 7"
        in result.stdout
    )
    for name in ("filter", "filter-default"):
        assert "## Quality scorecard" in (run / name / "report.md").read_text()
        assert (run / name / "viewer.html").is_file()
    mix = json.loads((run / "mix" / "manifest.json").read_text())
    assert set(mix["sources"]) == {"conversations", "raw_math", "general_web"}
    assert (run / "pretrain" / "hf" / "config.json").is_file()
    for name in ("base", "continued"):
        results = json.loads((run / "evaluate" / name / "results.json").read_text())
        assert results["name"] == name and results["columns"]
    assert (run / "compare" / "table.md").is_file()
    assert "quickstart done" in result.stdout
