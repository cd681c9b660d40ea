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


# -- structure, not word lists ------------------------------------------------------------------
def test_roles_whose_first_word_is_a_section_word_are_speakers():
    text = (
        "Interviewer: What is a limit?\n\nSubject Matter Expert: Where a sequence settles.\n\n"
        "Interviewer: Always?\n\nSubject Matter Expert: Only when it converges."
    )
    assert parse_dialogue(text).speakers == ["Interviewer", "Subject Matter Expert"]
    ordinal = "First Student: a?\nSecond Student: b.\nFirst Student: c?\nSecond Student: d."
    assert parse_dialogue(ordinal).speakers == ["First Student", "Second Student"]
    solver = "Problem Solver: pose.\nChecker: check.\nProblem Solver: fix.\nChecker: ok."
    assert parse_dialogue(solver).speakers == ["Problem Solver", "Checker"]


def test_forum_handles_in_any_case_are_speakers():
    text = "\n".join(
        f"{who}: point {i} about parity." for i, who in enumerate(["jgens", "gabrielh"] * 3)
    )
    assert parse_dialogue(text).speakers == ["jgens", "gabrielh"]
    mixed = "@jgens: a\n@MathFan42: b\n@jgens: c\n@MathFan42: d"
    assert parse_dialogue(mixed).speakers == ["jgens", "MathFan42"]


def test_sentences_and_numbers_ending_in_a_colon_are_not_labels():
    from mind_nemo.filter.rules.speakers import match_label

    for line in (
        "so the answer is: 5",
        "So the answer is: 5",
        "10:30 is when we meet",
        "https://example.org is the source",
        "x: the unknown",
        "ratio 3:4 holds",
    ):
        assert match_label(line) is None, line
    assert match_label("**Dr. Smith (smiling):** Ready?") == ("Dr. Smith", "Ready?")
    assert match_label("1. **Kenji:** Eight people") == ("Kenji", "Eight people")


@pytest.mark.parametrize(
    "heading",
    ["**Turn {n}**", "### Turn {n}", "Turn {n}:", "__Turn {n}__", "## Exchange {n}"],
)
def test_numbered_headings_are_never_speakers_and_leave_the_turns(heading):
    turns = ["Alex: What is 2 + 2?", "Sam: It is 4.", "Alex: And 2 * 2?", "Sam: Also 4."]
    text = "\n\n".join(f"{heading.format(n=n)}\n{turn}" for n, turn in enumerate(turns, 1))
    dialogue = parse_dialogue(text)
    assert dialogue.speakers == ["Alex", "Sam"]
    assert [t.text for t in dialogue.spoken] == [
        "What is 2 + 2?",
        "It is 4.",
        "And 2 * 2?",
        "Also 4.",
    ]
    assert dialogue.preamble == ""
    assert dialogue.normalized() == "\n\n".join(turns)


def test_a_heading_can_carry_the_speaker():
    said = [("Alex", "hi"), ("Sam", "hello"), ("Alex", "more"), ("Sam", "yes")]
    layouts = (
        "Turn {n}: {who}: {what}",
        "### Turn {n} ({who})\n{what}",
        "## Turn {n} - {who}\n{what}",
    )
    for layout in layouts:
        text = "\n".join(
            layout.format(n=n, who=who, what=what) for n, (who, what) in enumerate(said, 1)
        )
        dialogue = parse_dialogue(text)
        assert dialogue.speakers == ["Alex", "Sam"], text
        assert [t.text for t in dialogue.spoken] == ["hi", "hello", "more", "yes"]


def test_numbered_speakers_in_a_round_are_speakers():
    text = "\n".join(f"Speaker {1 + i % 3}: remark {i}." for i in range(6))
    assert parse_dialogue(text).speakers == ["Speaker 1", "Speaker 2", "Speaker 3"]
    with_host = "\n".join(
        f"{who}: remark {i}." for i, who in enumerate(["Teacher", "Student 1", "Student 2"] * 2)
    )
    assert parse_dialogue(with_host).speakers == ["Teacher", "Student 1", "Student 2"]


def test_numbered_steps_inside_turns_are_not_speakers():
    text = (
        "Ana: Plan:\nStep 1: add.\nStep 2: divide.\n\nBen: Done.\nStep 1: 14.\nStep 2: 7.\n\n"
        "Ana: Check it.\n\nBen: It holds."
    )
    dialogue = parse_dialogue(text)
    assert dialogue.speakers == ["Ana", "Ben"]
    assert dialogue.spoken[0].text == "Plan:\nStep 1: add.\nStep 2: divide."


def test_recurring_sub_labels_are_told_apart_by_layout_and_markup():
    # "Answer:" never opens a paragraph, while both speakers always do
    layout = "Ana: 3 + 4?\nAnswer: 7\n\nBen: 5 + 6?\nAnswer: 11\n\nAna: Good.\n\nBen: Yes."
    assert parse_dialogue(layout).speakers == ["Ana", "Ben"]
    # plain "Hint:" among speakers whose labels are always bold
    markup = "**Ana:** a\nHint: h\n**Ben:** b\nHint: i\n**Ana:** c\n**Ben:** d"
    assert parse_dialogue(markup).speakers == ["Ana", "Ben"]
    # a third speaker who writes like the other two stays a speaker
    three = "Ana: a\n\nBen: b\n\nCara: c\n\nAna: d\n\nBen: e\n\nCara: f"
    assert parse_dialogue(three).speakers == ["Ana", "Ben", "Cara"]


def test_labels_that_never_recur_make_no_dialogue():
    text = "Teacher: The mean.\nNote: also the average.\nTeacher: 15 / 3 = 5.\nExample: 1, 2, 3."
    assert parse_dialogue(text).speakers == ["Teacher"]


def test_normalisation_changes_labels_only():
    text = (
        "**Turn 1**\n**Dr. Lee (smiling):** Line one\nline two with: a colon\n\n---\n\n"
        "**Turn 2**\n__Know-all__: Reply.\n\n**Turn 3**\n**Dr. Lee:** More.\n\n"
        "**Turn 4**\n__Know-all__: Done."
    )
    dialogue = parse_dialogue(text)
    assert dialogue.normalized() == (
        "Dr. Lee: Line one\nline two with: a colon\n\nKnow-all: Reply.\n\nDr. Lee: More.\n\n"
        "Know-all: Done."
    )


# -- preambles and closings glued to the turns ---------------------------------------------------
def _leakage():
    from mind_nemo.filter.config import LeakageConfig
    from mind_nemo.filter.rules.leakage import LeakageFilter

    return LeakageFilter(LeakageConfig())


TURNS = "Alex: one plus one?\nSam: two.\nAlex: two plus two?\nSam: four."


@pytest.mark.parametrize(
    "preamble",
    [
        "Sure! Here is a conversation between two students:",
        "Here is a conversation between two students about\nadding small numbers:",
        "Certainly!\n---",
    ],
)
def test_a_preamble_without_a_blank_line_is_stripped(preamble):
    verdict = _leakage()(Item(f"{preamble}\n{TURNS}", "two_students"))
    assert verdict.text == TURNS and verdict.notes == ("stripped_preamble",)


def test_a_closing_without_a_blank_line_is_stripped_when_it_is_not_speech():
    leak = _leakage()
    about_task = f"{TURNS}\nThis dialogue shows how to add."
    assert leak(Item(about_task, "two_students")).text == TURNS
    # single-line turns: a second line in the last one is the model, not Sam
    assert leak(Item(f"{TURNS}\nI hope this helps!", "two_students")).text == TURNS
    # multi-line turns: "I hope this helps" may be what Sam says, so it stays
    long_turns = TURNS.replace("two.", "two.\nBecause 1 + 1 = 2.")
    assert leak(Item(f"{long_turns}\nI hope this helps!", "two_students")).text is None
