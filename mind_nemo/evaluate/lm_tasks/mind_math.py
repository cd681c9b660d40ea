"""Functions our MATH task YAMLs name with ``!function mind_math.<name>``, and the answer check.

lm-eval loads this file by path, not as a package module, so it imports nothing of mind_nemo:
the task folder works copied anywhere lm-eval, ``math-verify`` and ``datasets`` are installed
(``lm_eval --include_path DIR --tasks mind_minerva_math``). :mod:`mind_nemo.evaluate.math_answers`
re-exports the answer check from here, so there is one copy of it.

Is a model's MATH answer right? Exact string match undercounts MATH badly (``0.75`` vs
``\\frac{3}{4}``, ``x=4`` vs ``4``), so the score checks *mathematical equivalence* with
math-verify (sympy underneath). The Minerva prompt teaches the model to end with "Final Answer:
The final answer is X. I hope it is correct."; we read X from that sentence, else from the last
``\\boxed{}``, else the last line, and compare it with the ``\\boxed{}`` answer of the
reference solution. The four Minerva exemplars are read from lm-eval's own ``minerva_math`` task
source (by parsing it, not importing it: importing it demands an antlr4 version Hydra cannot
share), so the prompt is exactly the harness's.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import re
from pathlib import Path
from typing import Any

from math_verify import parse, verify

_MINERVA = re.compile(r"final answer is\s*(.+?)(?:\.\s*I hope it is correct|$)", re.I | re.S)


def last_boxed(text: str) -> str | None:
    """Contents of the last ``\\boxed{...}`` (or ``\\fbox{...}``), braces balanced; else None."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    open_at = text.find("{", start)
    if open_at < 0:
        return None
    depth = 0
    for i in range(open_at, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[open_at + 1 : i]
    return None


def final_answer(completion: str) -> str:
    """The answer a completion commits to, as LaTeX-ish text (may be empty)."""
    match = _MINERVA.search(completion)
    if match:
        return match.group(1).strip().rstrip(".").strip()
    boxed = last_boxed(completion)
    if boxed is not None:
        return boxed.strip()
    lines = [line.strip() for line in completion.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _as_math(answer: str) -> str:
    """Give math-verify's LaTeX extractor a delimited expression to find."""
    answer = answer.strip()
    if "$" in answer or "\\(" in answer or "\\[" in answer:
        return answer
    return f"${answer}$"


def is_equivalent(predicted: str, reference: str) -> bool:
    """True when two answers denote the same mathematical object (math-verify)."""
    if not predicted.strip() or not reference.strip():
        return False
    gold = parse(_as_math(reference))
    guess = parse(_as_math(predicted))
    if not gold or not guess:
        return predicted.strip() == reference.strip()
    return bool(verify(gold, guess))


def reference_answer(solution: str) -> str:
    """The boxed answer of a MATH reference solution (the whole solution if none is boxed)."""
    boxed = last_boxed(solution)
    return boxed.strip() if boxed is not None else solution.strip()


def score_completion(completion: str, solution: str) -> bool:
    """Whether a completion's final answer matches the reference solution's boxed answer."""
    return is_equivalent(final_answer(completion), reference_answer(solution))


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
