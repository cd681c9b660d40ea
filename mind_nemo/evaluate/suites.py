"""Suites: load one by name or path, check it, and turn it into lm-eval task configs.

A suite file (``hydra_configs/evaluate/<name>.yaml`` or any path) lists lm-eval task or group
names with their shots and majority vote, and how the paper's columns are read. The plan handed
to lm-eval is one dict per entry: ``{"task": name, "num_fewshot": k, ...}`` plus, when data is
local, ``dataset_path``. lm-eval merges such a dict onto its own task definition (for a group,
onto every member), so everything we do not name stays the harness's.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mind_nemo.core.config import typed_config
from mind_nemo.core.errors import UserError
from mind_nemo.core.package_files import config_folder
from mind_nemo.evaluate import data, tasks
from mind_nemo.evaluate.config import EvaluateConfig, SuiteConfig, TaskRunConfig


def builtin_suites() -> list[str]:
    """Names of the suites shipped in ``hydra_configs/evaluate/``."""
    folder = config_folder() / "evaluate"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_suite(name_or_path: str) -> SuiteConfig:
    """A shipped suite by name, or a suite YAML by path, validated against :class:`SuiteConfig`."""
    path = Path(name_or_path).expanduser()
    if not (name_or_path.endswith((".yaml", ".yml")) and path.is_file()):
        if name_or_path not in builtin_suites():
            raise UserError(
                f"unknown suite {name_or_path!r}; choose one of: {', '.join(builtin_suites())} "
                "(or a path to a suite .yaml)"
            )
        path = Path(str(config_folder() / "evaluate" / f"{name_or_path}.yaml"))
    try:
        node = OmegaConf.merge(OmegaConf.structured(SuiteConfig), OmegaConf.load(path))
        return typed_config(node, SuiteConfig)  # columns, aggregates, shots: checked there
    except OmegaConfBaseException as err:
        raise UserError(f"suite {path}: {str(err).splitlines()[0]}") from None
    except UserError as err:
        raise UserError(f"suite {path}: {err}") from None


@dataclass
class Plan:
    """What one evaluation runs: lm-eval task dicts, and the settings that shaped them."""

    suite: SuiteConfig
    data_dir: Path | None
    entries: dict[str, TaskRunConfig] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def task_dicts(self) -> list[dict[str, Any]]:
        return [task_dict(name, spec, self.data_dir) for name, spec in self.entries.items()]


def vote_settings(name: str, spec: TaskRunConfig) -> dict[str, Any]:
    """Sample ``k`` answers and keep the most common: the task's own filters (named as before,
    so columns read the same keys) with a majority vote inserted before ``take_first``."""
    k = spec.majority_vote or 1
    if k <= 1:
        return {}
    filters = copy.deepcopy(tasks.filter_list(name))
    if not filters:
        raise UserError(f"majority_vote needs answer filters; task {name!r} declares none")
    for entry in filters:
        steps = entry.get("filter", [])
        at = next((i for i, s in enumerate(steps) if s.get("function") == "take_first"), len(steps))
        steps.insert(at, {"function": "majority_vote"})
    generation = dict(tasks.task_config(name).get("generation_kwargs") or {})
    generation.update(do_sample=True, temperature=spec.vote_temperature)
    return {"repeats": k, "filter_list": filters, "generation_kwargs": generation}


def task_dict(name: str, spec: TaskRunConfig, data_dir: Path | None) -> dict[str, Any]:
    """The override dict lm-eval merges onto its definition of ``name``."""
    entry: dict[str, Any] = {"task": name}
    if spec.num_fewshot is not None:
        entry["num_fewshot"] = spec.num_fewshot
    entry.update(vote_settings(name, spec))
    entry.update(data.data_override(name, data_dir))
    return entry


def make_plan(cfg: EvaluateConfig, *, loglikelihood_ok: bool = True) -> Plan:
    """Resolve the suite, ``tasks=`` selection, data location and vote size into a :class:`Plan`.

    Every name is checked against lm-eval's index and every local data set must exist, so a
    typo or a missing fixture fails here, before a model is loaded."""
    suite = load_suite(cfg.suite)
    data_dir = data.resolve_data_dir(cfg.data_dir if cfg.data_dir is not None else suite.data_dir)
    entries = dict(suite.run)
    if cfg.tasks:
        entries = {n: suite.run.get(n, TaskRunConfig()) for n in cfg.tasks}
    for name, spec in entries.items():
        tasks.kind(name)  # unknown names fail here
        if cfg.majority_vote is not None and spec.majority_vote is not None:
            spec.majority_vote = cfg.majority_vote  # both checked (>= 1) by their configs
    plan = Plan(suite=suite, data_dir=data_dir)
    for name, spec in entries.items():
        if not loglikelihood_ok and tasks.needs_loglikelihood(name):
            plan.skipped[name] = "needs prompt log-probabilities the server does not return"
            continue
        task_dict(name, spec, data_dir)  # checks data location now
        plan.entries[name] = spec
    if not plan.entries:
        raise UserError("nothing to evaluate: every selected task was skipped")
    return plan
