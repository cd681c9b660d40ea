"""The released Nemotron-MIND naming read back: the one mapping table, the corpus reader taking
``Text`` as the text column, and the filter reading rows named ``Text``, ``Conversational
Style``, ``Document ID`` (from an export folder or a JSONL shard) as our fields."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mind_nemo.core.corpus import CorpusConfig, CorpusReader
from mind_nemo.core.errors import UserError
from mind_nemo.core.released import (
    RELEASED_CONTEXT_INDEX,
    RELEASED_STYLES,
    from_released,
    naming_of,
    our_style,
)
from mind_nemo.core.styles import CONVERSATION_STYLES
from mind_nemo.synthesize.config import ExportConfig, MergeConfig
from mind_nemo.synthesize.merge import merge_run
from tests.filter.helpers import (
    context_row,
    conversation_row,
    filter_run,
    good_conversation,
    make_run,
    read_jsonl,
)

#: The folder names of the release, as its download lays them out (the issue lists them).
RELEASE_FOLDERS = [
    "TWO_STUDENTS", "TEACHER_STUDENT", "TWO_PROFESSORS", "DEBATE", "PROBLEM_SOLVING",
    "LAYMAN_KNOWALL", "INTERVIEW",
]  # fmt: skip
STYLES = ["debate", "two_students"]


# ------------------------------------------------------------------------------ the table


def test_every_paper_style_maps_to_its_released_folder_and_back():
    assert [RELEASED_STYLES[s] for s in CONVERSATION_STYLES] == RELEASE_FOLDERS
    for style in CONVERSATION_STYLES:
        assert our_style(RELEASED_STYLES[style]) == style
    assert our_style("Two Students") == "two_students"
    assert our_style("poetry") == "poetry"  # unknown: kept, counted under its own name


def test_a_released_row_becomes_ours_and_other_rows_pass_unchanged():
    row = {"Text": "A: hi", "Conversational Style": "DEBATE", "Document ID": "d1", "url": "u"}
    assert from_released(row) == {
        "text": "A: hi",
        "conversational_style": "debate",
        "document_id": "d1",
        "context_index": RELEASED_CONTEXT_INDEX,
        "url": "u",
    }
    ours = {"text": "x", "conversational_style": "debate", "document_id": "d", "context_index": 3}
    assert from_released(ours) is ours
    assert naming_of({"text": "x", "Text": "y"}) == "both"
    assert naming_of({"content": "x"}) is None


# ------------------------------------------------------------------------------ the corpus


def released_parquet(path: Path, **extra: list) -> Path:
    columns = {"Text": ["first page", "second page"], "Document ID": ["a", "b"], **extra}
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)
    return path


def read(path: Path, **kw) -> list:
    return list(CorpusReader(CorpusConfig(path=str(path), **kw)))


def test_the_corpus_reads_the_released_text_column_by_default(tmp_path):
    path = released_parquet(tmp_path / "DEBATE" / "part.parquet")
    docs = read(path, id_field="Document ID")
    assert [(d.id, d.text) for d in docs] == [("a", "first page"), ("b", "second page")]
    assert "Text" not in docs[0].metadata and "Document ID" not in docs[0].metadata


def test_a_jsonl_row_with_text_or_the_released_text_is_read(tmp_path):
    path = tmp_path / "c.jsonl"
    rows = [{"Text": "released page"}, {"text": "our page"}, {"text": "ours wins", "Text": "no"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    docs = read(path)
    assert [d.text for d in docs] == ["released page", "our page", "ours wins"]
    assert docs[2].metadata == {"Text": "no"}


def test_exact_text_column_wins_over_the_released_one(tmp_path):
    path = released_parquet(tmp_path / "both.parquet", text=["mine 1", "mine 2"])
    assert [d.text for d in read(path)] == ["mine 1", "mine 2"]


def test_a_table_with_neither_naming_is_one_line_naming_its_columns(tmp_path):
    path = tmp_path / "other.parquet"
    pq.write_table(pa.table({"content": ["x"], "Document ID": ["a"]}), path)
    with pytest.raises(UserError) as err:
        read(path)
    message = str(err.value)
    assert "\n" not in message
    assert "no column 'text'" in message and "content, Document ID" in message
    assert "set corpus.text_field" in message


def test_a_configured_text_field_is_never_swapped_for_text(tmp_path):
    path = released_parquet(tmp_path / "r.parquet")
    with pytest.raises(UserError, match="no column 'content'"):
        read(path, text_field="content")


# ------------------------------------------------------------------------------ the filter


def synthesize_run(root: Path) -> Path:
    rows = [conversation_row(doc, 0, style) for doc in range(3) for style in STYLES]
    contexts = [context_row(doc, 0) for doc in range(3)]
    return make_run(root, [rows], [contexts], styles=STYLES)


def kept(out: Path) -> list[dict]:
    return [row for p in sorted((out / "conversations").glob("*.jsonl")) for row in read_jsonl(p)]


def test_the_filter_reads_a_nemotron_mind_export_as_our_fields(tmp_path):
    run = synthesize_run(tmp_path / "run")
    merge_run(MergeConfig(run_dir=str(run), export=ExportConfig(schema="nemotron_mind")))
    from_export = filter_run(run / "export", tmp_path / "out-export")
    from_run = filter_run(run, tmp_path / "out-run")
    assert from_export is not None and from_run is not None
    assert from_export["missing_context"] == 6 and from_run["missing_context"] == 0
    assert from_export["conversations"] == from_run["conversations"] == {
        "input": 6, "kept": 6, "rejected": 0,
    }  # fmt: skip
    assert sorted(from_export["by_style"]) == STYLES
    rows = kept(tmp_path / "out-export")
    ours = kept(tmp_path / "out-run")
    assert sorted((r["text"], r["conversational_style"], r["document_id"]) for r in rows) == sorted(
        (r["text"], r["conversational_style"], r["document_id"]) for r in ours
    )
    for row in rows:
        assert not {"Text", "Conversational Style", "Document ID"} & set(row)
        assert row["context_index"] == RELEASED_CONTEXT_INDEX


def test_released_rows_of_a_download_are_mapped_and_bad_files_are_counted(tmp_path):
    release = tmp_path / "release"
    good = good_conversation(0, 0, "debate")
    for name, columns in {
        "DEBATE/train-0.parquet": {"Text": [good], "Conversational Style": ["DEBATE"],
                                   "Document ID": ["doc-000"]},
        "DEBATE/train-1.parquet": {"content": [good], "style": ["DEBATE"]},
        "DEBATE/train-2.parquet": {"Text": [good], "text": [good],
                                   "Conversational Style": ["DEBATE"], "Document ID": ["x"]},
    }.items():  # fmt: skip
        (release / name).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(columns), release / name)
    manifest = filter_run(release, tmp_path / "out", "tokenizer=embedded")
    assert manifest is not None
    assert manifest["by_style"]["debate"]["kept"] == 1
    assert manifest["reasons"] == {"malformed_row": 2}
    rejects = [r for p in sorted((tmp_path / "out" / "rejects").glob("*.jsonl"))
               for r in read_jsonl(p)]  # fmt: skip
    problems = sorted(r["problem"] for r in rejects)
    assert problems[0].startswith("has fields of both namings")
    assert problems[1].startswith("has fields of neither naming (ours: text,")
    (row,) = kept(tmp_path / "out")
    assert (row["conversational_style"], row["document_id"]) == ("debate", "doc-000")


def test_a_jsonl_shard_in_the_released_naming_is_filtered_like_ours(tmp_path):
    rows = []
    for doc in range(2):
        row = conversation_row(doc, 0, "debate")
        rows.append({"Text": row.pop("text"), "Conversational Style": "DEBATE",
                     "Document ID": row.pop("document_id"), "context_index": 0})  # fmt: skip
    run = make_run(tmp_path / "run", [rows], [[context_row(d, 0) for d in range(2)]],
                   styles=["debate"])  # fmt: skip
    manifest = filter_run(run, tmp_path / "out")
    assert manifest is not None and manifest["by_style"]["debate"]["kept"] == 2
    assert manifest["missing_context"] == 0  # the mapped ids find their contexts
    assert sorted(r["document_id"] for r in kept(tmp_path / "out")) == ["doc-000", "doc-001"]


def test_a_folder_with_neither_shards_nor_export_files_is_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        UserError, match=r"not a synthesize run .* nor an export \(\*/\*\.parquet\)"
    ):
        filter_run(tmp_path / "empty", tmp_path / "out")


def test_an_unreadable_parquet_file_in_an_export_is_one_line(tmp_path):
    (tmp_path / "release" / "DEBATE").mkdir(parents=True)
    (tmp_path / "release" / "DEBATE" / "broken.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(UserError, match=r"cannot read .*broken\.parquet after 0 rows"):
        filter_run(tmp_path / "release", tmp_path / "out", "tokenizer=embedded")
