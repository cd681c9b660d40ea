"""NeMo-Skills both ways: our contexts rows feed its ``generate``; its output imports into a run
folder that our filter takes, with the ``generation`` texts as the conversations.

The NeMo-Skills output here is shaped as its code writes it (commit 0b012df8 of
NVIDIA/NeMo-Skills): every input field copied through, plus ``generation``,
``num_generated_tokens``, ``finish_reason``, ``generation_start_time``/``end_time``/``time`` and
``serialized_output``; files ``output.jsonl``, ``output_chunk_K.jsonl``, ``output-rsS.jsonl``
with ``.done`` markers from its pipeline.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from mind_nemo.core.records import CONTEXT_FIELD, Context
from mind_nemo.core.styles import CONVERSATION_STYLES
from mind_nemo.import_nemo_skills.outputs import find_outputs
from mind_nemo.synthesize.styles import load_prompt
from tests.filter.helpers import context_text, good_conversation, read_jsonl, read_parts
from tests.helpers import run_stage

SHARD = "shard-00000-of-00001"
DOCS = 4


def contexts() -> list[dict]:
    """Contexts rows exactly as synthesize writes them (``Context.to_json``)."""
    rows = []
    for doc in range(DOCS):
        text = context_text(doc, 0)
        context = Context(f"doc-{doc:03d}", 0, text, 0, 60, 0, len(text))
        rows.append(json.loads(context.to_json()))
    return rows


def ns_output(row: dict, style: str, generation: str | None, sample: int = 0) -> dict:
    out = {"num_generated_tokens": 150, "finish_reason": "stop",
           "generation_start_time": 1.0, "generation_end_time": 3.5, "generation_time": 2.5,
           "serialized_output": [{"role": "assistant", "content": generation}], **row}  # fmt: skip
    if generation is not None:
        out["generation"] = generation
    return out


def write_jsonl(path: Path, rows: list[dict], done: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    if done:
        Path(f"{path}.done").touch()


def test_contexts_rows_carry_the_field_the_prompts_fill():
    row = contexts()[0]
    assert row[CONTEXT_FIELD] == row["text"]
    # What NeMo-Skills does with an input row: user.format(examples=..., **row).
    template = load_prompt("debate").user
    assert (
        template.format(examples="", **row)
        == load_prompt("debate").messages(row["text"])[0]["content"]
    )


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """Seven styles in every layout NeMo-Skills writes, imported and then filtered."""
    root = tmp_path_factory.mktemp("ns")
    rows = contexts()
    src = root / "generations"
    layouts = {}
    for i, style in enumerate(CONVERSATION_STYLES):
        out = [ns_output(r, style, good_conversation(d, 0, style)) for d, r in enumerate(rows)]
        if i == 0:  # chunked: two chunks, each with its .done
            write_jsonl(src / style / "output_chunk_0.jsonl", out[:2])
            write_jsonl(src / style / "output_chunk_1.jsonl", out[2:])
        elif i == 1:  # two random seeds: two samples
            second = [ns_output(r, style, good_conversation(d, 0, style, 1))
                      for d, r in enumerate(rows)]  # fmt: skip
            write_jsonl(src / style / "output-rs3.jsonl", out)
            write_jsonl(src / style / "output-rs7.jsonl", second)
        elif i == 2:  # a bare generate run: no .done, no -async left
            write_jsonl(src / style / "output.jsonl", out, done=False)
        elif i == 3:  # one row without its answer, one unparsable line: skipped, counted
            out[1] = ns_output(rows[1], style, None)
            write_jsonl(src / f"{style}.jsonl", out)
            with open(src / f"{style}.jsonl", "a") as f:
                f.write('{"generation": "torn\n')
        else:
            write_jsonl(src / f"{style}.jsonl", out)
        layouts[style] = out
    run = root / "run"
    result = run_stage(
        "import_nemo_skills",
        "+style=all",
        f"input={src}",
        "server.model=embedded",
        f"output_dir={run}",
    )
    filtered = root / "filtered"
    run_stage("filter", f"run_dir={run}", f"output_dir={filtered}", "progress=false")
    return run, filtered, result, layouts


def test_import_writes_a_complete_synthesize_run_folder(imported):
    run, _, result, _ = imported
    manifest = json.loads((run / "manifest.json").read_text())
    shard_manifest = json.loads((run / "manifests" / f"{SHARD}.json").read_text())
    assert manifest == shard_manifest and manifest["status"] == "complete"
    conversations = read_jsonl(run / "conversations" / f"{SHARD}.jsonl")
    expected = Counter({s: DOCS for s in CONVERSATION_STYLES})
    expected[CONVERSATION_STYLES[1]] += DOCS  # two seeds
    expected[CONVERSATION_STYLES[3]] -= 1  # the row without a generation
    assert Counter(c["conversational_style"] for c in conversations) == expected
    assert manifest["rows_skipped"] == {"missing_generation": 1, "malformed_json": 1}
    assert "missing_generation=1" in result.stdout
    # Fields mapped, not guessed; seeds became samples 0 and 1 in seed order.
    row = next(c for c in conversations if c["conversational_style"] == CONVERSATION_STYLES[1])
    assert row["completion_tokens"] == 150 and row["finish_reason"] == "stop"
    assert row["latency_s"] == 2.5 and row["model"] == "embedded"
    samples = {
        c["sample"]
        for c in conversations
        if c["conversational_style"] == row["conversational_style"]
    }
    assert samples == {0, 1}
    texts = {(c["document_id"], c["conversational_style"], c["sample"]): c["text"]
             for c in conversations}  # fmt: skip
    assert texts[("doc-001", CONVERSATION_STYLES[1], 1)] == good_conversation(
        1, 0, CONVERSATION_STYLES[1], 1
    )
    # Every context once, from the copied-through fields.
    context_rows = read_jsonl(run / "contexts" / f"{SHARD}.jsonl")
    assert sorted(r["document_id"] for r in context_rows) == [f"doc-{d:03d}" for d in range(DOCS)]
    assert all(r["text"] == r[CONTEXT_FIELD] == context_text(int(r["document_id"][4:]), 0)
               for r in context_rows)  # fmt: skip


def test_filter_takes_the_import_and_keeps_generation_texts_only(imported):
    _, filtered, _, layouts = imported
    manifest = json.loads((filtered / "manifest.json").read_text())
    assert manifest["conversations"]["input"] == 4 * 7 + 4 - 1
    kept = read_jsonl(filtered / "conversations" / f"{SHARD}.jsonl")
    generations = {r["generation"] for rows in layouts.values() for r in rows if "generation" in r}
    generations |= {good_conversation(d, 0, CONVERSATION_STYLES[1], 1) for d in range(DOCS)}
    raw_pages = {r["text"] for r in contexts()}
    assert kept and all(k["text"] in generations for k in kept)
    assert not any(k["text"] in raw_pages for k in kept)
    # The row without a generation is nowhere, not even as its raw text.
    missing = next(r for r in layouts[CONVERSATION_STYLES[3]] if "generation" not in r)
    everything = kept + read_jsonl(filtered / "rejects" / f"{SHARD}.jsonl")
    assert not any(
        r.get("document_id") == missing["document_id"]
        and r.get("conversational_style") == CONVERSATION_STYLES[3]
        for r in everything
    )
    assert read_parts(filtered / "variants" / "longest")


def test_unfinished_or_foreign_outputs_are_refused_in_one_line(tmp_path):
    rows = contexts()
    out = [ns_output(r, "debate", "A: x\n\nB: y") for r in rows]
    folder = tmp_path / "debate"
    write_jsonl(folder / "output.jsonl", out, done=False)
    (folder / "output.jsonl-async").write_text("")
    run = tmp_path / "run"
    args = ["+style=debate", f"input={folder}", "server.model=embedded", f"output_dir={run}"]
    result = run_stage("import_nemo_skills", *args, check=False)
    assert result.returncode == 2 and "unfinished" in result.stderr
    assert result.stderr.count("\n") == 1
    # The raw input (no generation field at all) is refused, never imported as conversations.
    (folder / "output.jsonl-async").unlink()
    write_jsonl(folder / "output.jsonl", rows, done=True)
    result = run_stage("import_nemo_skills", *args, check=False)
    assert result.returncode == 2 and "no row has its 'generation' field" in result.stderr
    assert not (run / "conversations" / f"{SHARD}.jsonl").exists() or not read_jsonl(
        run / "conversations" / f"{SHARD}.jsonl"
    )


def test_chunk_gaps_and_prefix_key(tmp_path):
    from mind_nemo.core.errors import UserError

    rows = contexts()
    write_jsonl(tmp_path / "a" / "output_chunk_0.jsonl", rows[:1])
    write_jsonl(tmp_path / "a" / "output_chunk_2.jsonl", rows[1:])
    with pytest.raises(UserError, match="chunk 1 of the output is missing"):
        find_outputs(tmp_path / "a", ["debate"])
    write_jsonl(tmp_path / "c" / "debate.jsonl", rows)  # one file per style, one style asked
    assert [o.path.name for o in find_outputs(tmp_path / "c", ["debate"])] == ["debate.jsonl"]
    # NeMo-Skills' start_assistant_response_key: the answer follows the prefix; stored once.
    out = [dict(ns_output(r, "debate", " Why?\n\nCon: Because."), prefix="Pro:") for r in rows]
    out[0]["generation"] = "Pro: Why?\n\nCon: Because."  # the model wrote it again
    write_jsonl(tmp_path / "b" / "output.jsonl", out)
    run = tmp_path / "run"
    run_stage("import_nemo_skills", "+style=debate", f"input={tmp_path / 'b'}",
              "server.model=embedded", f"output_dir={run}",
              "start_assistant_response_key=prefix")  # fmt: skip
    texts = [r["text"] for r in read_jsonl(run / "conversations" / f"{SHARD}.jsonl")]
    assert texts == ["Pro: Why?\n\nCon: Because."] * DOCS
    again = run_stage("import_nemo_skills", "+style=debate", f"input={tmp_path / 'b'}",
                      "server.model=embedded", f"output_dir={run}", check=False)  # fmt: skip
    assert again.returncode == 2 and "already holds conversations" in again.stderr
