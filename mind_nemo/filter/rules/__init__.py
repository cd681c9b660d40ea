"""The filter rules: each family is a small module whose filters take an
:class:`~mind_nemo.filter.rules.base.Item` and return a
:class:`~mind_nemo.filter.rules.base.Verdict` (``length``, ``structure``/``speakers``,
``leakage``, ``degeneration``, ``faithfulness``, ``dedup``, ``judge``). The stage machinery that
runs them lives one folder up.
"""
