"""The submit stage: an experiment becomes a chain of jobs (SLURM or local), one per stage.

``python -m mind_nemo.submit experiment=NAME`` runs :mod:`.__main__`. Its parts: the config schema
(:mod:`.config`), the templates and their renderer (:mod:`.render`), the experiment-to-jobs
planner (:mod:`.plan`), ``sbatch`` itself (:mod:`.sbatch`), and the helpers the job scripts call
(:mod:`.serve`, :mod:`.health`, :mod:`.shard_done`). See ``README.md`` beside this file.
"""
