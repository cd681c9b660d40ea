"""Each filter family on crafted passing and failing cases, and the chain's order."""

from __future__ import annotations

import pytest

from mind_nemo.filter.chain import build_chain, run_chain
from mind_nemo.filter.config import (
    DegenerationConfig,
    FaithfulnessConfig,
    FilterSettings,
    LeakageConfig,
    LengthConfig,
)
from mind_nemo.filter.rules.base import Item
from mind_nemo.filter.rules.degeneration import (
    DegenerationFilter,
    repeated_line_ratio,
    repeated_ngram_ratio,
)
from mind_nemo.filter.rules.faithfulness import FaithfulnessFilter, latex_expressions, numbers
from mind_nemo.filter.rules.leakage import LeakageFilter, instruction_text
from mind_nemo.filter.rules.length import EmptyFilter, MinTokensFilter, TruncatedFilter
from mind_nemo.synthesize.styles import load_prompt
from tests.filter.helpers import context_text, good_conversation

DIALOGUE = "Teacher: What is 3 + 4?\n\nStudent: It is 7.\n\nTeacher: And 3 x 4?\n\nStudent: 12."


# -- length ------------------------------------------------------------------------------------
def test_min_tokens_uses_the_servers_count_while_the_text_is_untouched():
    rule = MinTokensFilter(LengthConfig(min_tokens=50))
    assert rule(Item("short", "debate", {"completion_tokens": 50})).keep
    assert rule(Item("short", "debate", {"completion_tokens": 49})).reason == "too_short"


def test_min_tokens_counts_when_the_server_did_not_or_the_text_changed():
    rule = MinTokensFilter(LengthConfig(min_tokens=5))
    counter = lambda text: len(text) // 4  # noqa: E731 - a deterministic stand-in tokenizer
    assert rule(Item("x" * 20, "debate", {}, count_tokens=counter)).keep  # 5 tokens
    assert rule(Item("x" * 19, "debate", {}, count_tokens=counter)).reason == "too_short"
    changed = Item("x" * 404, "debate", {"completion_tokens": 100}, count_tokens=counter)
    changed.original_text = "the server's text"
    assert changed.tokens == 101  # counted from the new text, not the server's 100
    changed.text = "x" * 8
    changed._tokens = None
    assert rule(changed).reason == "too_short"


@pytest.mark.parametrize("text", ["", "   ", "\n\t \n"])
def test_empty_or_whitespace_is_rejected(text):
    assert EmptyFilter()(Item(text, "debate")).reason == "empty"


def test_empty_filter_passes_text():
    assert EmptyFilter()(Item(DIALOGUE, "debate")).keep


def test_truncated_generations_are_rejected():
    assert TruncatedFilter()(Item(DIALOGUE, "debate", {"finish_reason": "length"})).reason == (
        "truncated"
    )
    assert TruncatedFilter()(Item(DIALOGUE, "debate", {"finish_reason": "stop"})).keep


# -- leakage -----------------------------------------------------------------------------------
def leakage(**overrides) -> LeakageFilter:
    styles = ("debate", "teacher_student")
    instructions = {s: instruction_text(load_prompt(s).user) for s in styles}
    return LeakageFilter(LeakageConfig(**overrides), instructions)


@pytest.mark.parametrize(
    "preamble",
    [
        "Sure! Here is a conversation between a teacher and a student:",
        "Here's the dialogue you asked for.",
        "**Conversation between a Teacher and a Student**",
        "# Dialogue: adding fractions",
        "Certainly!\n\nBelow is the rewritten text as a lesson:",
        "I'll rewrite the text as a dialogue now.",
    ],
)
def test_preambles_are_stripped_when_a_dialogue_follows(preamble):
    item = Item(f"{preamble}\n\n{DIALOGUE}", "teacher_student")
    verdict = leakage()(item)
    assert verdict.keep and verdict.text == DIALOGUE
    assert verdict.notes == ("stripped_preamble",)


@pytest.mark.parametrize(
    "closing",
    [
        "I hope this helps you understand addition!",
        "This conversation covers addition and multiplication.",
        "---\n\nIn this dialogue, the teacher explains sums.",
        "Let me know if you want another version.",
        "Note: the conversation keeps every number of the text.",
    ],
)
def test_closing_remarks_are_stripped(closing):
    verdict = leakage()(Item(f"{DIALOGUE}\n\n{closing}", "teacher_student"))
    assert verdict.keep and verdict.text == DIALOGUE
    assert verdict.notes == ("stripped_closing",)


def test_strip_off_rejects_instead():
    strict = leakage(strip=False)
    assert strict(Item(f"Sure! Here is a conversation:\n\n{DIALOGUE}", "debate")).reason == (
        "meta_preamble"
    )
    assert strict(Item(f"{DIALOGUE}\n\nI hope this helps!", "debate")).reason == "meta_closing"


def test_content_that_looks_like_meta_is_not_stripped():
    # a long first paragraph is never a preamble; a math note is not about the task
    long_intro = "Here is a conversation " + "about sums and products " * 30
    assert leakage()(Item(f"{long_intro}\n\n{DIALOGUE}", "debate")).text is None
    note = f"{DIALOGUE}\n\nNote: the rule fails when b = 0."
    assert leakage()(Item(note, "teacher_student")).text is None
    # words like "version" or "exchange" are mathematics too, not talk about the task
    rephrase = (
        "The version of the theorem we need assumes b > 0\n\nThen a/b is defined.\n\n"
        "This version of the proof is shorter than the original one."
    )
    assert leakage()(Item(rephrase, "rephrase")).text is None
    rates = f"The exchange rate is 1.2 dollars per euro\n\n{DIALOGUE}"
    assert leakage()(Item(rates, "teacher_student")).text is None


def test_echoed_instruction_is_stripped_before_the_dialogue_and_rejected_inside():
    echo = (
        "Rewrite the text above as a lesson in the form of a dialogue between a teacher and a "
        "student. The student asks questions and tries ideas."
    )
    stripped = leakage()(Item(f"{echo}\n\n{DIALOGUE}", "teacher_student"))
    assert stripped.keep and stripped.text == DIALOGUE
    inside = DIALOGUE.replace("Student: It is 7.", f"Student: It is 7. {echo}")
    assert leakage()(Item(inside, "teacher_student")).reason == "instruction_echo"
    only_echo = "The student asks questions and tries ideas; the teacher guides them through every concept, formula and worked example."  # noqa: E501
    assert leakage()(Item(only_echo, "teacher_student")).reason == "instruction_echo"
    # another style's instruction words are not this style's echo
    assert leakage()(Item(f"{echo}\n\n{DIALOGUE}", "debate")).text is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("I'm a helpful AI, and I'm here to help with your math homework.", "meta_text"),
        ("Teacher: As an AI language model, I think 3 + 4 = 7.\n\nStudent: ok", "meta_text"),
        ("I'm sorry, but I can't help with that request.", "refusal"),
    ],
)
def test_model_talking_about_itself_is_rejected(text, reason):
    assert leakage()(Item(text, "teacher_student")).reason == reason


def test_ordinary_dialogue_passes_leakage():
    text = "Teacher: I am an assistant professor, and I'm sorry, but I can't see a 5 here.\n\n"
    text += "Student: Fine.\n\nTeacher: Go on.\n\nStudent: 7."
    assert leakage()(Item(text, "teacher_student")).keep
    assert leakage()(Item(text, "teacher_student")).text is None


# -- degeneration -----------------------------------------------------------------------------
def test_repetition_ratios():
    loop = "I'm here to help you with your math homework. " * 12
    assert repeated_ngram_ratio(loop, 5) > 0.8
    assert repeated_ngram_ratio(good_conversation(1, 0, "debate"), 5) < 0.1
    lines = "\n".join(["The answer is seven, as we said."] * 5 + ["A new line of thought here."])
    assert repeated_line_ratio(lines, 12) == pytest.approx(4 / 6)
    assert repeated_line_ratio("short\nshort\nshort\nshort", 12) == 0.0  # too short to count


def test_degeneration_filter():
    rule = DegenerationFilter(DegenerationConfig())
    looping = "\n\n".join(f"{s}: I am glad you are so passionate about math." for s in "AB" * 6)
    assert rule(Item(looping, "debate")).reason == "repeated_ngrams"
    repeated_lines = "\n".join(
        ["Teacher: Let us check the sum of both numbers again now."] * 4
        + [f"Student: value {i} is {i * i} squared, and {i + 1} follows it." for i in range(4)]
    )
    cfg = DegenerationConfig(max_repeated_ngram_ratio=1.0)
    assert DegenerationFilter(cfg)(Item(repeated_lines, "debate")).reason == "repeated_lines"
    item = Item(good_conversation(2, 1, "debate"), "debate")
    assert rule(item).keep
    assert item.metrics["repeated_ngram_ratio"] < 0.35


def test_speaker_labels_do_not_count_as_repetition():
    # the same label at every turn, different words each time
    text = "\n".join(
        f"{'AB'[i % 2]}: " + " ".join(f"w{i}x{j}" for j in range(6)) for i in range(12)
    )
    assert DegenerationFilter(DegenerationConfig())(Item(text, "debate")).keep


# -- faithfulness -----------------------------------------------------------------------------
def test_numbers_and_latex_extraction():
    assert numbers("1,000 apples, 3.5 kg, x2, 2x and 12.") == {"1000", "3.5", "2", "12"}
    found = latex_expressions(r"$x$ and $$ a + b $$, \(\frac{1}{2}\), \[ y = 2 \]", 3)
    assert found == {"a+b", r"\frac{1}{2}", "y=2"}


def faithful(**overrides) -> FaithfulnessFilter:
    return FaithfulnessFilter(FaithfulnessConfig(**overrides))


def test_faithful_conversation_passes_and_records_metrics():
    item = Item(
        good_conversation(3, 0, "debate"),
        "debate",
        {"completion_tokens": 120},
        context=context_text(3, 0),
        context_tokens=60,
    )
    assert faithful(min_latex_recall=0.5)(item).keep
    assert item.metrics["number_recall"] == 1.0
    assert item.metrics["latex_recall"] == 1.0
    assert item.metrics["length_ratio"] == 2.0


def test_lost_numbers_and_formulas_are_rejected():
    context = context_text(3, 0)
    vague = DIALOGUE + "\n\nTeacher: numbers are fun.\n\nStudent: indeed, quite a lot."
    item = Item(vague, "debate", {"completion_tokens": 40}, context=context, context_tokens=60)
    assert faithful()(item).reason == "low_number_recall"
    keeps_numbers = Item(
        " ".join(sorted(numbers(context))) + " " + DIALOGUE,
        "debate",
        {"completion_tokens": 40},
        context=context,
        context_tokens=60,
    )
    assert faithful(min_latex_recall=0.5)(keeps_numbers).reason == "low_latex_recall"
    assert faithful()(keeps_numbers).keep  # latex recall is off by default


def test_length_ratio_bounds():
    context = context_text(3, 0)
    text = good_conversation(3, 0, "debate")
    short = Item(text, "debate", {"completion_tokens": 5}, context=context, context_tokens=100)
    assert faithful()(short).reason == "too_short_for_context"
    long = Item(text, "debate", {"completion_tokens": 2000}, context=context, context_tokens=100)
    assert faithful()(long).reason == "too_long_for_context"


def test_without_a_context_faithfulness_passes():
    assert faithful()(Item(DIALOGUE, "debate", {"completion_tokens": 60})).keep


# -- the chain ----------------------------------------------------------------------------------
def test_chain_strips_then_counts_tokens_on_what_remains():
    chain = build_chain(FilterSettings(), {})
    words = lambda text: len(text.split())  # noqa: E731
    text = f"Sure! Here is a conversation between a teacher and a student:\n\n{DIALOGUE}"
    # 40 words with the preamble, 28 without it: the server's count no longer applies
    item = Item(text, "teacher_student", {"completion_tokens": 400}, count_tokens=words)
    assert run_chain(chain, item) == "too_short"
    assert item.tokens == len(DIALOGUE.split())
    assert item.original_text == text


def test_chain_first_rejection_wins_and_disabled_families_are_skipped():
    settings = FilterSettings()
    row = {"finish_reason": "length", "completion_tokens": 3}
    assert run_chain(build_chain(settings), Item("Sure!", "debate", row)) == "truncated"
    settings.length.enabled = False
    settings.structure.enabled = False
    settings.leakage.enabled = False
    assert run_chain(build_chain(settings), Item("Sure!", "debate", row)) is None
