"""``python -m mind_nemo.synthesize +style=NAME [overrides]``; the stage is in :mod:`.stage`."""

import sys

from mind_nemo.core.cli import exit_without_teardown, run_hydra_main
from mind_nemo.core.errors import exit_on_user_error
from mind_nemo.core.run_folder import check_folder_argument
from mind_nemo.synthesize.stage import main

if __name__ == "__main__":
    # Hydra creates output_dir (its log goes there) before the stage runs: an output_dir under
    # a file must be refused first, in one line.
    exit_on_user_error(check_folder_argument)(sys.argv[1:], "output_dir")
    run_hydra_main("synthesize", main)
    exit_without_teardown()  # the run is closed and on disk: skip freeing it object by object
