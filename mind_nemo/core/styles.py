"""The conversational styles of the MIND paper: one fact every stage shares.

Synthesis generates them, the filter groups and builds variants by them, the mix and the report
name them. They live here, below every stage, so no stage has to import another to know them.
Their names in the released Nemotron-MIND data (``TWO_STUDENTS``, ...) are in
:mod:`mind_nemo.core.released`, the one table between the two namings.
"""

from __future__ import annotations

#: The seven conversational styles of the MIND paper, in the paper's order.
CONVERSATION_STYLES: tuple[str, ...] = (
    "two_students",
    "teacher_student",
    "two_professors",
    "debate",
    "problem_solving",
    "layman_knowall",
    "interview",
)
#: Styles we can generate: the seven plus the WRAP-style rephrase baseline.
ALL_STYLES: tuple[str, ...] = (*CONVERSATION_STYLES, "rephrase")
