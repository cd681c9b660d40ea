"""``filter=paper`` keeps the paper's rule (50 tokens, nothing else) but still measures loops:
a looping conversation is kept, noted on its row and counted in the manifest and the summary."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from mind_nemo.filter.__main__ import print_summary
from mind_nemo.filter.config import DegenerationConfig
from mind_nemo.filter.rules.base import Item
from mind_nemo.filter.rules.degeneration import DegenerationFilter
from tests.filter.helpers import build_rich_run, filter_run, read_jsonl


def test_paper_rule_keeps_loops_but_notes_and_counts_them(tmp_path, capsys):
    run = build_rich_run(tmp_path / "run")
    manifest = filter_run(run, tmp_path / "paper", "filter=paper")
    assert manifest is not None
    kept = [
        row
        for path in sorted((tmp_path / "paper" / "conversations").glob("*.jsonl"))
        for row in read_jsonl(path)
    ]
    loops = [r for r in kept if "degenerate:repeated_ngrams" in r.get("filter_notes", [])]
    # the loop, the repeated "I'm a helpful AI" line and the monologue repeating one sentence;
    # the default filter rejects the last two earlier (meta_text, too_few_speakers)
    assert sorted(r["conversational_style"] for r in loops) == [
        "interview", "layman_knowall", "problem_solving",
    ]  # fmt: skip
    assert all(r["quality"]["repeated_ngram_ratio"] > 0.35 for r in loops)
    assert all("repeated_ngram_ratio" in r["quality"] for r in kept)  # measured on every row
    notes = manifest["by_style"]["layman_knowall"]["notes"]
    assert notes == {"degenerate:repeated_ngrams": 1}
    assert "repeated_ngrams" not in manifest["reasons"]  # the paper's rule rejects no loop
    print_summary(str(tmp_path / "paper"), manifest)
    out = capsys.readouterr().out
    assert "warning: 3 kept conversations loop" in out

    default = filter_run(run, tmp_path / "default")
    assert default is not None and default["reasons"]["repeated_ngrams"] == 1
    on_disk = json.loads((tmp_path / "default" / "manifest.json").read_text())
    assert "degenerate:repeated_ngrams" not in json.dumps(on_disk["by_style"])
    print_summary(str(tmp_path / "default"), default)
    summary = capsys.readouterr().out
    assert "warning" not in summary
    totals = default["conversations"]
    assert f"kept {totals['kept']} of {totals['input']}" in summary
    assert "top reasons: " in summary


def test_the_loop_check_passes_every_dialogue_the_corpus_keeps():
    """Why the quickstart may add the loop check to the paper's rule (README "Recipes"): it
    trips on no well-formed dialogue of the written corpus, only on its loops."""
    cases = yaml.safe_load((Path(__file__).parent / "dialogue_corpus.yaml").read_text())
    check = DegenerationFilter(DegenerationConfig())
    verdicts = {c["id"]: check.measure(Item(text=c["text"], style=c["style"])) for c in cases}
    kept = [c["id"] for c in cases if c["verdict"] == "keep"]
    assert len(kept) >= 60
    assert [i for i in kept if not verdicts[i].keep] == []
    loops = [c["id"] for c in cases if c.get("reason") in ("repeated_ngrams", "repeated_lines")]
    assert loops and all(not verdicts[i].keep for i in loops)
