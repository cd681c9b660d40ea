"""``python -m mind_nemo.report RUN_DIR`` (or ``run_dir=RUN_DIR``); see :mod:`.render`."""

import sys

from mind_nemo.core.cli import run_hydra_main
from mind_nemo.report.render import main

if __name__ == "__main__":
    if len(sys.argv) > 1 and "=" not in sys.argv[1] and not sys.argv[1].startswith("-"):
        sys.argv[1] = f"run_dir={sys.argv[1]}"
    run_hydra_main("report", main)
