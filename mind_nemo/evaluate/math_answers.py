"""Is a model's MATH answer right? The check lives with our lm-eval MATH task.

``lm_tasks/mind_math.py`` must load where mind_nemo is not installed (lm-eval imports it by
path), so the answer extraction and math-verify check are written there and re-exported here
for the rest of the package and the tests.
"""

from __future__ import annotations

from mind_nemo.evaluate.lm_tasks.mind_math import (
    final_answer,
    is_equivalent,
    last_boxed,
    reference_answer,
    score_completion,
)

__all__ = ["final_answer", "is_equivalent", "last_boxed", "reference_answer", "score_completion"]
