"""The real lm-eval pipeline on the fixtures, with a model whose answers we choose.

An "oracle" lm-eval model answers every fixture question right (or wrong) from the question's
own record, so lm-eval's prompts, answer filters, our math-verify check, majority vote and the
column arithmetic are tested against known scores: 100 and 0, not just "in range".
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter

import pytest
from lm_eval.api.model import LM

from mind_nemo.evaluate import runner
from mind_nemo.evaluate.backends import Backend
from mind_nemo.evaluate.config import EvaluateConfig, ModelConfig

FIXTURE_TASKS = [
    "gsm8k_cot",
    "mind_minerva_math_algebra",
    "mind_minerva_math_prealgebra",
    "mmlu_high_school_mathematics",
    "mmlu_college_physics",
    "mmlu_marketing",
    "arc_easy",
]


def gold_choice(doc: dict) -> int:
    if "answerKey" in doc:  # ARC
        return doc["choices"]["label"].index(doc["answerKey"])
    return int(doc["answer"])  # MMLU


class Oracle(LM):
    """Answers from the record: ``right`` decides; with ``vote_right`` set, the k-th sample of
    a question is right when ``vote_right(k)`` is true (to test majority vote)."""

    def __init__(self, right: bool = True, vote_right=None) -> None:
        super().__init__()
        self.right = right
        self.vote_right = vote_right
        self.seen: Counter = Counter()

    def _is_right(self, req) -> bool:
        key = (req.task_name, req.doc_id)
        k = self.seen[key]
        self.seen[key] += 1
        return self.vote_right(k) if self.vote_right else self.right

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        out = []
        for req in requests:
            ok = self._is_right(req)
            doc = req.doc
            if req.task_name.startswith("gsm8k"):
                number = int(doc["answer"].split("####")[-1].strip().replace(",", ""))
                out.append(f" Step by step. The answer is {number if ok else number + 1}.\n\n")
            else:
                answer = doc["answer"] if ok else f"{doc['answer']}+1"
                out.append(
                    f" Work.\nFinal Answer: The final answer is ${answer}$. I hope it is correct."
                )
        return out

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        out = []
        for req in requests:
            gold = req.idx == gold_choice(req.doc)
            out.append((0.0 if gold == self.right else -5.0, gold == self.right))
        return out

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError


def first_prompt(out, task: str) -> str:
    """The first prompt of a task, from lm-eval's own samples file of the run."""
    results = json.loads((out / "results.json").read_text())
    path = out / results["lm_eval_files"]["samples"][task]
    return json.loads(path.read_text().splitlines()[0])["arguments"]["gen_args_0"]["arg_0"]


def run_with(monkeypatch, tmp_path, lm: LM, **overrides):
    @contextlib.contextmanager
    def fake_backend(cfg, log_dir):
        yield Backend(lm=lm, description={"backend": "oracle"})

    monkeypatch.setattr(runner, "open_backend", fake_backend)
    settings = {"suite": "fixtures", "tasks": FIXTURE_TASKS, **overrides}
    cfg = EvaluateConfig(
        model=ModelConfig(path="embedded"), output_dir=str(tmp_path / "run"), **settings
    )
    from omegaconf import OmegaConf

    return runner.evaluate(cfg, OmegaConf.structured(cfg))


def test_right_answers_score_100_and_wrong_ones_0(monkeypatch, tmp_path):
    results = run_with(monkeypatch, tmp_path / "right", Oracle(right=True))
    cols = results["columns"]
    for column in ("gsm8k", "math", "mmlu_stem", "mmlu"):
        assert cols[column] == pytest.approx(100.0), (column, results["tasks"])
    assert cols["general_reasoning"] is None  # only arc_easy of the ten ran
    assert "not run" in results["columns_missing"]["general_reasoning"]
    assert cols["avg"] is None
    tasks = results["tasks"]
    assert tasks["gsm8k_cot"]["n"] == 4 and tasks["gsm8k_cot"]["num_fewshot"] == 8
    assert tasks["mind_minerva_math_algebra"]["n"] == 3
    assert tasks["mmlu_marketing"]["num_fewshot"] == 5
    assert tasks["arc_easy"]["metrics"]["acc,none"] == pytest.approx(100.0)

    out = tmp_path / "right" / "run"
    saved = json.loads((out / "results.json").read_text())
    assert saved["columns"] == results["columns"]
    assert (out / "config.yaml").read_text().count("suite: fixtures") == 1
    prompt = first_prompt(out, "gsm8k_cot")
    assert prompt.count("The answer is") == 8  # lm-eval's 8 chain-of-thought exemplars
    assert first_prompt(out, "mind_minerva_math_algebra").count("Problem:") == 5

    wrong = run_with(monkeypatch, tmp_path / "wrong", Oracle(right=False))
    for column in ("gsm8k", "math", "mmlu_stem", "mmlu"):
        assert wrong["columns"][column] == pytest.approx(0.0), column


def test_majority_vote_takes_the_most_common_answer(monkeypatch, tmp_path):
    two_of_three = Oracle(vote_right=lambda k: k % 3 != 2)
    results = run_with(
        monkeypatch, tmp_path / "a", two_of_three, tasks=["gsm8k_cot"], majority_vote=3
    )
    assert results["majority_vote"] == {"gsm8k_cot": 3}
    assert results["columns"]["gsm8k"] == pytest.approx(100.0)
    assert max(two_of_three.seen.values()) == 3  # three samples per question
    one_of_three = Oracle(vote_right=lambda k: k == 0)
    results = run_with(
        monkeypatch, tmp_path / "b", one_of_three, tasks=["gsm8k_cot"], majority_vote=3
    )
    assert results["columns"]["gsm8k"] == pytest.approx(0.0)


def test_a_checkpoint_folder_runs_in_process(tmp_path, tiny_model_dir):
    """lm-eval's hf model on a plain model folder (what pretrain exports), real forward passes."""
    from omegaconf import OmegaConf

    cfg = EvaluateConfig(
        model=ModelConfig(path=str(tiny_model_dir), threads=1),
        suite="fixtures",
        tasks=["gsm8k_cot", "mmlu_marketing", "arc_easy"],
        limit=2,
        max_gen_toks=4,
        output_dir=str(tmp_path / "run"),
    )
    import torch

    threads = torch.get_num_threads()
    try:
        results = runner.evaluate(cfg, OmegaConf.structured(cfg))
    finally:
        torch.set_num_threads(threads)  # model.threads is process-wide; leave others theirs
    assert results["model"]["backend"] == "hf"
    assert results["model"]["resolved"] == str(tiny_model_dir)
    for task in cfg.tasks:
        values = list(results["tasks"][task]["metrics"].values())
        assert values and all(0.0 <= v <= 100.0 for v in values), (task, results["tasks"][task])
        assert results["tasks"][task]["n"] == 2
    assert 0.0 <= results["columns"]["gsm8k"] <= 100.0


def test_the_paper_suites_math_group_reads_all_seven_subjects(monkeypatch, tmp_path):
    """suite=paper with local data: one override dict reaches every task of an lm-eval group."""
    right_on_algebra = Oracle()
    right_on_algebra._is_right = lambda req: req.task_name == "mind_minerva_math_algebra"
    results = run_with(
        monkeypatch, tmp_path, right_on_algebra, suite="paper", data_dir="fixtures",
        tasks=["mind_minerva_math"],
    )  # fmt: skip
    subjects = [t for t in results["tasks"] if t.startswith("mind_minerva_math_")]
    assert len(subjects) == 7
    assert all(results["tasks"][t]["num_fewshot"] == 4 for t in subjects)
    group = results["tasks"]["mind_minerva_math"]
    assert group["n"] == 10  # 3 algebra + 2 prealgebra + 1 in each of the other five
    assert results["columns"]["math"] == pytest.approx(30.0)  # 3 of 10, pooled by question
    assert group["metrics"]["math_verify,none"] == pytest.approx(30.0)


def test_a_suite_file_of_ones_own_sets_shots_for_a_whole_group(monkeypatch, tmp_path):
    suite = tmp_path / "two_shot_math.yaml"
    suite.write_text(
        "name: two_shot_math\n"
        "data_dir: fixtures\n"
        "run:\n  mind_minerva_math: {num_fewshot: 2}\n"
        "columns:\n  math:\n    metrics: {mind_minerva_math: 'math_verify,none'}\n"
    )
    results = run_with(monkeypatch, tmp_path, Oracle(right=True), suite=str(suite), tasks=[])
    assert results["suite"] == "two_shot_math"
    assert results["columns"]["math"] == pytest.approx(100.0)
    assert results["tasks"]["mind_minerva_math_geometry"]["num_fewshot"] == 2
    assert first_prompt(tmp_path / "run", "mind_minerva_math_geometry").count("Problem:") == 3
