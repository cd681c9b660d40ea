"""Helpers every test folder shares: run a stage as a user would, write a corpus, read rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_stage(stage: str, *overrides: str, timeout: float = 600, check: bool = True, env=None):
    """Run ``python -m mind_nemo.<stage> overrides...`` as a user would; return the result."""
    result = subprocess.run(
        [sys.executable, "-m", f"mind_nemo.{stage}", *overrides],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1", **(env or {})},
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{stage} failed ({result.returncode}):\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result


def write_corpus(path: Path, n_docs: int, paragraphs: int = 3) -> Path:
    """A synthetic math corpus of ``n_docs`` JSONL documents with ids ``doc-00000``..."""
    with open(path, "w") as f:
        for i in range(n_docs):
            body = "\n\n".join(
                f"## Part {p}\n\nLet $x = {i + p}$. Then $x^2 = {(i + p) ** 2}$ and "
                f"$2x + {p} = {2 * (i + p) + p}$. We check it twice." * 3
                for p in range(paragraphs)
            )
            f.write(json.dumps({"id": f"doc-{i:05d}", "text": body, "url": f"u{i}"}) + "\n")
    return path


def read_rows(path: Path) -> list[dict]:
    """Every line of a JSONL file, parsed strictly (a torn line fails the test)."""
    return [json.loads(line) for line in path.read_text().splitlines()]
