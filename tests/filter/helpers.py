"""Hand-made synthesize runs for the filter, variants and report tests.

``make_run`` writes the folder layout ``mind_nemo.synthesize`` produces (conversations,
contexts, complete shard manifests with a session timeline, config.yaml, run_identity.json)
from rows the test chooses, so every expected count is known in advance. ``context_text`` and
``good_conversation`` give a context and a conversation that passes every default filter.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

import mind_nemo.filter.config  # noqa: F401  (registers filter_schema and the output_dir resolver)
from mind_nemo.core.config import typed_config
from mind_nemo.core.run_folder import RunFolder, shard_name, write_marker
from mind_nemo.filter.config import FilterStageConfig
from mind_nemo.filter.stage import FilterStage

SPEAKERS = {
    "two_students": ("Alex", "Sam"),
    "teacher_student": ("Teacher", "Student"),
    "two_professors": ("Professor A", "Professor B"),
    "debate": ("Pro", "Con"),
    "problem_solving": ("Ana", "Ben"),
    "layman_knowall": ("Layman", "Know-all"),
    "interview": ("Interviewer", "Expert"),
}
VOCAB = (  # noqa: SIM905 - a word list reads better as text
    "careful reasoning shows every step matters because numbers behave predictably when we "
    "apply definitions precisely and check results against intuition examples patterns rules "
    "identities proofs lemmas estimates bounds limits sums products ratios fractions "
).split()


def numbers_of(doc: int, index: int) -> tuple[int, int, int]:
    return 11 + 7 * doc + 3 * index, 23 + 5 * doc + index, 97 + 2 * doc


def context_text(doc: int, index: int) -> str:
    a, b, c = numbers_of(doc, index)
    return (
        f"Let $x = {a}$ and $y = {b}$. Then $x + y = {a + b}$ and $x \\cdot y = {a * b}$. "
        f"We also note that {c} is a number worth remembering."
    )


def filler(seed: str, words: int = 12) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(VOCAB) for _ in range(words))


def good_conversation(doc: int, index: int, style: str, sample: int = 0) -> str:
    a, b, c = numbers_of(doc, index)
    p, q = SPEAKERS.get(style, ("Alice", "Bob"))
    f = [filler(f"{doc}/{index}/{style}/{sample}/{i}") for i in range(5)]
    return (
        f"{p}: Let us start with $x = {a}$ and $y = {b}$. What is their sum? {f[0]}.\n\n"
        f"{q}: Adding them gives $x + y = {a + b}$, since {a} plus {b} is {a + b}. {f[1]}.\n\n"
        f"{p}: Good. And the product, $x \\cdot y = {a * b}$? {f[2]}.\n\n"
        f"{q}: The product is {a * b}, and the text also mentions {c}. {f[3]}.\n\n"
        f"{p}: Exactly, check each step before moving on. {f[4]}."
    )


def conversation_row(doc: int, index: int, style: str, text: str | None = None, **extra: Any):
    sample = extra.pop("sample", 0)
    row = {
        "text": good_conversation(doc, index, style, sample) if text is None else text,
        "conversational_style": style,
        "document_id": f"doc-{doc:03d}",
        "context_index": index,
        "sample": sample,
        "model": "embedded",
        "sampling": {"temperature": 1.0, "top_p": 0.9},
        "prompt_hash": "h",
        "prompt_tokens": 200 + index,
        "completion_tokens": 120,
        "cached_tokens": 0,
        "finish_reason": "stop",
        "created": 1_700_000_000.0 + 3 * doc + index,
        "latency_s": 1.0,
    }
    row.update(extra)
    return row


def context_row(doc: int, index: int, tokens: int = 60) -> dict[str, Any]:
    text = context_text(doc, index)
    return {
        "document_id": f"doc-{doc:03d}",
        "index": index,
        "text": text,
        "token_start": index * tokens,
        "token_end": (index + 1) * tokens,
        "char_start": 0,
        "char_end": len(text),
    }


def make_run(
    root: Path,
    shards: list[list[dict[str, Any] | str]],
    contexts: list[list[dict[str, Any]]],
    *,
    status: str = "complete",
    styles: list[str] | None = None,
) -> Path:
    """A synthesize run folder; a ``str`` row is written as a raw (possibly broken) line."""
    num = len(shards)
    for folder in ("conversations", "contexts", "manifests", "failures"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for shard_id, (rows, ctx_rows) in enumerate(zip(shards, contexts, strict=True)):
        name = shard_name(shard_id, num)
        lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
        (root / "conversations" / f"{name}.jsonl").write_text("".join(f"{x}\n" for x in lines))
        (root / "contexts" / f"{name}.jsonl").write_text(
            "".join(json.dumps(c) + "\n" for c in ctx_rows)
        )
        by_style: dict[str, dict[str, int]] = {}
        for r in rows:
            if isinstance(r, dict) and isinstance(r.get("conversational_style"), str):
                t = by_style.setdefault(
                    r["conversational_style"],
                    {
                        "conversations": 0,
                        "prompt_tokens": 0,
                        "completion_tokens": 0,
                        "cached_tokens": 0,
                    },
                )
                t["conversations"] += 1
                for column in ("prompt_tokens", "completion_tokens"):
                    value = r.get(column)
                    t[column] += value if isinstance(value, int) else 0
        manifest = {
            "shard": name,
            "status": status,
            "by_style": by_style,
            "session": {
                "timeline": [
                    {"t": 5.0, "requests": 1, "completion_tokens": 120},
                    {"t": 10.0, "requests": 3, "completion_tokens": 360},
                ]
            },
        }
        write_shard_manifest(root, name, manifest, status)
    style_names = styles or list(SPEAKERS)
    (root / "config.yaml").write_text(
        "style:\n  name: all\n  styles: [" + ", ".join(style_names) + "]\n  prompt_file: null\n"
        "server:\n  model: embedded\n  tokenizer: null\n"
    )
    (root / "run_identity.json").write_text(json.dumps({"num_shards": num}))
    return root


def write_shard_manifest(root: Path, name: str, manifest: dict[str, Any], status: str) -> None:
    """The shard manifest as synthesize writes it: a done marker vouching for the shard's
    conversations and contexts by checksum (a resumed run rewrites it when it ends)."""
    folder = RunFolder(root)
    files = [folder.conversations(name), folder.contexts(name)]
    write_marker(folder.shard_manifest(name), manifest, files=files, root=root, status=status)


def compose_filter(run_dir: Path, out: Path, *overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_module("mind_nemo.hydra_configs", version_base="1.3"):
        return compose(
            config_name="filter",
            overrides=[f"run_dir={run_dir}", f"output_dir={out}", "progress=false", *overrides],
        )


def filter_run(run_dir: Path, out: Path, *overrides: str) -> dict[str, Any] | None:
    """Run the filter stage in-process (fast); the manifest when finalized."""
    raw = compose_filter(run_dir, out, *overrides)
    cfg = typed_config(raw, FilterStageConfig)
    return FilterStage(cfg, raw).run()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_parts(folder: Path) -> list[dict[str, Any]]:
    return [row for part in sorted(folder.glob("part-*.jsonl")) for row in read_jsonl(part)]


# ----------------------------------------------------------- a run with every outcome

LOOP = "\n\n".join(
    f"{s}: I'm glad you are so passionate about math today." for s in ["Layman", "Know-all"] * 5
)
PREAMBLE = "Sure! Here is a conversation between two professors:\n\n"


def near_copy(text: str) -> str:
    words = text.split(" ")
    words[-3] = "CHANGED"
    return " ".join(words)


def build_rich_run(root: Path) -> Path:
    r1 = conversation_row(0, 0, "teacher_student")
    r2 = conversation_row(0, 0, "debate")
    shard0 = [
        r1,
        r2,
        conversation_row(0, 1, "two_students"),
        conversation_row(0, 1, "interview", finish_reason="length"),
        conversation_row(1, 0, "teacher_student", text="  \n "),
        conversation_row(1, 0, "debate", completion_tokens=30),
        conversation_row(1, 0, "interview", text="I'm a helpful AI, here to help with math. " * 4),
        conversation_row(
            1, 0, "two_professors", text=PREAMBLE + good_conversation(1, 0, "two_professors")
        ),
        '{"text": "torn line',
        {"conversational_style": "debate", "document_id": "doc-001", "context_index": 0},
        conversation_row(0, 0, "problem_solving", text="Ana: I will just talk alone here. " * 8),
    ]
    shard1 = [
        conversation_row(2, 0, "teacher_student"),
        # doc 3 is a copy of doc 0's page: its conversations repeat doc 0's
        conversation_row(3, 0, "teacher_student", text=r1["text"]),
        conversation_row(3, 0, "debate", text=near_copy(r2["text"])),
        conversation_row(2, 0, "interview", completion_tokens=150),
        conversation_row(2, 0, "two_students", text=good_conversation(7, 3, "two_students")),
        conversation_row(2, 0, "layman_knowall", text=LOOP),
    ]
    contexts0 = [context_row(0, 0), context_row(0, 1), context_row(1, 0)]
    copy = {**context_row(0, 0), "document_id": "doc-003"}
    contexts1 = [context_row(2, 0), copy]
    return make_run(root, [shard0, shard1], [contexts0, contexts1])
