"""The filter stage end to end on a hand-made run whose every outcome is known: reasons per
style, rejects with reasons, garbage rows, dedup across shards, job-array steps, reruns and
user mistakes."""

from __future__ import annotations

import json
import os
from collections import Counter

import pytest

from mind_nemo.core.errors import UserError
from tests.filter.helpers import (
    PREAMBLE,
    build_rich_run,
    compose_filter,
    context_row,
    conversation_row,
    filter_run,
    good_conversation,
    make_run,
    read_jsonl,
    read_parts,
    write_shard_manifest,
)
from tests.helpers import REPO, run_stage

SHARD0, SHARD1 = "shard-00000-of-00002", "shard-00001-of-00002"


EXPECTED = {
    "teacher_student": (4, 2, {"empty": 1, "duplicate_exact": 1}),
    "debate": (4, 1, {"too_short": 1, "malformed_row": 1, "near_duplicate": 1}),
    "two_students": (2, 1, {"low_number_recall": 1}),
    "interview": (3, 1, {"truncated": 1, "meta_text": 1}),
    "two_professors": (1, 1, {}),
    "problem_solving": (1, 0, {"too_few_speakers": 1}),
    "layman_knowall": (1, 0, {"repeated_ngrams": 1}),
    "<unknown>": (1, 0, {"malformed_json": 1}),
}


@pytest.fixture(scope="module")
def rich(tmp_path_factory):
    root = tmp_path_factory.mktemp("rich")
    run = build_rich_run(root / "run")
    manifest = filter_run(run, root / "out")
    return run, root / "out", manifest


def test_every_row_lands_in_exactly_one_known_place(rich):
    _, _, manifest = rich
    got = {
        style: (t["input"], t["kept"], t["reasons"]) for style, t in manifest["by_style"].items()
    }
    assert got == EXPECTED
    for t in manifest["by_style"].values():
        assert t["input"] == t["kept"] + t["rejected"]
    assert manifest["conversations"] == {"input": 17, "kept": 6, "rejected": 11}
    assert manifest["malformed_rows"] == 2
    assert manifest["dedup"]["exact"] == 1 and manifest["dedup"]["near"] == 1
    assert manifest["by_style"]["two_professors"]["notes"] == {"stripped_preamble": 1}


def test_rejects_files_hold_each_rejected_row_with_its_reason(rich):
    _, out, manifest = rich
    rejects = read_jsonl(out / "rejects" / f"{SHARD0}.jsonl")
    rejects += read_jsonl(out / "rejects" / f"{SHARD1}.jsonl")
    assert Counter(r["reject_reason"] for r in rejects) == Counter(manifest["reasons"])
    by_reason = {r["reject_reason"]: r for r in rejects}
    assert by_reason["malformed_json"]["raw"] == '{"text": "torn line'
    assert "text" in by_reason["malformed_row"]["problem"]
    assert by_reason["duplicate_exact"]["duplicate_of"] == "doc-000#0/teacher_student/0"
    assert by_reason["near_duplicate"]["duplicate_of"] == "doc-000#0/debate/0"
    assert by_reason["duplicate_exact"]["document_id"] == "doc-003"


def test_kept_rows_carry_what_the_filters_learned(rich, embedded_tokenizer):
    _, out, _ = rich
    kept = read_jsonl(out / "conversations" / f"{SHARD0}.jsonl")
    kept += read_jsonl(out / "conversations" / f"{SHARD1}.jsonl")
    assert len(kept) == 6
    for row in kept:
        assert row["turns"] == 5 and len(row["speakers"]) == 2
        assert row["quality"]["number_recall"] == 1.0
    stripped = next(r for r in kept if r["conversational_style"] == "two_professors")
    assert stripped["text_original"].startswith(PREAMBLE)
    assert stripped["text"] == stripped["text_original"][len(PREAMBLE) :]
    assert stripped["filter_notes"] == ["stripped_preamble"]
    # recounted with the generator tokenizer, not the server's count of the old text
    expected = len(embedded_tokenizer.encode(stripped["text"], add_special_tokens=False))
    assert stripped["tokens"] == expected != stripped["completion_tokens"]
    untouched = next(r for r in kept if r["conversational_style"] == "interview")
    assert untouched["tokens"] == untouched["completion_tokens"] == 150
    assert "text_original" not in untouched


def test_variants_have_the_known_answers(rich):
    _, out, manifest = rich
    longest = read_parts(out / "variants" / "longest")
    assert [(r["document_id"], r["context_index"], r["conversational_style"]) for r in longest] == [
        ("doc-000", 0, "teacher_student"),  # tie at 120 tokens: paper order decides
        ("doc-000", 1, "two_students"),
        ("doc-001", 0, "two_professors"),
        ("doc-002", 0, "interview"),  # 150 > 120
    ]
    assert len(read_parts(out / "variants" / "all")) == 6
    concat = read_parts(out / "variants" / "concat")
    assert (concat[0]["document_id"], concat[0]["styles"]) == (
        "doc-000",
        ["teacher_student", "debate"],
    )
    assert concat[0]["tokens"] == 60 + 120 + 120
    assert len(concat) == 4  # doc-003 lost both conversations to dedup
    raw = read_parts(out / "variants" / "raw")
    assert len(raw) == 5 and all(r["tokens"] == 60 for r in raw)
    for name in ("longest", "all", "concat", "raw"):
        rows = read_parts(out / "variants" / name)
        assert manifest["variants"][name]["rows"] == len(rows)
        assert manifest["variants"][name]["tokens"] == sum(r["tokens"] for r in rows)


def test_job_array_steps_give_the_same_result_as_one_process(rich, tmp_path):
    run, single, manifest = rich
    out = tmp_path / "array"
    assert filter_run(run, out, "num_shards=2", "shard_id=1") is None  # step=auto -> shard
    with pytest.raises(UserError, match=r"pass 1 is not done for source shards \[0\]"):
        filter_run(run, out, "step=finalize")
    assert filter_run(run, out, "step=shard", "num_shards=2", "shard_id=0") is None
    array = filter_run(run, out, "step=finalize")
    assert array["by_style"] == manifest["by_style"]
    assert array["variants"] == manifest["variants"]
    for shard in (SHARD0, SHARD1):
        for folder in ("conversations", "rejects"):
            assert (out / folder / f"{shard}.jsonl").read_text() == (
                single / folder / f"{shard}.jsonl"
            ).read_text()
    assert not (out / "work").exists()


def test_rerun_skips_finished_work_and_other_settings_are_refused(rich, tmp_path):
    run, _, _ = rich
    out = tmp_path / "again"
    first = filter_run(run, out, "keep_work=true")
    marker = out / "manifests" / f"{SHARD0}.json"
    stamp = marker.stat().st_mtime_ns
    assert filter_run(run, out, "keep_work=true")["written"] == first["written"]
    assert marker.stat().st_mtime_ns == stamp
    with pytest.raises(UserError, match="other settings"):
        filter_run(run, out, "filter.length.min_tokens=10")
    # other variants only redo pass 2
    fewer = filter_run(run, out, "keep_work=true", "variants.names=[longest]")
    assert list(fewer["variants"]) == ["longest"] and fewer["written"] > first["written"]
    assert marker.stat().st_mtime_ns == stamp
    assert not (out / "variants" / "all").exists()
    redone = filter_run(run, out, "filter.length.min_tokens=10", "overwrite=true")
    assert redone["by_style"]["debate"]["reasons"].get("too_short") is None


def test_a_changed_source_shard_is_refiltered(tmp_path):
    run = make_run(tmp_path / "run", [[conversation_row(0, 0, "debate")]], [[context_row(0, 0)]])
    out = tmp_path / "out"
    assert filter_run(run, out)["conversations"]["kept"] == 1
    path = run / "conversations" / "shard-00000-of-00001.jsonl"
    with open(path, "a") as f:  # a resumed synthesize run appended a conversation
        f.write(json.dumps(conversation_row(0, 0, "interview")) + "\n")
    # While that run goes on, the shard's manifest still vouches for the old file: refused.
    with pytest.raises(UserError, match="changed after it completed"):
        filter_run(run, out)
    # The resumed run ends by rewriting its manifest; then the new row is filtered.
    manifest = json.loads((run / "manifests" / "shard-00000-of-00001.json").read_text())
    write_shard_manifest(run, "shard-00000-of-00001", manifest, "complete")
    assert filter_run(run, out)["conversations"]["kept"] == 2


def test_garbage_rows_are_counted_and_never_a_crash(tmp_path):
    good = conversation_row(0, 0, "debate")
    garbage = [
        "[1, 2, 3]",
        "not json at all",
        "\x00\x01",
        {**good, "completion_tokens": "many"},
        {**good, "context_index": "0"},
        {**good, "sample": True},
        {**good, "text": None},
        {k: v for k, v in good.items() if k != "conversational_style"},
        {k: v for k, v in good.items() if k != "document_id"},
    ]
    contexts = [context_row(0, 0), {"document_id": "doc-000", "index": "x"}, {"bad": 1}]
    run = make_run(tmp_path / "run", [[*garbage, good]], [contexts])
    manifest = filter_run(run, tmp_path / "out")
    assert manifest["conversations"] == {"input": 10, "kept": 1, "rejected": 9}
    assert manifest["by_style"]["<unknown>"]["reasons"] == {
        "malformed_json": 3,
        "malformed_row": 1,
    }
    assert manifest["by_style"]["debate"]["reasons"] == {"malformed_row": 5}
    assert manifest["malformed_rows"] == 9
    (marker,) = (tmp_path / "out" / "manifests").glob("*.json")
    assert json.loads(marker.read_text())["contexts_malformed"] == 2
    from mind_nemo.report.render import ReportConfig, write_report

    assert write_report(ReportConfig(run_dir=str(tmp_path / "out")))["all_match"]


def test_normalised_labels_keep_the_original(tmp_path):
    text = good_conversation(0, 0, "teacher_student").replace("Teacher:", "**Teacher:**")
    text = text.replace("Student:", "**Student:**")
    run = make_run(
        tmp_path / "run",
        [[conversation_row(0, 0, "teacher_student", text=text)]],
        [[context_row(0, 0)]],
    )
    manifest = filter_run(run, tmp_path / "out", "filter.structure.normalize_speakers=true")
    (row,) = read_jsonl(tmp_path / "out" / "conversations" / "shard-00000-of-00001.jsonl")
    assert row["text_original"] == text
    assert row["text"] == good_conversation(0, 0, "teacher_student")
    assert manifest["by_style"]["teacher_student"]["notes"] == {"normalized_speakers": 1}


def test_paper_filter_applies_only_the_50_token_rule(rich, tmp_path):
    run, _, _ = rich
    manifest = filter_run(run, tmp_path / "paper", "filter=paper")
    reasons = Counter(manifest["reasons"])
    assert set(reasons) == {"too_short", "empty", "malformed_json", "malformed_row"}
    assert reasons["too_short"] == 1


def test_incomplete_source_run_is_refused_unless_allowed(tmp_path):
    run = make_run(
        tmp_path / "run",
        [[conversation_row(0, 0, "debate")]],
        [[context_row(0, 0)]],
        status="incomplete",
    )
    with pytest.raises(UserError, match="is not finished"):
        filter_run(run, tmp_path / "out")
    assert filter_run(run, tmp_path / "out", "allow_incomplete=true")["conversations"]["kept"] == 1


@pytest.mark.parametrize(
    ("make", "overrides", "expected"),
    [
        (None, [], "run folder not found"),
        ("run", ["filter.degeneration.max_repeated_ngram_ratio=1.5"], "must be between 0 and 1"),
        ("run", ["filter.length.min_tokens=many"], "min_tokens"),
    ],
)
def test_user_mistakes_are_one_line_and_exit_2(tmp_path, make, overrides, expected):
    run = tmp_path / "run"
    if make == "run":
        make_run(run, [[conversation_row(0, 0, "debate")]], [[context_row(0, 0)]])
    result = run_stage("filter", f"run_dir={run}", *overrides, check=False, timeout=120)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert expected in lines[0]
    assert not (tmp_path / "run-filtered").exists()  # nothing written on a mistake


@pytest.mark.parametrize(
    ("make", "overrides", "expected"),
    [
        ("empty", [], "is not a synthesize run"),
        ("run", ["variants.names=[longest,best]"], "unknown variant 'best'"),
        ("run", ["step=later"], "step='later'"),
        ("run", ["filter.dedup.threshold=0"], "filter.dedup.threshold=0.0: must be in (0, 1]"),
        ("run", ["judge.min_score=7"], "judge.min_score=7: must be between 1 and 5"),
        ("run", ["step=shard", "overwrite=true"], "only safe with step=all"),
        ("run", ["num_shards=2", "step=all"], "in a job array use step=shard"),
        ("run", ["output_dir=RUN/inside"], "must not be inside the source run"),
    ],
)
def test_more_mistakes_raise_one_line_user_errors(tmp_path, make, overrides, expected):
    run = tmp_path / "run"
    run.mkdir()
    if make == "run":
        make_run(run, [[conversation_row(0, 0, "debate")]], [[context_row(0, 0)]])
    overrides = [o.replace("RUN", str(run)) for o in overrides]
    with pytest.raises(UserError) as caught:
        filter_run(run, tmp_path / "out", *overrides)
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def test_every_filter_config_instantiates(tmp_path):
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    import mind_nemo.report.config  # noqa: F401  (registers report_schema)
    from mind_nemo.filter.config import FilterStageConfig

    for group in sorted(p.stem for p in (REPO / "hydra_configs" / "filter").glob("*.yaml")):
        cfg = OmegaConf.to_object(compose_filter(tmp_path, tmp_path / "o", f"filter={group}"))
        assert isinstance(cfg, FilterStageConfig)  # built means checked
    default = OmegaConf.to_object(compose_filter(tmp_path / "r", tmp_path / "o"))
    assert default.filter.length.min_tokens == 50  # the paper's rule
    assert default.judge.enabled is False  # the paper found self-judging too lenient
    GlobalHydra.instance().clear()
    with initialize_config_module("mind_nemo.hydra_configs", version_base="1.3"):
        raw = compose(config_name="filter", overrides=[f"run_dir={tmp_path}/x/"])
        assert raw.output_dir == f"{tmp_path}/x-filtered"
        assert compose(config_name="report", overrides=["run_dir=r"]).max_points > 0


def test_cli_runs_and_prints_the_summary(tmp_path):
    run = make_run(tmp_path / "run", [[conversation_row(0, 0, "debate")]], [[context_row(0, 0)]])
    result = run_stage("filter", f"run_dir={run}", "progress=false", timeout=120)
    assert "kept 1 of 1 conversations" in result.stdout
    manifest = json.loads((tmp_path / "run-filtered" / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert os.path.samefile(manifest["source_run"], run)
