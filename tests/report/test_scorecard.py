"""The quality scorecard: each measure on conversations whose right answer we know, the bounded
context sample, and the tables in report.md / report.html."""

from __future__ import annotations

import re

import pytest

from mind_nemo.evaluate.paper import PAPER_LONGEST_MEAN_TOKENS, PAPER_SINGLE_STYLE_MEAN_TOKENS
from mind_nemo.report.data import collect
from mind_nemo.report.render import ReportConfig, write_report
from mind_nemo.report.sample import (
    KEPT,
    SampledContext,
    SampledConversation,
    collect_sample,
    sample_contexts,
)
from mind_nemo.report.scorecard import LONGEST, score_sample, scorecard_rows
from tests.filter.helpers import LOOP, build_rich_run, filter_run

CONTEXT = (
    "On March 3, 2021 in Room 204 we showed that $3 + 4 = 7$ and that 12 divided by 4 is 3. "
    "The area of a 5 by 6 rectangle is 30 square units, which we check twice."
)
GOOD = (
    "Teacher: What is $3 + 4$? It is 7, as we showed.\n\n"
    "Student: And 12 divided by 4 gives 3.\n\n"
    "Teacher: A 5 by 6 rectangle has area 30.\n\n"
    "Student: So the numbers all agree."
)
INVENTS = "Alex: I think 3 + 4 is 8, and the area is 31.\n\nSam: No, it is 99 or so.\n\nAlex: Fine."


def tables(markdown: str) -> dict[str, list[dict[str, str]]]:
    """``##``/``###`` heading -> rows of the pipe table under it."""
    found = {}
    for section in re.split(r"^#{2,3} ", markdown, flags=re.M)[1:]:
        title, *lines = section.splitlines()
        rows = [[c.strip() for c in x.strip("|").split("|")] for x in lines if x.startswith("|")]
        if rows:
            found[title] = [dict(zip(rows[0], r, strict=True)) for r in rows[2:]]
    return found


def conv(style: str, text: str, tokens: int) -> SampledConversation:
    return SampledConversation(style, text, KEPT, None, tokens)


def test_number_recall_invented_numbers_turns_and_speakers():
    sample = [
        SampledContext(("d", 0), CONTEXT, [conv("teacher_student", GOOD, 100),
                                           conv("two_students", INVENTS, 40)]),
    ]  # fmt: skip
    scores = score_sample(sample)
    good, bad = scores["teacher_student"], scores["two_students"]
    # Mathematical numbers of the context: 3, 4, 7, 12, 5, 6, 30 (the date and room left out).
    assert good.number_recall == [1.0]
    assert bad.number_recall == [pytest.approx(2 / 7)]  # 3 and 4
    assert good.invented == [0]
    assert bad.invented == [3]  # 8, 31, 99
    assert (good.turns, good.speakers, bad.turns, bad.speakers) == ([4], [2], [3], [2])
    assert good.overlap[0] > bad.overlap[0] >= 0
    assert scores[LONGEST].tokens == [100]


def test_near_duplicates_across_styles_loops_and_distinct_n():
    copy = GOOD.replace("agree.", "agree!")  # another style, nearly the same words
    sample = [
        SampledContext(("d", 0), CONTEXT, [conv("debate", GOOD, 60), conv("interview", copy, 60),
                                           conv("two_students", INVENTS, 30)]),
        SampledContext(("d", 1), CONTEXT, [conv("debate", GOOD, 60),
                                           conv("layman_knowall", LOOP, 90)]),
    ]  # fmt: skip
    scores = score_sample(sample)
    # debate/interview of context 0 are near copies; the same debate text in context 1 is
    # another context, so it does not count.
    assert scores["debate"].near_duplicates == 1 and scores["interview"].near_duplicates == 1
    assert scores["two_students"].near_duplicates == 0
    assert scores["layman_knowall"].loops == 1 and scores["debate"].loops == 0
    assert scores["layman_knowall"].distinct(2) < 0.3 < scores["two_students"].distinct(2)
    assert scores[LONGEST].tokens == [60, 90]


@pytest.fixture(scope="module")
def filtered(tmp_path_factory):
    root = tmp_path_factory.mktemp("scorecard")
    run = build_rich_run(root / "run")
    filter_run(run, root / "out")
    return run, root / "out"


def test_sample_is_bounded_and_the_same_for_a_run_and_its_filtered_run(filtered):
    run, out = filtered
    everything = sample_contexts(run, 100)
    assert len(everything) == 5
    two = sample_contexts(run, 2)
    assert len(two) == 2 and set(two) <= set(everything)
    kept_and_rejected = collect_sample(collect(out), 2)
    generated = collect_sample(collect(run), 2)
    assert [c.key for c in kept_and_rejected] == [c.key for c in generated] == list(two)
    # a filtered run's sample holds its kept and rejected rows: as many as were generated
    assert sum(map(len, (c.conversations for c in kept_and_rejected))) == sum(
        map(len, (c.conversations for c in generated))
    )


def test_kept_share_and_reasons_are_exact_counts(filtered):
    _, out = filtered
    data = collect(out)
    length, _ = scorecard_rows(data, score_sample(collect_sample(data, 100)))
    rows = {r[0]: r for r in length}
    # build_rich_run: 4 teacher_student rows, 2 kept (one empty, one exact duplicate)
    assert rows["teacher_student"][8] == "2/4 (50%)"
    assert rows["teacher_student"][9] == "empty 1, duplicate_exact 1"
    assert rows["layman_knowall"][9] == "repeated_ngrams 1"


def test_report_shows_the_scorecard_beside_the_paper(filtered, tmp_path):
    _, out = filtered
    write_report(ReportConfig(run_dir=str(out), output_dir=str(tmp_path)))
    markdown = (tmp_path / "report.md").read_text()
    assert "## Quality scorecard" in markdown
    found = tables(markdown)["Quality scorecard: length and structure"]
    by_style = {r["style"]: r for r in found}
    low, high = PAPER_SINGLE_STYLE_MEAN_TOKENS
    assert by_style["debate"]["paper tokens"] == f"{low}–{high} (style means)"
    assert by_style[LONGEST]["paper tokens"] == f"{PAPER_LONGEST_MEAN_TOKENS} (mean)"
    page = (tmp_path / "report.html").read_text()
    for header in ("number recall", "invented numbers / conv.", "distinct-2",
                   "near-dup. across styles", "loops", "p95"):  # fmt: skip
        assert f"<th>{header}</th>" in page
    assert re.search(r"<td>layman_knowall</td>(<td>[^<]*</td>){6}<td>100%</td>", page)
