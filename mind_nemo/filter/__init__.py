"""The filter stage: every conversation of a synthesize run kept or rejected with one reason,
duplicates removed across shards, and the paper's training variants built.

``python -m mind_nemo.filter run_dir=RUN`` runs :mod:`.__main__`. The rules live in
:mod:`.rules`; the machinery (shard pass, finalize, variants) beside this file. ``README.md`` in
this folder explains inputs, outputs, reasons, dedup and memory.
"""
