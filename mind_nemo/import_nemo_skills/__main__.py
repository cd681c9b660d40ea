"""``python -m mind_nemo.import_nemo_skills +style=NAME input=PATH server.model=M output_dir=RUN``.

The stage is in :mod:`.stage`.
"""

from mind_nemo.core.cli import run_hydra_main
from mind_nemo.import_nemo_skills.stage import main

if __name__ == "__main__":
    run_hydra_main("import_nemo_skills", main)
