"""Evaluate end to end with real models: the embedded model in-process, and a real server.

Slow on a 2-core CPU (few-shot prompts of ~900 tokens), so both are marked ``slow``; they are
part of ``make test``. ``model.threads=1`` because on a shared 2-core machine one torch thread
measured about ten times faster than two.
"""

from __future__ import annotations

import json

import pytest

from tests.helpers import run_stage

FIXTURE_TASKS = 16  # tasks in the fixtures suite


def in_range(value) -> bool:
    return isinstance(value, (int, float)) and 0.0 <= value <= 100.0


@pytest.mark.slow
@pytest.mark.integration
def test_embedded_model_on_the_fixtures_then_the_table(tmp_path):
    out = tmp_path / "embedded"
    result = run_stage(
        "evaluate", "model.path=embedded", "model.threads=1", "suite=fixtures", "limit=1",
        "max_gen_toks=24", "name=embedded-fixtures", f"output_dir={out}", timeout=900,
    )  # fmt: skip
    assert "embedded-fixtures" in result.stdout and "results.json" in result.stdout
    results = json.loads((out / "results.json").read_text())
    assert results["model"]["backend"] == "hf" and results["suite"] == "fixtures"
    assert set(results["columns"]) == {"gsm8k", "math", "mmlu_stem", "mmlu", "general_reasoning",
                                       "avg"}  # fmt: skip
    for column, value in results["columns"].items():
        assert in_range(value), (column, value, results["columns_missing"])
    assert not results["columns_missing"] and not results["skipped"]
    leaf_tasks = [t for t, r in results["tasks"].items() if "num_fewshot" in r]
    assert len(leaf_tasks) == FIXTURE_TASKS, sorted(results["tasks"])
    for task, scores in results["tasks"].items():
        assert scores["metrics"], task
        assert all(in_range(v) for v in scores["metrics"].values()), (task, scores)
    parts = [results["columns"][c] for c in ("gsm8k", "math", "mmlu", "general_reasoning")]
    assert results["columns"]["avg"] == pytest.approx(sum(parts) / 4)
    assert (out / "config.yaml").is_file()
    assert (out / results["lm_eval_files"]["samples"]["gsm8k_cot"]).is_file()

    table_dir = tmp_path / "table"
    run_stage("evaluate.compare", f"runs=[{out}]", f"output_dir={table_dir}", timeout=120)
    table = json.loads((table_dir / "table.json").read_text())
    ours = [r for r in table["rows"] if not r["reference"]]
    assert [r["label"] for r in ours] == ["embedded-fixtures"]
    assert ours[0]["columns"] == {k: results["columns"][k] for k in ours[0]["columns"]}
    markdown = (table_dir / "table.md").read_text()
    assert "| **embedded-fixtures** |" in markdown and "*paper: longest*" in markdown
    assert (table_dir / "chart.png").stat().st_size > 10_000


@pytest.mark.slow
@pytest.mark.integration
def test_server_without_prompt_logprobs(tmp_path, tiny_model_dir):
    """``transformers serve`` has no prompt log-probs: one clear error, or generation only."""
    server = ["server=local", f"server.model={tiny_model_dir}", "suite=fixtures", "limit=1"]
    refused = run_stage("evaluate", *server, f"output_dir={tmp_path}/a", check=False, timeout=600)
    assert refused.returncode == 2, refused.stderr[-2000:]
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "returns no prompt log-probabilities" in lines[0], lines
    assert "skip_unsupported=true" in lines[0]

    out = tmp_path / "b"
    run_stage(
        "evaluate", *server, "skip_unsupported=true", "tasks=[gsm8k_cot,arc_easy]",
        "max_gen_toks=8", f"output_dir={out}", timeout=600,
    )  # fmt: skip
    results = json.loads((out / "results.json").read_text())
    assert results["model"] == {"backend": "server", "server": "local",
                                "model": str(tiny_model_dir), "api": "completions",
                                "prompt_logprobs": False}  # fmt: skip
    assert in_range(results["columns"]["gsm8k"])
    assert list(results["skipped"]) == ["arc_easy"]
    assert "skipped" in results["columns_missing"]["general_reasoning"]
    samples = out / results["lm_eval_files"]["samples"]["gsm8k_cot"]
    prompt = json.loads(samples.read_text().splitlines()[0])["arguments"]["gen_args_0"]["arg_0"]
    assert prompt.count("The answer is") == 8  # the raw 8-shot prompt was sent
    assert (out / "server.log").is_file()
