"""An evaluate run folder read by lm-eval's own tools, as a run of ``lm_eval`` would be.

The fast tests reuse the oracle model of ``test_pipeline.py`` (real lm-eval, known answers).
They check that ``lm_eval/<model>/results_<date>.json`` is lm-eval's results file (its keys,
``lm_eval.utils.make_table``, ``get_latest_filename``), that the samples are lm-eval's records
under lm-eval's names, and that our ``MATH`` task folder loads where ``mind_nemo`` does not
import. The slow one points lm-eval's server model at ``server.tokenizer=embedded``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mind_nemo.evaluate.tasks import OWN_TASKS_DIR
from tests.evaluate.test_pipeline import FIXTURE_TASKS, Oracle, run_with

#: Keys ``lm_eval --output_path`` writes (lm-eval 0.4.11's ``simple_evaluate`` + tracker).
LM_EVAL_KEYS = {"results", "configs", "versions", "n-shot", "higher_is_better", "n-samples",
                "config", "date", "task_hashes", "model_name", "model_name_sanitized",
                "total_evaluation_time_seconds", "lm_eval_version"}  # fmt: skip


@pytest.fixture(scope="module")
def oracle_run(tmp_path_factory):
    monkeypatch = pytest.MonkeyPatch()
    tmp = tmp_path_factory.mktemp("oracle")
    try:
        results = run_with(monkeypatch, tmp, Oracle(right=True))
    finally:
        monkeypatch.undo()
    return tmp / "run", results


def lm_eval_results(out: Path) -> dict:
    ours = json.loads((out / "results.json").read_text())
    return json.loads((out / ours["lm_eval_files"]["results"]).read_text())


def test_lm_evals_results_file_sits_beside_ours_in_lm_evals_layout(oracle_run):
    from lm_eval.utils import get_latest_filename, get_results_filenames

    out, results = oracle_run
    files = [str(p) for p in (out / "lm_eval").rglob("*") if p.is_file()]
    found = get_results_filenames(files)  # lm-eval's own way of finding its results files
    assert len(found) == 1
    assert Path(get_latest_filename(found)) == out / results["lm_eval_files"]["results"]
    raw = lm_eval_results(out)
    assert set(raw) >= LM_EVAL_KEYS, sorted(LM_EVAL_KEYS - set(raw))
    assert "samples" not in raw  # kept apart, as lm-eval's CLI does
    for task in FIXTURE_TASKS:
        ours = results["tasks"][task]
        assert set(raw["configs"]) >= {task} and raw["n-samples"][task]["effective"] == ours["n"]
        for metric, value in ours["metrics"].items():  # ours are lm-eval's, in percent
            assert raw["results"][task][metric] * 100 == pytest.approx(value), (task, metric)


def test_make_table_reads_it_and_shows_our_task_rows(oracle_run):
    from lm_eval.utils import make_table

    out, _ = oracle_run
    raw = lm_eval_results(out)
    aliases = {t: raw["results"][t].get("alias", t) for t in FIXTURE_TASKS}  # make_table pops them
    table = make_table(raw)
    for task, alias in aliases.items():
        row = next((line for line in table.splitlines() if line.startswith(f"|{alias}")), None)
        assert row is not None, (task, table)
        value = row.split("|")[7]  # Tasks|Version|Filter|n-shot|Metric|dir|Value|±|Stderr
        assert float(value) == 1.0, row  # the oracle answered everything right
    if "groups" in raw:
        assert make_table(raw, "groups")
    ours = json.loads((out / "results.json").read_text())
    with pytest.raises(KeyError):  # why the second file exists: our schema is not lm-eval's
        make_table(ours)


def test_samples_are_lm_evals_records_under_lm_evals_names(oracle_run):
    from lm_eval.utils import get_sample_results_filenames

    out, results = oracle_run
    written = results["lm_eval_files"]["samples"]
    assert set(written) == set(lm_eval_results(out)["configs"])
    date = Path(results["lm_eval_files"]["results"]).stem.removeprefix("results_")
    files = get_sample_results_filenames([str(out / p) for p in written.values()])
    assert len(files) == len(written)
    for task, path in written.items():
        assert Path(path).name == f"samples_{task}_{date}.jsonl"
        rows = [json.loads(line) for line in (out / path).read_text().splitlines()]
        # one record per question and answer filter, as lm-eval logs them
        assert len({r["doc_id"] for r in rows}) == results["tasks"][task]["n"], task
        assert len(rows) == len({(r["doc_id"], r["filter"]) for r in rows})
        for row in rows:
            assert {"doc_id", "doc", "target", "arguments", "resps", "filtered_resps",
                    "doc_hash", "prompt_hash", "target_hash"} <= set(row)  # fmt: skip
            assert isinstance(row["arguments"]["gen_args_0"]["arg_0"], str)
    assert not (out / "samples").exists()  # no second copy under names of our own


def test_the_math_task_folder_loads_without_mind_nemo(tmp_path):
    """Copied elsewhere and loaded in a Python where ``import mind_nemo`` fails, lm-eval still
    resolves the task's ``!function`` hooks and scores an answer with math-verify."""
    tasks = shutil.copytree(OWN_TASKS_DIR, tmp_path / "lm_tasks")
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        textwrap.dedent(
            """
            import sys

            class Block:
                def find_spec(self, name, path=None, target=None):
                    if name == "mind_nemo" or name.startswith("mind_nemo."):
                        raise ModuleNotFoundError(f"No module named {name!r} (blocked)")

            sys.meta_path.insert(0, Block())
            """
        )
    )
    script = textwrap.dedent(
        f"""
        import importlib.util
        assert importlib.util.find_spec("lm_eval")
        try:
            import mind_nemo
        except ModuleNotFoundError:
            pass
        else:
            raise SystemExit("mind_nemo is importable")
        from lm_eval import utils
        config = utils.load_yaml_config({str(tasks / "mind_minerva_math_algebra.yaml")!r})
        doc = {{"problem": "1+1?", "solution": "So $1+1=\\\\boxed{{2}}$."}}
        print(config["process_results"](doc, ["Final Answer: The final answer is $2$."]))
        print(config["process_results"](doc, ["Final Answer: The final answer is $3$."]))
        print(len(config["fewshot_config"]["samples"]()))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(blocker)}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env,
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["{'math_verify':", "1}", "{'math_verify':", "0}", "4"]


@pytest.mark.slow
def test_server_tokenizer_embedded_reaches_lm_eval_as_a_folder(tmp_path, stub_server):
    """``server.tokenizer=embedded`` used to reach lm-eval's ``AutoTokenizer`` as the literal
    string, which it looks up on the Hub; offline that fails."""
    from mind_nemo.evaluate.backends import open_backend
    from mind_nemo.evaluate.config import EvaluateConfig
    from mind_nemo.servers.config import ServerConfig
    from mind_nemo.servers.embedded_model import load_embedded_tokenizer

    stub = stub_server()
    server = ServerConfig(type="openai", base_url=stub.url, model="stub", tokenizer="embedded",
                          api="completions", startup_timeout_s=30)  # fmt: skip
    cfg = EvaluateConfig(server=server, suite="fixtures", output_dir=str(tmp_path))
    os.environ["HF_HUB_OFFLINE"] = "1"
    with open_backend(cfg, tmp_path) as backend:
        tokenizer = backend.lm.tokenizer
        assert tokenizer is not None and Path(tokenizer.name_or_path).is_dir()
        text = "Let $x = 2$. Then $x^2 = 4$."
        assert tokenizer(text)["input_ids"] == load_embedded_tokenizer()(text)["input_ids"]
        assert "model=stub" in backend.model_args
