"""The submit stage: an experiment becomes one NeMo-Run experiment, one task per job.

``python -m mind_nemo.submit experiment=NAME cluster=NAME`` runs :mod:`.__main__`. Its parts: the
config schemas (:mod:`.config`, :mod:`.cluster`), the experiment-to-jobs planner (:mod:`.plan`),
jobs onto NeMo-Run executors (:mod:`.executors`), the experiment itself (:mod:`.launch`), and the
helpers the jobs call (:mod:`.step`, :mod:`.serve`, :mod:`.health`, :mod:`.shard_done`). See
``README.md`` beside this file.
"""
