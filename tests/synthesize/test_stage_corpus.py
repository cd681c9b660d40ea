"""synthesize against the stub server on corpora that are empty, damaged or repeat their ids.

The corpus reader's own behaviour is tested in ``tests/core/test_corpus.py``; these check what
the stage makes of it: a loud exit (status 2, one line) instead of a quiet ``complete``, work
already read finished and committed before that exit, and unique conversation keys.
"""

from __future__ import annotations

import json
from pathlib import Path

import zstandard

from tests.helpers import read_rows, run_stage, write_corpus

SHARD = "shard-00000-of-00001"


def synth(stub, corpus, out, *extra):
    return run_stage(
        "synthesize",
        *stub.overrides(),
        "corpus=files",
        f"corpus.path={corpus}",
        "corpus.id_field=id",
        f"output_dir={out}",
        "+style=debate",
        "engine.backoff_initial_s=0.01",
        "engine.backoff_max_s=0.05",
        *extra,
        check=False,
        timeout=300,
    )


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def _truncated_zst(path: Path, n_docs: int) -> Path:
    """A ``.jsonl.zst`` of ``n_docs`` documents (ids ``bad-*``) cut in the middle."""
    plain = write_corpus(path.with_suffix(""), n_docs)
    data = plain.read_text().replace('"doc-', '"bad-').encode()
    plain.unlink()
    frame = zstandard.ZstdCompressor().compress(data)
    path.write_bytes(frame[: len(frame) // 2])
    return path


def test_a_corpus_without_contexts_exits_2_in_one_line(stub_server, tmp_path):
    corpus = tmp_path / "empty.jsonl"
    corpus.write_text('{"id": "a", "text": "   "}\n{"id": "b", "content": "wrong field"}\n')
    out = tmp_path / "run"
    result = synth(stub_server(), corpus, out)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = _error_lines(result.stderr)
    assert len(errors) == 1 and "the corpus gave no contexts" in errors[0]
    assert "2 bad rows" in errors[0] and "corpus.text_field" in errors[0]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "no_contexts"
    assert manifest["corpus_rows_skipped"] == {"empty_text": 1, "missing_text": 1}


def test_a_damaged_file_ends_the_run_after_the_good_files_are_done(stub_server, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_corpus(corpus / "a.jsonl", 6)
    bad = _truncated_zst(corpus / "b.jsonl.zst", 40)
    out = tmp_path / "run"
    stub = stub_server("--latency", "0.02,0.05")
    result = synth(stub, corpus, out, "engine.max_concurrent_requests=8")
    assert result.returncode == 2, result.stderr[-2000:]
    errors = _error_lines(result.stderr)
    assert len(errors) == 1 and f"cannot read {bad}" in errors[0] and "truncated" in errors[0]
    # Every context read before the damaged file got its conversation; none of it was used.
    contexts = read_rows(out / "contexts" / f"{SHARD}.jsonl")
    rows = read_rows(out / "conversations" / f"{SHARD}.jsonl")
    assert {c["document_id"] for c in contexts} == {f"doc-{i:05d}" for i in range(6)}
    assert {(r["document_id"], r["context_index"]) for r in rows} == {
        (c["document_id"], c["index"]) for c in contexts
    }
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "bad_corpus_file"
    # Leaving it out finishes the run without redoing anything.
    result = synth(stub, corpus, out, "corpus.on_bad_file=skip")
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["session"]["requests"] == 0
    assert list(manifest["corpus_files_skipped"]) == [str(bad)]


def test_repeated_ids_give_unique_keys(stub_server, tmp_path):
    corpus = write_corpus(tmp_path / "c.jsonl", 3)
    lines = corpus.read_text().splitlines()
    corpus.write_text("\n".join([*lines, lines[0], lines[0]]) + "\n")
    out = tmp_path / "run"
    result = synth(stub_server(), corpus, out)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = read_rows(out / "conversations" / f"{SHARD}.jsonl")
    keys = [(r["document_id"], r["context_index"], r["conversational_style"]) for r in rows]
    assert len(keys) == len(set(keys))
    assert {r["document_id"] for r in rows} == {
        "doc-00000",
        "doc-00001",
        "doc-00002",
        "doc-00000#2",
        "doc-00000#3",
    }
    assert json.loads((out / "manifest.json").read_text())["corpus_ids_renamed"] == 2
