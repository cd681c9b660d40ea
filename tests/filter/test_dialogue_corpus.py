"""The default filter chain on a corpus of realistic dialogues (tests/filter/dialogue_corpus.yaml).

Each case is a conversation in a format strong instruct models produce (plain and bold labels,
turn headings, titles, forum handles, ordinal roles, Q/A, preambles, closings, LaTeX) or a
degenerate one (echo, loop, one speaker, truncation), with its context and the expected
speakers, turn count and verdict. The chain is the stage's: thresholds from the packaged
``filter=default`` config and the style prompts' instructions for echo detection.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from mind_nemo.core.config import typed_config
from mind_nemo.core.styles import CONVERSATION_STYLES
from mind_nemo.filter.chain import build_chain, run_chain
from mind_nemo.filter.config import FilterSettings, FilterStageConfig
from mind_nemo.filter.rules.base import Item, count_words
from mind_nemo.filter.rules.leakage import instruction_text
from mind_nemo.filter.rules.speakers import parse_dialogue
from mind_nemo.filter.rules.structure import NormalizeSpeakers
from mind_nemo.synthesize.styles import load_prompt
from tests.filter.helpers import compose_filter

STYLES = CONVERSATION_STYLES
CASES: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parent / "dialogue_corpus.yaml").read_text()
)
KEPT = [c for c in CASES if c["verdict"] == "keep"]


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> FilterSettings:
    """The packaged default thresholds, composed the way the stage composes them."""
    root = tmp_path_factory.mktemp("corpus")
    raw = compose_filter(root / "run", root / "out")
    return typed_config(raw, FilterStageConfig).filter


@pytest.fixture(scope="module")
def chain(settings: FilterSettings) -> list:
    instructions = {s: instruction_text(load_prompt(s).user) for s in STYLES}
    return build_chain(settings, instructions)


def run_case(chain: list, case: dict[str, Any]) -> tuple[Item, str | None]:
    context = case["context"]
    item = Item(
        case["text"],
        case["style"],
        {"finish_reason": "stop", **(case.get("row") or {})},
        context=context,
        context_tokens=count_words(context),
    )
    return item, run_chain(chain, item)


def test_the_corpus_covers_every_style_and_format():
    assert len(CASES) >= 60
    assert len({c["id"] for c in CASES}) == len(CASES)
    by_style = Counter(c["style"] for c in CASES)
    assert set(by_style) == set(STYLES)
    assert min(by_style.values()) >= 5
    formats = Counter(f for c in CASES for f in c["formats"])
    for needed in (
        "plain",
        "bold_inside",
        "turn_headings",
        "titles",
        "forum_handles",
        "ordinal_roles",
        "q_and_a",
        "preamble",
        "closing",
        "latex",
    ):
        assert formats[needed] >= 2, needed
    reasons = {c["reason"] for c in CASES if c["verdict"] == "reject"}
    assert {"instruction_echo", "repeated_ngrams", "too_few_speakers", "truncated"} <= reasons
    for case in CASES:
        assert case["verdict"] in ("keep", "reject")
        assert (case["reason"] is None) == (case["verdict"] == "keep"), case["id"]


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_corpus_case(chain, case):
    item, reason = run_case(chain, case)
    assert reason == case["reason"]
    dialogue = item.dialogue
    assert dialogue.speakers == case["speakers"]
    assert len(dialogue.spoken) == case["turns"]
    if "notes" in case:
        assert item.notes == case["notes"]
    for text in case.get("absent", []):
        assert text not in item.text


@pytest.mark.parametrize("case", KEPT, ids=[c["id"] for c in KEPT])
def test_normalizing_a_kept_case_changes_only_labels(chain, settings, case):
    item, _ = run_case(chain, case)
    turns = [t.text for t in item.dialogue.spoken]
    item.apply(NormalizeSpeakers(settings.structure)(item))
    again = parse_dialogue(item.text)
    assert again.speakers == case["speakers"]
    assert [t.text for t in again.spoken] == turns  # every turn's words, as written
    if "normalized_starts" in case:
        assert item.text.startswith(case["normalized_starts"])
