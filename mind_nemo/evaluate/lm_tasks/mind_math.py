"""Functions our MATH task YAMLs name with ``!function mind_math.<name>``.

lm-eval loads this file by path (not as a package module), so it stays a thin shim over
:mod:`mind_nemo.evaluate.math_answers`. The four Minerva exemplars are read from lm-eval's own
``minerva_math`` task source (by parsing it, not importing it: importing it demands an antlr4
version Hydra cannot share), so the prompt is exactly the harness's.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
from pathlib import Path
from typing import Any

from mind_nemo.evaluate.math_answers import reference_answer, score_completion


def process_docs(dataset: Any) -> Any:
    """Keep problem and solution; add the boxed reference answer as ``answer``."""

    def one(doc: dict[str, Any]) -> dict[str, Any]:
        solution = doc["solution"]
        return {
            "problem": doc["problem"],
            "solution": solution,
            "answer": reference_answer(solution),
        }

    return dataset.map(one)


@functools.cache
def _lm_eval_minerva_samples() -> tuple[dict[str, str], ...]:
    spec = importlib.util.find_spec("lm_eval.tasks")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("lm_eval is not installed")
    source = Path(next(iter(spec.submodule_search_locations))) / "minerva_math" / "utils.py"
    tree = ast.parse(source.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "list_fewshot_samples":
            for stmt in node.body:
                if isinstance(stmt, ast.Return) and stmt.value is not None:
                    return tuple(ast.literal_eval(stmt.value))
    raise RuntimeError(f"no Minerva exemplars found in {source}")


def minerva_fewshot_samples() -> list[dict[str, str]]:
    """The four Minerva exemplars (problem, solution ending in 'Final Answer: ...')."""
    return [dict(sample) for sample in _lm_eval_minerva_samples()]


def process_results(doc: dict[str, Any], results: list[str]) -> dict[str, int]:
    """1 if the completion's final answer is mathematically equal to the reference, else 0."""
    return {"math_verify": int(score_completion(results[0], doc["solution"]))}
