"""Where benchmark data comes from: the Hub as usual, or a folder of local copies.

lm-eval tasks load data with ``datasets.load_dataset(dataset_path, dataset_name)``. A local copy
of a Hub data set is a folder laid out like the Hub repository (a README.md whose ``configs:``
header maps config names and splits to files), and ``load_dataset(folder, name)`` reads it the
same way. So relocating data changes one field, ``dataset_path``, to ``<data_dir>/<hub name>``:
prompts, splits, few-shot selection and metrics stay lm-eval's. ``data_dir=fixtures`` is the
small set shipped in ``mind_nemo/data/eval_fixtures/`` (our own items, each benchmark's columns).
"""

from __future__ import annotations

import functools
from pathlib import Path

from mind_nemo.core.errors import UserError
from mind_nemo.core.package_files import data_path
from mind_nemo.evaluate import tasks

FIXTURES_DIR = data_path("eval_fixtures")
#: ``data_dir`` values that mean "load from the Hub".
HUB = (None, "", "hub")


def resolve_data_dir(data_dir: str | None) -> Path | None:
    """``fixtures`` -> the packaged fixtures; ``hub``/``null`` -> None; else an existing folder."""
    if data_dir in HUB:
        return None
    path = FIXTURES_DIR if data_dir == "fixtures" else Path(str(data_dir)).expanduser()
    if not path.is_dir():
        raise UserError(f"data_dir {str(path)!r} is not a folder of local data set copies")
    return path.resolve()


def local_dataset(data_dir: Path, hub_name: str, task: str) -> Path:
    """The local copy of ``hub_name`` under ``data_dir``; missing is one clear error."""
    path = data_dir / hub_name
    if not path.is_dir():
        raise UserError(
            f"task {task!r} reads {hub_name!r} but {path} does not exist "
            f"(copy it there, e.g. huggingface-cli download --repo-type dataset {hub_name} "
            f"--local-dir {path}, or drop data_dir to load from the Hub)"
        )
    return path


@functools.cache
def local_configs(path: Path) -> frozenset[str]:
    """Config names a local copy declares (``default`` for a folder without ``configs:``)."""
    import datasets

    return frozenset(datasets.get_dataset_config_names(str(path)))


def check_configs(path: Path, hub_name: str, name: str) -> None:
    """Every task under ``name`` must find its ``dataset_name`` in the local copy, so a partial
    copy fails now with the missing subset named, not after the model has loaded."""
    available = local_configs(path)
    for leaf in tasks.leaf_tasks(name):
        wanted = tasks.task_config(leaf).get("dataset_name") or "default"
        if wanted not in available:
            raise UserError(
                f"the local copy of {hub_name} at {path} has no config {wanted!r} "
                f"(needed by task {leaf}); it has: {', '.join(sorted(available))}"
            )


def data_override(name: str, data_dir: Path | None) -> dict[str, str]:
    """The task-config fields that point ``name`` (a task or group) at its local copy."""
    if data_dir is None:
        return {}
    hub_names = tasks.dataset_paths(name)
    if len(hub_names) != 1:
        raise UserError(
            f"{name!r} reads {len(hub_names)} data sets ({', '.join(sorted(hub_names))}); "
            "list its tasks one by one to relocate their data"
        )
    hub_name = hub_names.pop()
    path = local_dataset(data_dir, hub_name, name)
    check_configs(path, hub_name, name)
    return {"dataset_path": str(path)}
