"""Speaker parsing on every format models produce, the section words it must not mistake for
speakers, the structure thresholds, and label normalisation (original kept)."""

from __future__ import annotations

import pytest

from mind_nemo.filter.config import StructureConfig
from mind_nemo.filter.rules.base import Item
from mind_nemo.filter.rules.speakers import parse_dialogue
from mind_nemo.filter.rules.structure import NormalizeSpeakers, StructureFilter

FORMATS = {
    "name_colon": (
        "Teacher: What is 2 + 2?\nStudent: It is 4.\nTeacher: Why?\nStudent: Two twos.",
        ["Teacher", "Student"],
    ),
    "bold_inside": (
        "**Teacher:** What is 2 + 2?\n\n**Student:** 4.\n\n**Teacher:** Why?\n\n**Student:** Sums.",
        ["Teacher", "Student"],
    ),
    "bold_outside": (
        "**Teacher**: What?\n**Student**: 4.\n**Teacher**: Why?\n**Student**: Because.",
        ["Teacher", "Student"],
    ),
    "numbered": (
        "Student 1: Is 7 prime?\nStudent 2: Yes.\nStudent 1: And 9?\nStudent 2: No, 3 x 3.",
        ["Student 1", "Student 2"],
    ),
    "q_and_a": ("Q: What is x?\nA: 3.\nQ: And y?\nA: 4.", ["Q", "A"]),
    "headings": (
        "### Teacher\nWhat is a prime?\n\n### Student\nA number with two divisors.\n\n"
        "### Teacher\nGood.\n\n### Student\nThanks.",
        ["Teacher", "Student"],
    ),
    "bold_line_headers": (
        "**Interviewer**\nWhy fractions?\n\n**Expert**\nThey are parts.\n\n"
        "**Interviewer**\nAnd then?\n\n**Expert**\nWe add them.",
        ["Interviewer", "Expert"],
    ),
    "me_and_layman": (
        "Me: Why do we flip the fraction?\nLayman: I never knew.\nMe: Division undoes it.\n"
        "Layman: Oh, I see.",
        ["Me", "Layman"],
    ),
    "know_all_and_titles": (
        "Layman: What is pi?\nKnow-all: A ratio.\nDr. Lee: Of what?\nKnow-all: Circumference "
        "to diameter.\nDr. Lee: Thanks.\nLayman: Neat.",
        ["Layman", "Know-all", "Dr. Lee"],
    ),
    "decorated": (
        "Teacher (smiling): Ready?\n- Student: Yes.\n> Teacher: Then go.\n[Student]: Done.",
        ["Teacher", "Student"],
    ),
    "underscores": ("__Pro__: A.\n__Con__: B.\n__Pro__: C.\n__Con__: D.", ["Pro", "Con"]),
}


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_each_speaker_format_parses_into_turns(name):
    text, speakers = FORMATS[name]
    dialogue = parse_dialogue(text)
    assert dialogue.speakers == speakers
    assert len(dialogue.spoken) >= 4
    assert dialogue.preamble == ""
    # and the structure filter lets it through
    item = Item(text, "teacher_student")
    assert StructureFilter(StructureConfig(min_turns=4))(item).keep


def test_section_words_are_not_speakers():
    text = "Step 1: add.\nStep 2: multiply.\nExample: 3 x 4.\nNote: check.\nSolution: 12."
    dialogue = parse_dialogue(text)
    assert dialogue.speakers == []
    assert dialogue.preamble == text
    verdict = StructureFilter(StructureConfig())(Item(text, "problem_solving"))
    assert verdict.reason == "too_few_speakers"


def test_inline_labels_mid_turn_do_not_start_turns():
    text = (
        "Teacher: Recall the rule.\nThe answer is: 5, and Step 1: holds.\n"
        "Student: Ok.\nTeacher: Next.\nStudent: Done."
    )
    dialogue = parse_dialogue(text)
    assert dialogue.speakers == ["Teacher", "Student"]
    assert "The answer is: 5" in dialogue.spoken[0].text


def test_a_label_seen_once_continues_the_turn_when_two_speakers_repeat():
    text = "Alex: one\nSam: two\nFormula: a+b\nAlex: three\nSam: four"
    dialogue = parse_dialogue(text)
    assert dialogue.speakers == ["Alex", "Sam"]
    assert "Formula: a+b" in dialogue.spoken[1].text


def test_monologue_and_empty_speakers_fail():
    structure = StructureFilter(StructureConfig())
    monologue = "Interviewer: hello.\n\nInterviewer: again.\n\nInterviewer: and again."
    assert structure(Item(monologue, "interview")).reason == "too_few_speakers"
    # labels without words are not speakers who said something
    hollow = "Professor A:\n\nProfessor B:\n\nA: hi\n\nA: hi again"
    assert structure(Item(hollow, "two_professors")).reason == "too_few_speakers"


def test_turn_minimum_is_configurable_per_style():
    text = "Ana: pose it.\nBen: solve it.\nAna: check it."
    cfg = StructureConfig(min_turns=4, min_turns_by_style={"problem_solving": 3})
    structure = StructureFilter(cfg)
    assert structure(Item(text, "problem_solving")).keep
    assert structure(Item(text, "debate")).reason == "too_few_turns"


def test_exempt_styles_skip_structure():
    structure = StructureFilter(StructureConfig())
    assert structure(Item("A plain rewritten paragraph about primes.", "rephrase")).keep


def test_normalisation_gives_one_format_and_keeps_the_original():
    text, _ = FORMATS["headings"]
    item = Item(text, "teacher_student")
    verdict = NormalizeSpeakers(StructureConfig())(item)
    item.apply(verdict)
    assert verdict.notes == ("normalized_speakers",)
    assert item.original_text == text
    assert item.text.split("\n\n") == [
        "Teacher: What is a prime?",
        "Student: A number with two divisors.",
        "Teacher: Good.",
        "Student: Thanks.",
    ]
    # every format normalises to the same shape
    for sample, speakers in FORMATS.values():
        normalized = parse_dialogue(sample).normalized()
        starts = {turn.split(":", 1)[0] for turn in normalized.split("\n\n")}
        assert starts == set(speakers)
        assert parse_dialogue(normalized).speakers == speakers


def test_normalising_an_already_normal_text_is_not_a_repair():
    text = "Teacher: a\n\nStudent: b\n\nTeacher: c\n\nStudent: d"
    assert NormalizeSpeakers(StructureConfig())(Item(text, "teacher_student")).text is None
