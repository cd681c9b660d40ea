"""Filter throughput: conversations/s filtered on one core, ours vs a plain 50-token loop.

Input is generated here (seeded): contexts with numbers and LaTeX, and conversations of the
seven styles in the shapes models produce, about a third of them bad (loops, meta talk,
preambles, truncation, monologues, duplicates). Everything runs pinned to one CPU.

Measured in the same run:

- ``baseline``: a plain Python loop applying only the paper's rule (``completion_tokens >= 50``)
  to parsed rows, and the same loop reading and writing JSONL files;
- each filter family alone, the whole per-row chain, the chain plus dedup signatures;
- the whole stage (``FilterStage``, pass 1 + cross-shard dedup + variants + manifest) on a run
  folder on disk.

    .venv/bin/python bench/bench_filter.py --conversations 3000 --shards 2
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import json
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mind_nemo.core.run_folder import shard_name
from mind_nemo.core.styles import CONVERSATION_STYLES
from mind_nemo.filter.chain import build_chain, run_chain
from mind_nemo.filter.config import FilterSettings, FilterStageConfig
from mind_nemo.filter.rules.base import Item
from mind_nemo.filter.rules.dedup import Signer, fingerprint
from mind_nemo.filter.rules.degeneration import DegenerationFilter
from mind_nemo.filter.rules.faithfulness import FaithfulnessFilter
from mind_nemo.filter.rules.leakage import LeakageFilter, instruction_text
from mind_nemo.filter.rules.length import MinTokensFilter
from mind_nemo.filter.rules.structure import StructureFilter
from mind_nemo.synthesize.styles import load_prompt

NAMES = [("Teacher", "Student"), ("**Alex:**", "**Sam:**"), ("Q", "A"), ("### Pro", "### Con")]
WORDS = (  # noqa: SIM905 - a word list reads better as text
    "we check every step because the sum and the product follow from the definition and the "
    "rule gives a bound that we verify with a small example before moving on "
).split()


def context(rng: random.Random) -> tuple[str, list[int]]:
    nums = [rng.randrange(2, 999) for _ in range(5)]
    text = (
        f"Let $x = {nums[0]}$ and $y = {nums[1]}$. Then $x + y = {nums[0] + nums[1]}$. "
        f"Also {nums[2]}, {nums[3]} and {nums[4]} appear. "
    ) + " ".join(rng.choices(WORDS, k=300))
    return text, nums


def conversation(rng: random.Random, nums: list[int]) -> str:
    a, b = rng.choice(NAMES)
    turns = []
    for i in range(rng.randrange(6, 14)):
        speaker = a if i % 2 == 0 else b
        body = " ".join(rng.choices(WORDS, k=rng.randrange(15, 45)))
        body += f" so we get {rng.choice(nums)} and $x = {nums[0]}$."
        sep = "\n" if speaker.startswith("#") else " "
        label = speaker if speaker.startswith(("*", "#")) else f"{speaker}:"
        turns.append(f"{label}{sep}{body}")
    return "\n\n".join(turns)


def bad(rng: random.Random, good: str) -> tuple[str, str]:
    kind = rng.choice(["loop", "meta", "preamble", "truncated", "monologue", "duplicate", "near"])
    if kind == "loop":
        return "\n\n".join(
            f"{'AB'[i % 2]}: I'm glad you love math so much." for i in range(30)
        ), "stop"
    if kind == "meta":
        return "I'm a helpful AI assistant. " + good, "stop"
    if kind == "preamble":
        return "Sure! Here is a conversation between two students:\n\n" + good, "stop"
    if kind == "truncated":
        return good[: len(good) // 2], "length"
    if kind == "monologue":
        return "Teacher: " + " ".join(rng.choices(WORDS, k=200)), "stop"
    if kind == "near":  # another row with one word changed (near-duplicate dedup)
        words = good.split(" ")
        words[len(words) // 2] = "changed"
        return " ".join(words), "stop"
    return good, "stop"  # exact duplicate of another row (dedup)


def generate(n: int, seed: int = 0) -> tuple[list[dict[str, Any]], dict[tuple[str, int], dict]]:
    rng = random.Random(seed)
    rows, contexts = [], {}
    previous = ""
    for i in range(n):
        doc, index = f"doc-{i // 14:06d}", (i // 7) % 2
        key = (doc, index)
        if key not in contexts:
            text, nums = context(rng)
            contexts[key] = {
                "document_id": doc,
                "index": index,
                "text": text,
                "nums": nums,
                "token_start": 0,
                "token_end": 450,
            }
        good = conversation(rng, contexts[key]["nums"])
        text, finish = (good, "stop") if rng.random() > 0.33 else bad(rng, previous or good)
        previous = good
        rows.append(
            {
                "text": text,
                "conversational_style": CONVERSATION_STYLES[i % 7],
                "document_id": doc,
                "context_index": index,
                "sample": 0,
                "model": "embedded",
                "prompt_tokens": 600,
                "completion_tokens": int(len(text.split()) * 1.3),
                "finish_reason": finish,
                "created": 1.7e9 + i,
            }
        )
    return rows, contexts


def rate(n: int, fn: Callable[[], Any], repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return n / best


def items(rows: list[dict], contexts: dict) -> list[Item]:
    words = lambda text: int(len(text.split()) * 1.3)  # noqa: E731 - tokenizer stand-in
    return [
        Item(
            r["text"],
            r["conversational_style"],
            r,
            context=contexts[(r["document_id"], r["context_index"])]["text"],
            context_tokens=450,
            count_tokens=words,
        )
        for r in rows
    ]


def write_run(root: Path, rows: list[dict], contexts: dict, shards: int) -> None:
    for folder in ("conversations", "contexts", "manifests"):
        (root / folder).mkdir(parents=True)
    for s in range(shards):
        name = shard_name(s, shards)
        mine = [r for i, r in enumerate(rows) if i // 14 % shards == s]
        docs = {r["document_id"] for r in mine}
        (root / "conversations" / f"{name}.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in mine)
        )
        (root / "contexts" / f"{name}.jsonl").write_text(
            "".join(
                json.dumps({k: v for k, v in c.items() if k != "nums"}) + "\n"
                for c in contexts.values()
                if c["document_id"] in docs
            )
        )
        (root / "manifests" / f"{name}.json").write_text(json.dumps({"status": "complete"}))
    (root / "config.yaml").write_text("server:\n  model: embedded\n  tokenizer: null\n")
    (root / "run_identity.json").write_text(json.dumps({"num_shards": shards}))


def baseline_on_disk(run: Path, out: Path) -> None:
    """The plain loop a script would write: read JSONL, keep rows >= 50 tokens, write JSONL."""
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted((run / "conversations").glob("*.jsonl")):
        with open(path) as src, open(out / path.name, "w") as dst:
            for line in src:
                if json.loads(line).get("completion_tokens", 0) >= 50:
                    dst.write(line)


def whole_stage(run: Path, out: Path) -> dict:
    from omegaconf import OmegaConf

    from mind_nemo.filter.stage import FilterStage

    cfg = FilterStageConfig(run_dir=str(run), output_dir=str(out), progress=False)
    cfg.tokenizer = "embedded"
    return FilterStage(cfg, OmegaConf.structured(cfg)).run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=3000)
    parser.add_argument("--shards", type=int, default=2)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    n = args.conversations
    rows, contexts = generate(n)
    settings = FilterSettings()
    instructions = {s: instruction_text(load_prompt(s).user) for s in CONVERSATION_STYLES}
    chain = build_chain(settings, instructions)
    signer = Signer(settings.dedup)

    def run_chain_all(with_dedup: bool = False) -> int:
        kept = 0
        for item in items(rows, contexts):
            if run_chain(chain, item) is None:
                kept += 1
                if with_dedup:
                    fingerprint(item.text)
                    signer.signature(item.text)
        return kept

    results: list[tuple[str, float]] = []
    baseline = rate(n, lambda: [r for r in rows if r["completion_tokens"] >= 50], repeat=5)
    results.append(("baseline: 50-token rule, plain loop (in memory)", baseline))
    singles: dict[str, Any] = {
        "too_short only": MinTokensFilter(settings.length),
        "structure only (speaker parsing)": StructureFilter(settings.structure),
        "leakage only": LeakageFilter(settings.leakage, instructions),
        "degeneration only": DegenerationFilter(settings.degeneration),
        "faithfulness only": FaithfulnessFilter(settings.faithfulness),
    }
    for name, rule in singles.items():
        results.append((name, rate(n, lambda rule=rule: [rule(i) for i in items(rows, contexts)])))
    results.append(("our chain (all per-row filters)", rate(n, run_chain_all)))
    kept = run_chain_all()
    results.append(("our chain + dedup fingerprint/MinHash", rate(n, lambda: run_chain_all(True))))
    from mind_nemo.servers.embedded_model import load_tokenizer

    load_tokenizer("embedded")  # import transformers once, outside the timed stage
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        write_run(run, rows, contexts, args.shards)
        disk_base = rate(n, lambda: baseline_on_disk(run, Path(tmp) / "base"))
        results.append(("baseline: 50-token rule, JSONL in/out (on disk)", disk_base))
        start = time.perf_counter()
        manifest = whole_stage(run, Path(tmp) / "out")
        stage = n / (time.perf_counter() - start)
        results.append(("our whole stage (pass 1 + dedup + variants, on disk)", stage))
    width = max(len(name) for name, _ in results)
    print(
        f"{n} synthetic conversations, {args.shards} shards, one CPU; chain keeps {kept}, "
        f"stage keeps {manifest['conversations']['kept']} "
        f"({manifest['dedup']['exact']} exact + {manifest['dedup']['near']} near dups)"
    )
    for name, value in results:
        print(f"  {name:<{width}}  {value:>12,.0f} conv/s")
    print(
        f"ratio whole stage / on-disk baseline: {stage / disk_base:.3f} "
        f"(chain / in-memory baseline: {results[6][1] / baseline:.5f})"
    )


if __name__ == "__main__":
    main()
