"""Evaluation stage: the MIND paper's benchmark suite through lm-evaluation-harness.

``python -m mind_nemo.evaluate`` scores one checkpoint or server; ``python -m
mind_nemo.evaluate.compare`` puts any number of runs in the paper's table beside its reported
numbers. See README.md in this folder for the mental model.
"""
