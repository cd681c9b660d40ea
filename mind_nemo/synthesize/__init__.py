"""The synthesize stage: raw corpus -> ~500-token contexts -> one conversation per style.

Read ``README.md`` beside this file for the mental model. What other stages may use: the run
folder it writes (see :mod:`mind_nemo.core.run_folder`), its config (:mod:`.config`) and the style
prompts (:mod:`.styles`). Importing this package is cheap; the engine loads on demand.
"""
