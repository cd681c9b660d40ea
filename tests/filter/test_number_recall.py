"""Which numbers of a context a faithful conversation must keep: the mathematics, not the
dates, times, rooms and references around it (mind_nemo/filter/README.md, "Number recall")."""

from __future__ import annotations

import pytest

from mind_nemo.filter.config import FaithfulnessConfig
from mind_nemo.filter.rules.base import Item
from mind_nemo.filter.rules.faithfulness import FaithfulnessFilter, math_numbers, numbers


@pytest.mark.parametrize(
    ("text", "wanted"),
    [
        ("$x^2 + 3x = 10$ has roots 2 and -5.", {"2", "3", "10", "5"}),
        (r"\( \frac{1}{2} + \frac{1}{3} = \frac{5}{6} \)", {"1", "2", "3", "5", "6"}),
        (r"\[ a_{12} = 7 \label{eq:4} \tag{4} \]", {"12", "7"}),
        (
            "3 apples at 0.50 each cost 1.5, and 1,000 of them cost 500.",
            {"3", "0.5", "1.5", "1000", "500"},
        ),
        ("We check 2019 = 3 * 673, and a 2000 m race.", {"2019", "3", "673", "2000"}),
        ("12% of 250 is 30.", {"12", "250", "30"}),
    ],
)
def test_mathematical_numbers_count(text, wanted):
    assert math_numbers(text) == wanted


@pytest.mark.parametrize(
    "text",
    [
        "The talk is on March 3, 2021 at 10:30 in Room 204 of Building 5.",
        "Office hours: 3 pm to 4:30 p.m. on 2021-04-05, also 4/5/2021 and 5 April 2021.",
        "In 1637 Fermat wrote in the margin; by the 1990s, in the 20th century, it was proved.",
        "See [12], eq. (3), Theorem 2.1, Lemma 4, Section 5, page 45, pp. 3-5 and Figure 2.",
        "Write to 77 Massachusetts Avenue, Cambridge, MA 02139 or call (617) 555-0100.",
        "Exercise 7 and Problem 3 of Chapter 2 follow from (4).",
    ],
)
def test_dates_times_places_and_references_do_not(text):
    assert math_numbers(text) == set()


def test_a_conversation_may_keep_a_number_in_any_form():
    assert numbers("1,000 and 2.50 and 07 and 3.0") == {"1000", "2.5", "7", "3"}
    assert numbers(r"$\sqrt2$") == {"2"}


def test_a_context_of_only_dates_and_rooms_does_not_demand_numbers():
    context = "Seminar on March 3, 2021, 10:30, Room 204, Building 5: continuity of $f$."
    dialogue = "Interviewer: What is continuity?\n\nExpert: No jumps in the graph."
    item = Item(dialogue, "interview", context=context)
    assert FaithfulnessFilter(FaithfulnessConfig())(item).keep
    assert item.metrics["number_recall"] == 1.0
    # the same dialogue loses the mathematics of a context that has some
    maths = context + " Then 3 + 4 = 7 and 7 * 6 = 42."
    assert FaithfulnessFilter(FaithfulnessConfig())(
        Item(dialogue, "interview", context=maths)
    ).reason == ("low_number_recall")
