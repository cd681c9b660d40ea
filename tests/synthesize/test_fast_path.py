"""The lean synthesize path: tokenizer without transformers, vectorised ranking, the planning
thread and the resume skip of finished documents.

Each fast piece is checked against the slow one it replaces (transformers' tokenizer and chat
template, the streaming per-token ranking loop, per-document splitting, planning in the loop),
on the packaged sample corpus and on synthetic texts with the awkward cases.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
from typing import Any

import pytest

from mind_nemo.core.records import Document
from mind_nemo.core.tokenizer import FastTokenizer, as_fast, load_fast_tokenizer
from mind_nemo.synthesize import boundary_ranks, chunking
from mind_nemo.synthesize.chunking import Chunker
from mind_nemo.synthesize.config import ChunkConfig
from mind_nemo.synthesize.plan import Planner, PlanUnit
from mind_nemo.synthesize.prefetch import Prefetcher
from mind_nemo.synthesize.styles import load_prompt
from tests.helpers import REPO, read_rows, run_stage, write_corpus

SAMPLE = REPO / "mind_nemo" / "data" / "sample_owm.jsonl"
SHARD = "shard-00000-of-00001"


def _sample_texts() -> list[str]:
    return [json.loads(line)["text"] for line in SAMPLE.read_text().splitlines() if line.strip()]


def _awkward_texts() -> list[str]:
    rng = random.Random(7)
    pieces = [
        "Let $x$ be real.", "He said: \"Stop.\"", "(See [1].)", "$$\\int_0^1 x\\,dx$$",
        "\\begin{align} a &= b \\\\ c &= d \\end{align}", "\u00a0", "\u3000", "\r\n", "\n\n",
        "\t", "caf\u00e9", "\U0001f600 emoji", "x" * 40, "$$ unmatched", "**bold.**", "  ",
    ]  # fmt: skip
    return ["".join(rng.choice(pieces) + rng.choice(" \n") for _ in range(400)) for _ in range(8)]


@pytest.fixture(scope="module")
def fast() -> FastTokenizer:
    return load_fast_tokenizer("embedded")


def test_fast_tokenizer_gives_transformers_tokens_and_offsets(fast, embedded_tokenizer):
    for text in [*_sample_texts(), *_awkward_texts()]:
        ours = fast.encode(text)
        theirs = embedded_tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        assert ours.ids == theirs["input_ids"]
        assert [tuple(o) for o in ours.offsets] == [tuple(o) for o in theirs["offset_mapping"]]


@pytest.mark.parametrize("style", ["two_students", "debate"])
def test_chat_template_renders_like_transformers(fast, embedded_tokenizer, style):
    messages = load_prompt(style).messages(_sample_texts()[0][:2000])
    for flags in ({"add_generation_prompt": True}, {"add_generation_prompt": False}):
        for tokenize in (False, True):
            ours = fast.apply_chat_template(messages, tokenize=tokenize, **flags)
            theirs = embedded_tokenizer.apply_chat_template(messages, tokenize=tokenize, **flags)
            if tokenize and not isinstance(theirs, list):
                theirs = theirs["input_ids"]
            assert ours == theirs
    prefixed = [*messages, {"role": "assistant", "content": "Student A:"}]
    ours = fast.apply_chat_template(prefixed, tokenize=False, continue_final_message=True)
    theirs = embedded_tokenizer.apply_chat_template(
        prefixed, tokenize=False, continue_final_message=True
    )
    assert ours == theirs and str(ours).endswith("Student A:")


def _same_tokenisation(quick: chunking._Tokenised, slow: chunking._Tokenised) -> None:
    assert quick.num_tokens == slow.num_tokens
    assert list(quick.char_pos) == list(slow.char_pos)
    assert list(quick.ranks) == list(slow.ranks)
    assert [list(r) for r in quick.by_rank] == [list(r) for r in slow.by_rank]


def _edge_texts() -> list[str]:
    """Texts whose ranks depend on what is at their very ends: whitespace or a sentence end
    that, in a batch ranked as one string, would touch the next or the previous text."""
    return [
        "  \n\nStarts with a blank line.", "Ends with a full stop.", "\n\n  starts blank again",
        "ends in space  ", "  \r\n", "$$ a = b", "$$ closes the one before? no.", "\u00e9" * 3,
        "Quote: \"yes.\"", " x", "math $$x$$ then prose.\n\nNew paragraph.", "end.\n",
    ]  # fmt: skip


def test_vectorised_ranks_match_the_streaming_loop(fast):
    texts = [*_sample_texts(), *_awkward_texts(), *_edge_texts()]
    for text in texts:  # each alone
        [quick] = boundary_ranks.tokenise_encoded([text], [fast.encode(text).offsets])
        _same_tokenisation(quick, chunking._tokenise(text, fast))
    # Ranked as one batch, in two orders: no text's ranks depend on its neighbours.
    for order in (texts, texts[::-1]):
        batch = boundary_ranks.tokenise_encoded(order, [fast.encode(t).offsets for t in order])
        for text, quick in zip(order, batch, strict=True):
            _same_tokenisation(quick, chunking._tokenise(text, fast))


def test_vectorised_ranks_of_a_text_without_tokens_and_overlapping_offsets():
    """Offsets a byte-level tokenizer gives for one character split over two tokens (they
    overlap), and a text the tokenizer gives no tokens for, among others in one batch."""
    texts = ["ab cd", "", "\U0001f600 x", "ok."]
    offsets = [[(0, 2), (2, 5)], [], [(0, 1), (0, 1), (1, 3)], [(0, 2), (2, 3)]]
    batch = boundary_ranks.tokenise_encoded(texts, offsets)
    assert batch[1] == chunking._no_tokens(0)
    emoji = batch[2]
    assert list(emoji.char_pos) == [0, 0, 1, 3]
    assert emoji.ranks[1] == chunking.RANK_UNCLEAN  # inside the split character
    assert emoji.ranks[2] == chunking.RANK_SPACE
    assert list(batch[0].char_pos) == [0, 2, 5] and list(batch[3].char_pos) == [0, 2, 3]
    assert batch[0].ranks[1] == chunking.RANK_SPACE and batch[3].ranks[1] == chunking.RANK_TOKEN


def test_batch_split_equals_one_by_one_and_fits_skip_ranking(fast, monkeypatch):
    cfg = ChunkConfig(context_tokens=120, min_tokens=20)
    docs = [Document(f"d{i}", t) for i, t in enumerate([*_sample_texts(), *_awkward_texts()])]
    docs += [Document(f"e{i}", t) for i, t in enumerate(_edge_texts())]
    docs.append(Document("blank", " \n "))
    chunker = Chunker(fast, cfg)
    batch = chunker.split_batch(docs)
    assert batch == [chunking.split_into_contexts(d, fast, cfg) for d in docs]
    assert batch[-1] == []
    # A document that fits in one context is not ranked at all.
    monkeypatch.setattr(boundary_ranks, "tokenise_encoded", None)
    short = Document("short", "One short line. Another one.")
    [context] = chunker(short)
    assert (context.text, context.char_start, context.char_end) == (short.text, 0, len(short.text))
    assert context.num_tokens == len(fast.encode(short.text))


def test_offsets_are_read_with_the_collector_off_and_its_state_restored(fast, monkeypatch):
    """A batch's offsets are a tuple per token: read with the cyclic collector off (it would
    run a collection per 700 tuples), then the collector is as it was, even after an error."""
    import gc

    real = boundary_ranks.tokenise_encoded
    seen: list[bool] = []

    def watching(texts, offsets):
        seen.append(gc.isenabled())
        return real(texts, offsets)

    monkeypatch.setattr(boundary_ranks, "tokenise_encoded", watching)
    chunker = Chunker(fast, ChunkConfig(context_tokens=60, min_tokens=10))
    docs = [Document(f"d{i}", t) for i, t in enumerate(_sample_texts()[:3])]
    assert gc.isenabled()
    chunker.split_batch(docs)
    assert seen == [False] and gc.isenabled()
    gc.disable()
    try:
        chunker.split_batch(docs)
        assert not gc.isenabled()  # a caller's own choice is kept
    finally:
        gc.enable()

    def failing(texts, offsets):
        raise RuntimeError("ranking failed")

    monkeypatch.setattr(boundary_ranks, "tokenise_encoded", failing)
    with pytest.raises(RuntimeError, match="ranking failed"):
        chunker.split_batch(docs)
    assert gc.isenabled()


def test_library_thread_pools_default_off_but_a_users_setting_stands(monkeypatch):
    from mind_nemo.synthesize import stage

    monkeypatch.delenv("TOKENIZERS_PARALLELISM", raising=False)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "4")
    stage.set_thread_defaults()
    assert os.environ["TOKENIZERS_PARALLELISM"] == "false"
    assert os.environ["OPENBLAS_NUM_THREADS"] == "4"
    monkeypatch.delenv("OPENBLAS_NUM_THREADS")
    stage.set_thread_defaults()
    assert os.environ["OPENBLAS_NUM_THREADS"] == "1"


def test_numpy_is_not_loaded_before_the_stage_sets_its_thread_defaults():
    """OpenBLAS reads its thread count once, when numpy loads: importing the stage's entry
    point (everything before ``main`` runs) must not load numpy."""
    code = "import sys, mind_nemo.synthesize.__main__; print('numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_transformers_tokenizer_is_unwrapped_to_its_backend(embedded_tokenizer):
    wrapped = as_fast(embedded_tokenizer)
    assert wrapped.backend is embedded_tokenizer.backend_tokenizer
    assert as_fast(wrapped) is wrapped


# -- planner: resume skip ----------------------------------------------------------------------


def _planner(split_calls: list[list[str]], fast: FastTokenizer, **kwargs: Any) -> Planner:
    chunker = Chunker(fast, ChunkConfig(context_tokens=100, min_tokens=10))

    def split(docs):
        split_calls.append([d.id for d in docs])
        return chunker.split_batch(docs)

    return Planner(
        prompts=[load_prompt("debate"), load_prompt("interview")],
        split=split,
        render=lambda messages: messages,
        budget=lambda prompt, context: 64,
        split_fingerprint="fp",
        **kwargs,
    )


def _docs() -> list[Document]:
    return [Document(f"doc{i}", t) for i, t in enumerate(_sample_texts()[:6])]


def test_finished_documents_are_skipped_before_tokenising(fast):
    docs = _docs()
    calls: list[list[str]] = []
    first = list(_planner(calls, fast).units(docs))
    notes = {u.note.document_id: u.note for u in first if u.note}
    keys = {i.key for u in first for i in u.items}
    assert set(notes) == {d.id for d in docs}
    # Everything is committed but the first context of doc2.
    done = keys - {k for k in keys if k[0] == docs[2].id and k[1] == 0}

    def noted(document_id: str) -> tuple[str, str, int] | None:
        note = notes[document_id]
        if document_id == docs[3].id:  # its text changed since: the note is stale
            return ("stale", "fp", note.contexts)
        return (note.text_hash, "fp", note.contexts)

    calls.clear()
    planner = _planner(calls, fast, skip=done.__contains__, noted=noted)
    units = list(planner.units(docs))
    split_ids = [i for call in calls for i in call]
    assert split_ids == [docs[2].id, docs[3].id]  # the rest never reached the tokenizer
    assert planner.documents_skipped == 4 and planner.documents_seen == 6
    assert planner.contexts_seen == sum(n.contexts for n in notes.values())
    todo = [i.key for u in units for i in u.items]
    assert sorted(todo) == sorted(keys - done) and len(todo) == 2  # two styles of one context


def test_skip_counts_toward_the_limit_like_the_slow_path(fast):
    docs = _docs()
    calls: list[list[str]] = []
    first = list(_planner(calls, fast).units(docs))
    notes = {u.note.document_id: u.note for u in first if u.note}
    keys = {i.key for u in first for i in u.items}
    for limit in (1, notes[docs[0].id].contexts, notes[docs[0].id].contexts + 1, 7):
        slow = _planner([], fast, skip=keys.__contains__, limit=limit)
        list(slow.units(docs))
        quick = _planner(
            [],
            fast,
            skip=keys.__contains__,
            limit=limit,
            noted=lambda d: (notes[d].text_hash, "fp", notes[d].contexts),
        )
        assert list(quick.units(docs)) == []
        assert (quick.contexts_seen, quick.documents_seen) == (
            slow.contexts_seen,
            slow.documents_seen,
        )


def test_other_split_fingerprint_means_tokenise_again(fast):
    docs = _docs()[:2]
    calls: list[list[str]] = []
    first = list(_planner(calls, fast).units(docs))
    notes = {u.note.document_id: u.note for u in first if u.note}
    keys = {i.key for u in first for i in u.items}
    calls.clear()
    planner = _planner(
        calls, fast, skip=keys.__contains__,
        noted=lambda d: (notes[d].text_hash, "other-tokenizer", notes[d].contexts),
    )  # fmt: skip
    assert [u for u in planner.units(docs) if u.items] == []
    assert [i for c in calls for i in c] == [d.id for d in docs]


def test_split_fingerprint_names_the_tokenizer_file_and_the_settings(fast, tmp_path):
    """Loaded from a folder, the tokenizer's digest is its file's (no re-serialising); the
    fingerprint changes with the file and with the chunking settings, not between loads."""
    import hashlib
    import shutil

    from mind_nemo.core.tokenizer import TOKENIZER_FILE, load_from_folder
    from mind_nemo.servers.embedded_model import embedded_tokenizer_folder

    folder = embedded_tokenizer_folder()
    data = (folder / TOKENIZER_FILE).read_bytes()
    assert fast.definition_digest == hashlib.sha1(data).hexdigest()
    cfg = ChunkConfig()
    fingerprint = chunking.split_fingerprint(fast, cfg)
    assert chunking.split_fingerprint(load_fast_tokenizer("embedded"), cfg) == fingerprint
    assert chunking.split_fingerprint(fast, ChunkConfig(context_tokens=400)) != fingerprint
    other = tmp_path / "other"
    shutil.copytree(folder, other)
    definition = json.loads(data)
    definition["model"]["vocab"]["zzzz-new-token"] = len(definition["model"]["vocab"])
    (other / TOKENIZER_FILE).write_text(json.dumps(definition))
    assert chunking.split_fingerprint(load_from_folder(other), cfg) != fingerprint
    # In memory only (no file): the digest of the serialised definition.
    bare = FastTokenizer(fast.backend)
    want = hashlib.sha1(fast.backend.to_str().encode("utf-8")).hexdigest()
    assert bare.definition_digest == want


# -- the planning thread -----------------------------------------------------------------------


def _units(n: int, produced: list[int]) -> Any:
    from mind_nemo.core.records import Context
    from mind_nemo.synthesize.plan import WorkItem

    for i in range(n):
        produced.append(i)
        context = Context(f"d{i}", 0, "t", 0, 1, 0, 1)
        yield PlanUnit(
            context=context,
            items=[WorkItem(context, s, 0, "p", "h", 8) for s in ("a", "b")],
        )


def test_prefetcher_keeps_order_stays_bounded_and_records_first():
    produced: list[int] = []
    seen_units: list[str] = []
    taken: list[tuple[str, str]] = []

    async def consume() -> None:
        def record(chunk: list[PlanUnit]) -> None:
            seen_units.extend(unit.context.document_id for unit in chunk)

        prefetcher = Prefetcher(_units(2000, produced), record, chunks_ahead=2)
        prefetcher.start()
        await asyncio.sleep(0.2)  # the producer runs ahead, but only so far
        assert len(produced) <= 3 * 16 + 1
        while (item := await prefetcher.next_item()) is not None:
            assert item.context.document_id in seen_units  # recorded before it is handed out
            taken.append(item.key[0::2])
        prefetcher.stop()

    asyncio.run(consume())
    assert taken == [(f"d{i}", s) for i in range(2000) for s in ("a", "b")]


def test_prefetcher_records_each_chunk_in_its_thread_before_the_loop_can_take_it():
    """``record`` (the stage's writes of notes and contexts) runs in the producer thread, once
    per chunk and in plan order, and a chunk's items are handed out only after it ran."""
    import threading

    recorded_in: set[str] = set()
    recorded: list[str] = []
    taken: list[str] = []

    def record(chunk: list[PlanUnit]) -> None:
        recorded_in.add(threading.current_thread().name)
        recorded.extend(unit.context.document_id for unit in chunk)

    async def consume() -> None:
        prefetcher = Prefetcher(_units(500, []), record, chunks_ahead=2)
        prefetcher.start()
        while (item := await prefetcher.next_item()) is not None:
            assert item.context.document_id in recorded
            taken.append(item.context.document_id)
        prefetcher.stop()

    asyncio.run(consume())
    assert recorded_in == {"plan-producer"}
    assert recorded == [f"d{i}" for i in range(500)]
    assert taken == [f"d{i}" for i in range(500) for _ in ("a", "b")]


def test_prefetcher_raises_producer_errors_in_the_loop_and_stops():
    def failing() -> Any:
        yield from _units(5, [])
        raise ValueError("bad tokenizer")

    async def consume() -> None:
        prefetcher = Prefetcher(failing(), lambda u: None)
        prefetcher.start()
        with pytest.raises(ValueError, match="bad tokenizer"):
            while await prefetcher.next_item() is not None:
                pass
        prefetcher.stop()

    asyncio.run(consume())

    async def stop_early() -> None:
        prefetcher = Prefetcher(_units(10**6, []), lambda u: None, chunks_ahead=1)
        prefetcher.start()
        await prefetcher.next_item()
        prefetcher.stop()
        assert prefetcher._thread is not None and not prefetcher._thread.is_alive()

    asyncio.run(stop_early())


# -- the stage ---------------------------------------------------------------------------------


def test_rerun_of_a_finished_run_skips_documents_untokenised(stub_server, tmp_path):
    stub = stub_server()
    corpus = write_corpus(tmp_path / "c.jsonl", 12)
    out = tmp_path / "run"
    args = [*stub.overrides(), "corpus=files", f"corpus.path={corpus}", "corpus.id_field=id",
            f"output_dir={out}", "+style=debate", "progress=false"]  # fmt: skip
    run_stage("synthesize", *args)
    first = json.loads((out / "manifest.json").read_text())
    notes = read_rows(out / "documents" / f"{SHARD}.jsonl")
    assert len(notes) == 12 and sum(n["contexts"] for n in notes) == first["contexts"]
    run_stage("synthesize", *args)
    again = json.loads((out / "manifest.json").read_text())
    assert again["session"]["requests"] == 0
    assert again["documents_skipped_done"] == 12
    assert again["contexts_planned"] == first["contexts_planned"]
    assert len(read_rows(out / "documents" / f"{SHARD}.jsonl")) == 12  # nothing noted twice
    assert again["conversations"] == first["conversations"]


def test_synthesize_process_imports_neither_torch_nor_transformers(stub_server, tmp_path):
    """Nor an HTTP library (our transport is our own), nor numpy when every document fits in
    one context (ranking boundaries is the only use of numpy)."""
    stub = stub_server()
    corpus = write_corpus(tmp_path / "c.jsonl", 2)
    cmd = [sys.executable, "-X", "importtime", "-m", "mind_nemo.synthesize", *stub.overrides(),
           "corpus=files", f"corpus.path={corpus}", "corpus.id_field=id",
           f"output_dir={tmp_path / 'run'}", "+style=debate", "progress=false",
           "limit=2"]  # fmt: skip
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    imported = {
        line.split("|")[-1].strip().split(".")[0]
        for line in result.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "tokenizers" in imported  # the check sees real imports
    assert not imported & {"torch", "transformers", "aiohttp", "httpx", "numpy"}
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["contexts"] == 2  # each document fitted in one context


def test_batch_encode_spread_over_threads_gives_the_contexts_of_one_thread():
    """The planner's encode may be split over threads while requests wait for the plan; the
    contexts must be exactly those of one thread, whatever the split."""
    import threading

    tokenizer = load_fast_tokenizer("embedded")
    texts = _sample_texts()
    documents = [Document(f"cut{i}", t[: 300 * (i + 1)]) for i, t in enumerate(texts)]
    documents += [Document("tiny", "x"), Document("blank", "   ")]
    documents += [Document(f"d{i}", t) for i, t in enumerate(texts)]
    cfg = ChunkConfig(context_tokens=128, overlap_tokens=16)
    one = Chunker(tokenizer, cfg).split_batch(documents)
    seen: set[str] = set()
    encode = tokenizer.encode_batch

    def spy(texts: list[str]) -> Any:
        seen.add(threading.current_thread().name)
        return encode(texts)

    tokenizer.encode_batch = spy  # type: ignore[method-assign]
    for threads in (2, 3, 64):
        assert Chunker(tokenizer, cfg, threads=lambda n=threads: n).split_batch(documents) == one
    assert len(seen) >= 3  # the planner thread and pool threads encoded
