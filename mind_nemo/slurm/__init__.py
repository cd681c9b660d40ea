"""SLURM launchers: sbatch scripts rendered from typed configs, and the chain that submits them.

``python -m mind_nemo.submit experiment=NAME`` is the entry point (:mod:`mind_nemo.submit`); this
package holds its parts: the config schema (:mod:`.config`), the templates and their renderer
(:mod:`.render`), the experiment-to-jobs planner (:mod:`.plan`), ``sbatch`` itself
(:mod:`.sbatch`), and the helpers the job scripts call (:mod:`.serve`, :mod:`.health`,
:mod:`.shard_done`). See ``README.md`` beside this file.
"""
