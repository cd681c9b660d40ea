"""``python -m mind_nemo.merge run_dir=RUN``: kept at the top so the documented command stays.

The merge belongs to the synthesize stage (:mod:`mind_nemo.synthesize.merge`).
"""

from mind_nemo.core.cli import run_hydra_main
from mind_nemo.synthesize.merge import main

if __name__ == "__main__":
    run_hydra_main("merge", main)
