"""What lm-eval knows about a task name: does it exist, what does it read, how is it scored.

We never restate a benchmark's prompt, few-shot set or metric: those are lm-eval's task YAMLs
(plus our Minerva MATH tasks in ``lm_tasks/``). This module only *reads* them, through lm-eval's
``TaskManager`` index, to answer the questions we need before a run starts: is the name known
(else one clear error), which Hub data sets does it load (to point them at local copies), and
does it need prompt log-probabilities (which many servers cannot give).
"""

from __future__ import annotations

import difflib
import functools
import logging
from pathlib import Path
from typing import Any

from mind_nemo.core.errors import UserError

#: Our own lm-eval task YAMLs (MATH with the Minerva prompt and math-verify).
OWN_TASKS_DIR = Path(__file__).resolve().parent / "lm_tasks"
#: lm-eval output types scored by log-likelihood (need prompt log-probs from a server).
LOGLIKELIHOOD_TYPES = ("loglikelihood", "multiple_choice", "loglikelihood_rolling")


@functools.cache
def task_manager() -> Any:
    """lm-eval's task index with our task folder added (built once: it scans ~10k YAMLs)."""
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(OWN_TASKS_DIR), verbosity="ERROR")
    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    return manager


def kind(name: str) -> str:
    """``task``, ``group``, ``tag`` or ``python_task``; an unknown name is a UserError."""
    index = task_manager().task_index
    if name not in index:
        close = difflib.get_close_matches(name, list(index), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UserError(f"unknown task {name!r} (not an lm-eval task or group){hint}")
    return str(index[name]["type"])


def task_config(name: str) -> dict[str, Any]:
    """The task's YAML with its ``include`` chain merged, ``!function`` values left unresolved
    (resolving them would import task code just to read a data set name)."""
    from lm_eval import utils

    entry = task_manager().task_index[name]
    return utils.load_yaml_config(entry["yaml_path"], mode="simple")


def leaf_tasks(name: str) -> list[str]:
    """The individual tasks a name stands for (itself, or a group's or tag's tasks, recursively)."""
    what = kind(name)
    if what in ("task", "python_task"):
        return [name]
    if what == "tag":
        members = task_manager().task_index[name]["task"]
    else:
        members = task_config(name).get("task", [])
    leaves: list[str] = []
    for member in members:
        if not isinstance(member, str):
            raise UserError(f"group {name!r} defines a task inline; list its tasks by name instead")
        leaves += [t for t in leaf_tasks(member) if t not in leaves]
    return leaves


def dataset_paths(name: str) -> set[str]:
    """Hub data set names (``dataset_path``) the task or group reads."""
    paths = set()
    for leaf in leaf_tasks(name):
        if kind(leaf) == "python_task":
            raise UserError(f"task {leaf!r} is defined in Python; its data cannot be relocated")
        path = task_config(leaf).get("dataset_path")
        if path:
            paths.add(str(path))
    return paths


def needs_loglikelihood(name: str) -> bool:
    """True when any task under ``name`` is scored by log-likelihood rather than generation."""
    return any(
        task_config(leaf).get("output_type", "generate_until") in LOGLIKELIHOOD_TYPES
        for leaf in leaf_tasks(name)
        if kind(leaf) != "python_task"
    )


def filter_list(name: str) -> list[dict[str, Any]]:
    """The task's answer-extraction filters as its YAML declares them (may be empty)."""
    return list(task_config(name).get("filter_list") or [])
