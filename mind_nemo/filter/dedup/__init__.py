"""Dedup at the released scale: on-disk LSH band buckets, memory bounded by a setting.

The in-memory path (:mod:`mind_nemo.filter.rules.dedup`, walked by ``finalize.py``) holds every
kept conversation's LSH entries in one process. This package finds the same duplicates in
steps that each hold a bounded slice (see "Dedup at scale" in ``mind_nemo/filter/README.md``):

``split``    per shard: band-bucket records of every staged row, split by hash range
``pairs``    per hash range (``step=bucket``): sort, group, confirm candidates -> pairs
``cluster``  once (``step=cluster``): first-seen-wins over the pairs, in row order -> drops
``apply``    per shard (``step=apply``): final conversations and rejects from the drops
``steps``    the done markers, which task does what, and local worker processes
"""
