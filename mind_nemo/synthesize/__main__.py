"""``python -m mind_nemo.synthesize +style=NAME [overrides]``; the stage is in :mod:`.stage`."""

from mind_nemo.core.cli import run_hydra_main
from mind_nemo.synthesize.stage import main

if __name__ == "__main__":
    run_hydra_main("synthesize", main)
