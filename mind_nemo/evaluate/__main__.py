"""``python -m mind_nemo.evaluate``: the paper's benchmarks against a checkpoint or a server.

``model.path=<HF dir|embedded>`` evaluates a checkpoint in-process; ``server=local|openai|vllm``
evaluates through an OpenAI-compatible endpoint. ``suite=paper`` (default, data from the Hub) or
``suite=fixtures`` (the small packaged sets). Writes ``<output_dir>/results.json`` (per task,
the five paper columns and Avg), ``config.yaml`` and lm-eval's own files under ``lm_eval/``;
prints the columns.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import hydra
from omegaconf import DictConfig

from mind_nemo.core.cli import CONFIG_PATH, run_hydra_main
from mind_nemo.core.config import typed_config
from mind_nemo.core.errors import exit_on_user_error
from mind_nemo.core.tables import format_table
from mind_nemo.evaluate.config import EvaluateConfig


def print_summary(results: dict[str, Any], output_dir: str) -> None:
    labels = results["column_labels"]
    row = [results["name"]]
    row += [round(v, 2) if (v := results["columns"][c]) is not None else "-" for c in labels]
    print()
    print(format_table(["run", *labels.values()], [row]))
    for column, why in results["columns_missing"].items():
        print(f"  {labels[column]}: not scored ({why})")
    for task, why in results["skipped"].items():
        print(f"  skipped {task}: {why}")
    print(f"suite {results['suite']} ({results['data_dir']}), {results['elapsed_s']} s")
    print(f"results: {output_dir}/results.json")
    files = results.get("lm_eval_files") or {}
    if files.get("results"):
        print(f"lm-eval: {output_dir}/{files['results']} (lm_eval.utils.make_table reads it)")


@exit_on_user_error
def run_evaluate(raw_cfg: DictConfig) -> dict[str, Any]:
    from mind_nemo.evaluate.runner import evaluate

    cfg: EvaluateConfig = typed_config(raw_cfg, EvaluateConfig)
    results = evaluate(cfg, raw_cfg)
    print_summary(results, cfg.output_dir)
    return results


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="evaluate")
def main(cfg: DictConfig) -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    run_evaluate(cfg)


if __name__ == "__main__":
    run_hydra_main("evaluate", main)
