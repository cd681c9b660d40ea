"""Where the files shipped inside the package are: the Hydra configs and the sample data.

The configs live in the repository's top-level ``hydra_configs/`` folder and install as
``mind_nemo.hydra_configs`` (setup.py maps one to the other), so an installed wheel carries them
under the project's own name. Every lookup of a packaged file goes through here.
"""

from __future__ import annotations

from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

#: The importable name of the Hydra config folder (what Hydra's ``pkg://`` paths name).
CONFIG_MODULE = "mind_nemo.hydra_configs"
#: The sample corpora and the evaluation fixtures.
DATA_DIR = Path(__file__).resolve().parents[1] / "data"


def config_folder() -> Traversable:
    """The installed ``hydra_configs`` folder (primary configs at its top, groups below)."""
    return resources.files(CONFIG_MODULE)


def data_path(*parts: str) -> Path:
    """A file or folder under the packaged ``data/``."""
    return DATA_DIR.joinpath(*parts)
