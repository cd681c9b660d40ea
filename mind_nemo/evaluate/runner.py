"""One evaluation, start to finish: plan, backend, lm-eval, scores, files.

The order matters for failing early: the suite, task names and local data are checked before a
model is loaded or a server launched; a server's prompt log-prob support is checked before any
benchmark runs. Output files are written atomically, so ``results.json`` either is complete or
is not there.

Beside our ``results.json`` the run folder holds what ``lm_eval --output_path RUN/lm_eval``
writes, written by lm-eval's own ``EvaluationTracker``: ``lm_eval/<model>/results_<date>.json``
(``results``, ``configs``, ``versions``, ``n-shot``, ``higher_is_better``, ``n-samples``,
``config``, ``date``, ...) and ``samples_<task>_<date>.jsonl`` per task, so lm-eval's tooling
(``lm_eval.utils.make_table``, its Zeno/W&B scripts, ``get_latest_filename``) reads our runs.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mind_nemo.core.errors import UserError
from mind_nemo.core.jsonl import write_atomic, write_json_atomic
from mind_nemo.core.run_folder import RunFolder
from mind_nemo.evaluate import tasks
from mind_nemo.evaluate.backends import Backend, checkpoint_dir, open_backend
from mind_nemo.evaluate.config import COLUMNS, EvaluateConfig
from mind_nemo.evaluate.scoring import paper_columns, task_scores
from mind_nemo.evaluate.suites import Plan, make_plan

log = logging.getLogger(__name__)
RESULTS_FILE = "results.json"
#: ``--output_path`` of the lm-eval files (lm-eval adds a folder named after the model).
LM_EVAL_DIR = "lm_eval"


def check_config(cfg: EvaluateConfig) -> None:
    """What the config cannot check itself (its values are checked when it is built), caught
    before anything slow."""
    if cfg.server is None:
        checkpoint_dir(cfg.model.path)  # a missing folder fails before the slow task index


def unsupported_error(backend: Backend, plan: Plan) -> UserError:
    names = [n for n in plan.entries if tasks.needs_loglikelihood(n)]
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return UserError(
        f"the server returns no prompt log-probabilities (api={backend.description['api']}), "
        f"which {shown} need; use a server that echoes them on /v1/completions (vLLM, SGLang), "
        "evaluate the checkpoint with model.path=..., or set skip_unsupported=true to run only "
        "the generation tasks"
    )


def run_lm_eval(
    cfg: EvaluateConfig, backend: Backend, plan: Plan, tracker: Any = None
) -> dict[str, Any]:
    from datasets.exceptions import DatasetNotFoundError

    try:
        return _simple_evaluate(cfg, backend, plan, tracker)
    except (ConnectionError, DatasetNotFoundError) as err:  # datasets' "Hub unreachable"
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(
            f"cannot load benchmark data: {first}; without the Hub, pass data_dir=DIR with local "
            "copies (DIR/<hub name>, see mind_nemo/evaluate/README.md) or suite=fixtures"
        ) from None


def _simple_evaluate(cfg: EvaluateConfig, backend: Backend, plan: Plan, tracker: Any) -> Any:
    import lm_eval

    return lm_eval.simple_evaluate(
        model=backend.lm,
        model_args=backend.model_args,
        evaluation_tracker=tracker,
        tasks=plan.task_dicts(),
        task_manager=tasks.task_manager(),
        limit=cfg.limit,
        gen_kwargs={"max_gen_toks": cfg.max_gen_toks} if cfg.max_gen_toks else None,
        log_samples=cfg.log_samples,
        apply_chat_template=backend.chat,
        bootstrap_iters=100,
        random_seed=cfg.seed,
        numpy_random_seed=cfg.seed,
        torch_random_seed=cfg.seed,
        fewshot_random_seed=cfg.seed,
    )


def write_lm_eval_files(
    out: Path, tracker: Any, raw: dict[str, Any], samples: dict[str, list[dict[str, Any]]] | None
) -> dict[str, Any]:
    """lm-eval's results file and per-task samples, by lm-eval's ``EvaluationTracker`` (what
    ``lm_eval --output_path`` writes, names and all); returns their paths within ``out``.

    The tracker logs and swallows a failed write, so the files are looked for afterwards."""
    tracker.save_results_aggregated(results=dict(raw), samples=samples)
    folder = Path(tracker.output_path) / str(tracker.general_config_tracker.model_name_sanitized)
    date = getattr(tracker, "date_id", None)
    results_file = folder / f"results_{date}.json"
    if date is None or not results_file.is_file():
        raise UserError(f"lm-eval could not write its results file under {folder}")
    written: dict[str, Any] = {"results": str(results_file.relative_to(out)), "samples": {}}
    for task in raw.get("configs", {}):
        if samples is None or task not in samples:
            continue
        tracker.save_results_samples(task_name=task, samples=samples[task])
        file = folder / f"samples_{task}_{date}.jsonl"
        if file.is_file():
            written["samples"][task] = str(file.relative_to(out))
    return written


def build_results(
    cfg: EvaluateConfig, backend: Backend, plan: Plan, raw: dict[str, Any], elapsed: float
) -> dict[str, Any]:
    columns, missing = paper_columns(raw, plan.suite.columns)
    for column, why in missing.items():
        task = why.split(":", 1)[0]
        if task in plan.skipped:
            missing[column] = f"{task}: skipped, {plan.skipped[task]}"
    return {
        "name": cfg.name or Path(cfg.output_dir).resolve().name,
        "suite": plan.suite.name,
        "data_dir": str(plan.data_dir) if plan.data_dir else "hub",
        "model": backend.description,
        "limit": cfg.limit,
        "max_gen_toks": cfg.max_gen_toks,
        "majority_vote": {n: s.majority_vote for n, s in plan.entries.items() if s.majority_vote},
        "columns": columns,
        "column_labels": {**COLUMNS, "avg": "Avg"},
        "columns_missing": missing,
        "tasks": task_scores(raw),
        "skipped": plan.skipped,
        "lm_eval_version": raw.get("lm_eval_version"),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "elapsed_s": round(elapsed, 1),
    }


def evaluate(cfg: EvaluateConfig, raw_cfg: DictConfig) -> dict[str, Any]:
    """Run the suite against the configured model and write the run folder; return results."""
    check_config(cfg)
    out = Path(cfg.output_dir)
    plan = make_plan(cfg)  # names, suite and data checked before any model work
    started = time.monotonic()
    with open_backend(cfg, out) as backend:
        if not backend.loglikelihood:
            if not cfg.skip_unsupported and any(tasks.needs_loglikelihood(n) for n in plan.entries):
                raise unsupported_error(backend, plan)
            plan = make_plan(cfg, loglikelihood_ok=False)
        out.mkdir(parents=True, exist_ok=True)
        write_atomic(RunFolder(out).config, OmegaConf.to_yaml(raw_cfg, resolve=True))
        tracker = lm_eval_tracker(out)
        raw = run_lm_eval(cfg, backend, plan, tracker)
    samples = raw.pop("samples", None)  # kept out of the results file, as lm-eval's CLI does
    if not cfg.log_samples:
        samples = None
    results = build_results(cfg, backend, plan, raw, time.monotonic() - started)
    results["lm_eval_files"] = write_lm_eval_files(out, tracker, raw, samples)
    write_json_atomic(out / RESULTS_FILE, results)
    return results


def lm_eval_tracker(out: Path) -> Any:
    """lm-eval's ``EvaluationTracker`` writing under ``out/lm_eval`` (never to the Hub)."""
    from lm_eval.loggers import EvaluationTracker

    return EvaluationTracker(output_path=str(out / LM_EVAL_DIR))
