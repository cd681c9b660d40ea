"""Fixture builders and Megatron read-back helpers shared by the mix tests.

The inputs imitate what the other stages write: a filter run (``variants/<name>/part-*.jsonl``), a
synthesize run (``conversations/shard-*.jsonl`` with ``conversational_style``), a Parquet corpus
and a saved Hugging Face dataset. Texts mix prose, LaTeX, code, accents and emoji so that a
byte-exact round trip through tokenize -> .bin -> detokenize means something.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.helpers import REPO

STYLES = ("teacher_student", "debate", "two_students")


def text(kind: str, i: int) -> str:
    """A varied, deterministic document."""
    return (
        f"{kind} #{i}: Let $f(x) = x^{i % 5 + 2} + {i}x$. Then $f'(x) = {i % 5 + 2}x^{i % 5 + 1}"
        f" + {i}$.\n\nStudent: Why does the {i}th term vanish? Teacher: Because d/dx of a "
        f"constant is 0 — café, naïve, 数学, 🙂.\n"
        + "    def g(n):\n        return n * (n + 1) // 2\n" * (i % 3)
        + ("Appendix: " + "the quick brown fox jumps over the lazy dog. " * (i % 7)).strip()
    )


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def make_filter_run(root: Path, docs: int = 14) -> tuple[Path, list[str]]:
    """A filter run with a LONGEST variant in two part files; returns it and its texts in order."""
    texts = [text("longest", i) for i in range(docs)]
    half = docs // 2
    write_jsonl(root / "variants/longest/part-00000.jsonl", [{"text": t} for t in texts[:half]])
    write_jsonl(root / "variants/longest/part-00001.jsonl", [{"text": t} for t in texts[half:]])
    (root / "manifest.json").write_text("{}")
    return root, texts


def make_synthesize_run(root: Path, per_style: int = 6) -> tuple[Path, dict[str, list[str]]]:
    """A synthesize run whose two shards interleave styles; returns it and texts per style."""
    by_style: dict[str, list[str]] = {s: [] for s in STYLES}
    shards: list[list[dict[str, Any]]] = [[], []]
    for i in range(per_style):
        for style in STYLES:
            t = text(style, i)
            shards[i % 2].append({"text": t, "conversational_style": style, "document_id": f"d{i}"})
    for shard, rows in enumerate(shards):
        write_jsonl(root / f"conversations/shard-{shard:05d}-of-00002.jsonl", rows)
        for r in rows:  # shard files are read in order: shard 0's rows, then shard 1's
            by_style[r["conversational_style"]].append(r["text"])
    (root / "manifest.json").write_text('{"status": "complete"}')
    return root, by_style


def make_parquet(path: Path, docs: int = 9) -> tuple[Path, list[str]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = [text("general", i) for i in range(docs)]
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"text": texts, "url": [f"u{i}" for i in range(docs)]}), path)
    return path, texts


def make_hf_dataset(path: Path, docs: int = 7) -> tuple[Path, list[str]]:
    import datasets

    texts = [text("hf", i) for i in range(docs)]
    datasets.Dataset.from_dict({"content": texts}).save_to_disk(str(path))
    return path, texts


def read_documents(prefix: str | Path) -> tuple[Any, list[list[int]]]:
    """The IndexedDataset at ``prefix`` (read with megatron-core) and its documents as id lists."""
    from mind_nemo.mix.writer import megatron_indexed_dataset

    dataset = megatron_indexed_dataset().IndexedDataset(str(prefix))
    return dataset, [dataset[i].tolist() for i in range(len(dataset))]


def packaged_texts(name: str) -> list[str]:
    root = REPO / "mind_nemo" / "data"
    return [json.loads(line)["text"] for line in (root / name).read_text().splitlines()]
