"""One Hydra composition per command: a plain command line run the way ``@hydra.main`` runs it.

``@hydra.main`` composes the config once to learn the run mode and once more to run, and our
override check (:mod:`mind_nemo.core.cli`) composed a third time before either. Each costs
about 0.15 s of CPU, which matters to a stage whose whole run can be a few seconds (a small
synthesize run, a resume that finds everything done). :class:`HydraApp` builds the same Hydra
application ``@hydra.main`` would for the same task function (its task name, so the job log
keeps its name; the same config search path), composes once with the Hydra node included, and
hands that config to Hydra's ``run_job``, which makes the run folder, configures logging, sets
``HydraConfig`` and calls the task as before.

This uses Hydra's internal modules (``hydra._internal``), so hydra-core is pinned in setup.py;
the command-line tests exercise every stage through this path.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from hydra._internal.callbacks import Callbacks
from hydra._internal.hydra import Hydra
from hydra._internal.utils import (
    create_automatic_config_search_path,
    detect_calling_file_or_module_from_task_function,
    detect_task_name,
)
from hydra.core.global_hydra import GlobalHydra
from hydra.core.utils import run_job
from hydra.types import HydraContext, RunMode
from omegaconf import DictConfig, open_dict, read_write

from mind_nemo.core.cli import CONFIG_PATH, composition_error


class HydraApp:
    """The Hydra application of one ``@hydra.main`` task function (given undecorated)."""

    def __init__(self, task: Callable[[DictConfig], Any]) -> None:
        self.task = task
        calling_file, calling_module = detect_calling_file_or_module_from_task_function(task)
        search_path = create_automatic_config_search_path(calling_file, calling_module, CONFIG_PATH)
        task_name = detect_task_name(calling_file, calling_module)
        GlobalHydra.instance().clear()  # one application per process; tests make several
        self.hydra = Hydra.create_main_hydra2(task_name=task_name, config_search_path=search_path)

    def compose(
        self, config_name: str, overrides: list[str]
    ) -> tuple[DictConfig | None, str | None]:
        """The run config (Hydra node included), or the one-line reason it cannot be made."""
        try:
            cfg = self.hydra.compose_config(
                config_name=config_name,
                overrides=overrides,
                with_log_configuration=True,
                run_mode=RunMode.RUN,
            )
        except Exception as err:  # Hydra raises several unrelated types for user mistakes
            return None, composition_error(err)
        return cfg, None

    @staticmethod
    def task_config(cfg: DictConfig) -> DictConfig:
        """What the task function will be given: the config without its Hydra node."""
        task_cfg = copy.deepcopy(cfg)
        with read_write(task_cfg), open_dict(task_cfg):
            del task_cfg["hydra"]
        return task_cfg

    def run(self, config_name: str, cfg: DictConfig) -> Any:
        """Run the task on ``cfg`` as ``Hydra.run`` does; the task's result, or its exception."""
        if cfg.hydra.mode is None:
            with read_write(cfg):
                cfg.hydra.mode = RunMode.RUN
        callbacks = Callbacks(cfg)
        callbacks.on_run_start(config=cfg, config_name=config_name)
        ret = run_job(
            hydra_context=HydraContext(config_loader=self.hydra.config_loader, callbacks=callbacks),
            task_function=self.task,
            config=cfg,
            job_dir_key="hydra.run.dir",
            job_subdir_key=None,
            configure_logging=True,
        )
        callbacks.on_run_end(config=cfg, config_name=config_name, job_return=ret)
        return ret.return_value
