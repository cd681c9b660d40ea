"""Quality filters for synthetic conversations, and the filter stage built from them.

Each filter family is a small module (``length``, ``structure``/``speakers``, ``leakage``,
``degeneration``, ``faithfulness``, ``dedup``, ``judge``) whose filters take an
:class:`~mind_nemo.filters.base.Item` and return a :class:`~mind_nemo.filters.base.Verdict`.
``README.md`` in this folder explains the stage: inputs, outputs, reasons, dedup, memory.
"""
