"""Evaluate stage, no model: answer checking, suites, scoring, the table and chart, CLI errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mind_nemo.core.errors import UserError
from mind_nemo.evaluate import scoring, suites
from mind_nemo.evaluate.config import COLUMNS, ColumnConfig, EvaluateConfig
from mind_nemo.evaluate.math_answers import final_answer, is_equivalent, score_completion
from mind_nemo.evaluate.paper import PAPER_OWM4B
from mind_nemo.evaluate.table import build_table, to_markdown
from tests.helpers import run_stage

MINERVA = "Final Answer: The final answer is ${}$. I hope it is correct."


@pytest.mark.parametrize(
    ("completion", "solution", "correct"),
    [
        ("Half of 1.5 is 0.75.\n" + MINERVA.format("0.75"), "So $\\boxed{\\frac{3}{4}}$.", True),
        ("We find $x = \\boxed{4}$.", "Hence $x=\\boxed{4}$.", True),
        (MINERVA.format("[2,5)"), "The domain is $\\boxed{[2,5)}$.", True),
        (MINERVA.format("\\sqrt{4}"), "$\\boxed{2}$", True),
        (MINERVA.format("5"), "$\\boxed{6}$", False),
        (MINERVA.format("(2,5)"), "$\\boxed{[2,5)}$", False),
        ("I am not sure.", "$\\boxed{6}$", False),
        ("", "$\\boxed{6}$", False),
    ],
)
def test_math_answers_are_checked_for_equivalence(completion, solution, correct):
    assert score_completion(completion, solution) is correct


def test_final_answer_prefers_the_minerva_sentence_then_boxed():
    assert final_answer("x is \\boxed{3}.\n" + MINERVA.format("7")) == "$7$"
    assert final_answer("so \\boxed{\\frac{1}{2}} done") == "\\frac{1}{2}"
    assert is_equivalent("0.5", "\\frac{1}{2}")
    assert not is_equivalent("0.5", "\\frac{1}{3}")


def test_minerva_exemplars_are_lm_evals_own():
    import importlib.util
    import sys

    from mind_nemo.evaluate.tasks import OWN_TASKS_DIR

    spec = importlib.util.spec_from_file_location("mind_math", OWN_TASKS_DIR / "mind_math.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("mind_math", module)
    spec.loader.exec_module(module)
    samples = module.minerva_fewshot_samples()
    assert len(samples) == 4
    for sample in samples:
        assert sample["problem"] and "Final Answer: The final answer is" in sample["solution"]
        assert score_completion(sample["solution"], sample["solution"])


def test_shipped_suites_cover_the_paper_columns():
    assert {"paper", "fixtures"} <= set(suites.builtin_suites())
    paper = suites.load_suite("paper")
    assert set(paper.columns) == set(COLUMNS)
    assert paper.run["gsm8k_cot"].num_fewshot == 8
    assert paper.run["mind_minerva_math"].num_fewshot == 4
    assert paper.run["mmlu"].num_fewshot == 5
    assert len(paper.columns["general_reasoning"].metrics) == 10
    assert paper.data_dir is None
    fixtures = suites.load_suite("fixtures")
    assert fixtures.data_dir == "fixtures"
    assert set(fixtures.columns["general_reasoning"].metrics) == set(
        paper.columns["general_reasoning"].metrics
    )
    for name, spec in fixtures.run.items():  # same shots as the paper for the same benchmark
        if name in paper.run:
            assert spec.num_fewshot == paper.run[name].num_fewshot


def test_unknown_suite_task_and_missing_data_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="unknown suite 'nope'"):
        suites.load_suite("nope")
    cfg = EvaluateConfig(suite="fixtures", tasks=["gsm8k_cotx"], output_dir=str(tmp_path))
    with pytest.raises(UserError, match="unknown task 'gsm8k_cotx'.*gsm8k_cot"):
        suites.make_plan(cfg)
    (tmp_path / "data").mkdir()
    cfg = EvaluateConfig(suite="fixtures", data_dir=str(tmp_path / "data"), output_dir="x")
    with pytest.raises(UserError, match="reads 'openai/gsm8k'"):
        suites.make_plan(cfg)


def test_plan_points_tasks_at_local_copies_and_votes():
    cfg = EvaluateConfig(suite="fixtures", tasks=["gsm8k_cot", "mmlu_marketing"], majority_vote=5)
    plan = suites.make_plan(cfg)
    gsm, mmlu = plan.task_dicts()
    assert gsm["dataset_path"].endswith("eval_fixtures/openai/gsm8k")
    assert Path(gsm["dataset_path"], "README.md").is_file()
    assert gsm["num_fewshot"] == 8 and gsm["repeats"] == 5
    assert gsm["generation_kwargs"]["do_sample"] is True
    for entry in gsm["filter_list"]:  # the task's own filters, voting before take_first
        functions = [step["function"] for step in entry["filter"]]
        assert functions[-2:] == ["majority_vote", "take_first"]
    assert {e["name"] for e in gsm["filter_list"]} == {"strict-match", "flexible-extract"}
    assert mmlu["dataset_path"].endswith("eval_fixtures/cais/mmlu") and "repeats" not in mmlu
    hub = suites.make_plan(EvaluateConfig(suite="paper"))
    assert len(hub.task_dicts()) == 13  # every paper task is one lm-eval knows
    assert {"task": "mmlu", "num_fewshot": 5} in hub.task_dicts()  # Hub: nothing relocated
    partial = EvaluateConfig(suite="paper", data_dir="fixtures", tasks=["mmlu"])
    with pytest.raises(UserError, match="cais/mmlu .* has no config 'abstract_algebra'"):
        suites.make_plan(partial)  # the fixtures hold 3 of MMLU's 57 subjects


def test_scores_become_paper_columns():
    raw = {
        "results": {
            "gsm8k_cot": {"exact_match,strict-match": 0.25, "exact_match_stderr,strict-match": 0.1},
            "m_a": {"math_verify,none": 1.0},
            "m_b": {"math_verify,none": 0.0},
            "arc_easy": {"acc,none": 0.5, "acc_norm,none": 0.75, "alias": "arc_easy"},
            "piqa": {"acc,none": 0.25, "acc_norm,none": 0.25},
            "mmlu": {"acc,none": 0.4},
        },
        "n-samples": {
            "gsm8k_cot": {"effective": 4},
            "m_a": {"effective": 3},
            "m_b": {"effective": 1},
            "arc_easy": {"effective": 2},
            "piqa": {"effective": 9},
        },
        "group_subtasks": {"mmlu": ["m_a", "m_b"]},
    }
    columns = {
        "gsm8k": ColumnConfig(metrics={"gsm8k_cot": "exact_match,strict-match"}),
        "math": ColumnConfig(
            metrics={"m_a": "math_verify,none", "m_b": "math_verify,none"}, aggregate="weighted"
        ),
        "mmlu": ColumnConfig(metrics={"mmlu": "acc,none"}),
        "general_reasoning": ColumnConfig(
            metrics={"arc_easy": "acc_norm,none", "piqa": "acc,none"}, aggregate="mean"
        ),
        "mmlu_stem": ColumnConfig(metrics={"mmlu_stem": "acc,none"}),
    }
    scores, missing = scoring.paper_columns(raw, columns)
    assert scores["gsm8k"] == pytest.approx(25.0)
    assert scores["math"] == pytest.approx(75.0)  # 3 of 4 questions, not the mean of 100 and 0
    assert scores["general_reasoning"] == pytest.approx(50.0)  # (75 + 25) / 2, unweighted
    assert scores["mmlu"] == pytest.approx(40.0)
    assert scores["mmlu_stem"] is None and "not run" in missing["mmlu_stem"]
    assert scores["avg"] == pytest.approx((25 + 75 + 40 + 50) / 4)
    per_task = scoring.task_scores(raw)
    assert per_task["arc_easy"]["metrics"] == {"acc,none": 50.0, "acc_norm,none": 75.0}
    assert per_task["gsm8k_cot"]["stderr"] == {"exact_match,strict-match": 10.0}
    assert per_task["mmlu"]["n"] == 4  # a group counts its tasks' questions
    raw["results"].pop("piqa")
    scores, _ = scoring.paper_columns(raw, columns)
    assert scores["general_reasoning"] is None and scores["avg"] is None


def fake_results(path: Path, name: str, gsm8k: float | None) -> Path:
    columns = dict.fromkeys([*COLUMNS, "avg"], 10.0)
    columns["gsm8k"] = gsm8k
    path.mkdir(parents=True)
    (path / "results.json").write_text(
        json.dumps(
            {
                "name": name,
                "suite": "fixtures",
                "data_dir": "/x",
                "limit": 2,
                "columns": columns,
                "skipped": {},
            }
        )
    )
    return path


def test_table_puts_our_runs_beside_the_papers(tmp_path):
    a = fake_results(tmp_path / "a", "run-a", 12.5)
    b = fake_results(tmp_path / "b", "run-b", None)
    table = build_table([str(a), str(b / "results.json")])
    rows = table["rows"]
    assert [r["label"] for r in rows[-2:]] == ["run-a", "run-b"]
    assert len(rows) == len(PAPER_OWM4B) + 2
    raw_row = next(r for r in rows if r["label"] == "paper: raw")
    assert raw_row["reference"] and raw_row["columns"]["gsm8k"] == 12.96
    assert raw_row["columns"]["avg"] == 29.17
    markdown = to_markdown(table)
    lines = markdown.splitlines()
    assert lines[0] == "| Run | GSM8K | MATH | MMLU-STEM | MMLU | GR | Avg | Measured on |"
    assert "| **run-a** | 12.50 | 10.00 |" in markdown
    assert "| **run-b** | – |" in markdown
    assert "*paper: all conversations* | 26.38 | 7.22 | 42.53 | 50.21 | 55.41 | 34.80" in markdown
    assert "limit=2" in markdown
    with pytest.raises(UserError, match="no evaluate results"):
        build_table([str(tmp_path / "missing")])


def test_compare_cli_writes_table_json_and_chart(tmp_path):
    a = fake_results(tmp_path / "a", "run-a", 12.5)
    b = fake_results(tmp_path / "b", "run-b", 30.0)
    out = tmp_path / "cmp"
    result = run_stage("evaluate.compare", f"runs=[{a},{b}]", f"output_dir={out}", timeout=120)
    assert "run-b" in result.stdout
    table = json.loads((out / "table.json").read_text())
    assert [r["label"] for r in table["rows"] if not r["reference"]] == ["run-a", "run-b"]
    assert (out / "table.md").read_text().startswith("| Run | GSM8K |")
    assert (out / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = run_stage(
        "evaluate.compare", f"runs=[{tmp_path}/nope]", f"output_dir={out}", check=False, timeout=120
    )
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error: no evaluate results")


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["model.path=/nonexistent/ckpt"], "model.path '/nonexistent/ckpt' does not exist"),
        (["model.path=embedded", "suite=nope"], "unknown suite 'nope'"),
        (["model.path=embedded", "tasks=[gsm8k_cotx]"], "unknown task 'gsm8k_cotx'"),
        (["model.path=embedded", "limit=0"], "limit=0: must be >= 1"),
        (["model.path=embedded", "no_such_key=1"], "Key 'no_such_key' not in 'EvaluateConfig'"),
        ([], "say what to evaluate"),
    ],
)
def test_user_mistakes_are_one_line_and_exit_2(overrides, expected, tmp_path):
    result = run_stage(
        "evaluate",
        "suite=fixtures",
        *overrides,
        f"output_dir={tmp_path}/run",
        check=False,
        timeout=180,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith("error: ") and expected in lines[0]


def test_broken_checkpoint_folder_is_one_line(tmp_path):
    ckpt = tmp_path / "hf"
    ckpt.mkdir()
    (ckpt / "config.json").write_text('{"model_type": "llama", "architectures": ["Llama"]}')
    result = run_stage(
        "evaluate",
        f"model.path={ckpt}",
        "suite=fixtures",
        "tasks=[arc_easy]",
        f"output_dir={tmp_path}/run",
        check=False,
        timeout=180,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot load model '{ckpt}'"), lines


def test_no_hub_and_no_local_data_is_one_line(tmp_path, tiny_model_dir):
    result = run_stage(
        "evaluate", f"model.path={tiny_model_dir}", "tasks=[arc_easy]", "limit=1",
        f"output_dir={tmp_path}/run", check=False, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot load benchmark data" in lines[0], lines
    assert "allenai/ai2_arc" in lines[0] and "data_dir=DIR" in lines[0]


def test_sampled_server_requests_carry_no_fixed_seed():
    """Else a server honouring lm-eval's fixed seed returns one sample K times in a vote."""
    from mind_nemo.evaluate.backends import unseeded_when_sampling

    class Base:
        def _create_payload(self, temperature: float) -> dict:
            return {"prompt": "p", "temperature": temperature, "seed": 1234}

    api = unseeded_when_sampling(Base)()
    assert "seed" not in api._create_payload(0.6)
    assert api._create_payload(0.0)["seed"] == 1234  # greedy stays reproducible
