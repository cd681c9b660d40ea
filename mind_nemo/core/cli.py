"""Shared Hydra entry-point plumbing: every bad override is refused, in one line, before any work.

Hydra reports a bad override or an unknown config option in six to fifteen lines (search paths,
object types, a hint about HYDRA_FULL_ERROR). Before handing control to ``@hydra.main`` we
compose the same config once with the same overrides and check it the way the stage will
(:mod:`mind_nemo.core.config`): unknown keys, including ones added with ``+``/``++`` (Hydra
adds those with the struct flag off, so they would otherwise slip through), and values outside
their dataclass's ranges. A failure prints one line and exits with status 2, before Hydra makes
a run folder. Command lines with Hydra flags (``--help``, ``--cfg``, ``-m`` ...) go straight to
Hydra; the stage's own :func:`~mind_nemo.core.config.typed_config` still refuses the same
mistakes there.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from mind_nemo.core.config import first_bad_value, unknown_keys
from mind_nemo.core.package_files import CONFIG_MODULE

#: What `@hydra.main(config_path=...)` takes for the same configs.
CONFIG_PATH = f"pkg://{CONFIG_MODULE}"
_NOISE = ("full_key:", "reference_type=", "object_type=", "Set the environment variable",
          "Config search path", "provider=")  # fmt: skip
#: Hydra's hint after "Key 'x' not in 'SomeConfig'"; wrong there, since ``+x`` is refused too.
_APPEND_HINT = "To append to your config use +"


def one_line(message: str) -> str:
    """Squeeze a Hydra/OmegaConf error message into one informative line."""
    parts: list[str] = []
    options: list[str] = []
    for raw in message.splitlines():
        line = raw.strip()
        if not line or any(line.startswith(n) for n in _NOISE):
            continue
        if raw.startswith("\t"):
            options.append(line)
        elif line.startswith("Available options"):
            parts.append("available:")
        else:
            parts.append(line.rstrip("."))
    text = "; ".join(parts).replace("available:;", "available:")
    if options:
        text = f"{text} {', '.join(options)}"
    return text


def config_problem(cfg: DictConfig) -> str | None:
    """A composed config's first unknown key or out-of-range value, or None if it is fine."""
    unknown = unknown_keys(cfg)
    return unknown[0] if unknown else first_bad_value(cfg)


def compose_config(config_name: str, overrides: list[str]) -> DictConfig:
    """``config_name`` composed with ``overrides``, outside any Hydra app (Hydra errors raise)."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
            return compose(config_name=config_name, overrides=overrides)
    finally:
        GlobalHydra.instance().clear()


def composition_error(err: Exception) -> str:
    """The one line to print for a Hydra composition failure (a bad override or option)."""
    messages = [str(err)]
    if err.__cause__ is not None and str(err.__cause__) not in messages[0]:
        messages.append(str(err.__cause__))
    text = "; ".join(filter(None, map(one_line, messages))) or type(err).__name__
    if "' not in '" in text:  # a dataclass lacks the key: Hydra's "use +key" would fail too
        text = "; ".join(p for p in text.split("; ") if not p.startswith(_APPEND_HINT))
    return text


def validate_overrides(config_name: str, overrides: list[str]) -> str | None:
    """Compose the config with ``overrides`` and check it; a one-line error or None if fine."""
    try:
        cfg = compose_config(config_name, overrides)
    except Exception as err:  # Hydra raises several unrelated types for user mistakes
        return composition_error(err)
    return config_problem(cfg)


def _append_means_set(args: list[str], error: str) -> list[str] | None:
    """``+key=v`` on a key the schema already has means "set it": rewrite it as ``++key=v``."""
    marker = "An item is already at '"
    if marker not in error:
        return None
    key = error.split(marker, 1)[1].split("'", 1)[0]
    rewritten = [f"+{a}" if a.startswith(f"+{key}=") else a for a in args]
    return rewritten if rewritten != args else None


def checked_overrides(config_name: str, args: list[str]) -> tuple[list[str], str | None]:
    """``args`` as Hydra should get them (``+key`` on an existing key becomes ``++key``), and
    the first problem with them, or None."""
    error = validate_overrides(config_name, args)
    while error and (rewritten := _append_means_set(args, error)):
        args = rewritten
        error = validate_overrides(config_name, args)
    return args, error


def run_hydra_main(config_name: str, hydra_main: Callable[[], Any]) -> None:
    """Run the ``@hydra.main`` function ``hydra_main`` for ``config_name`` on ``sys.argv``.

    A plain command line (overrides only) is composed once, checked, and run as Hydra's own
    ``run_job`` would run it (run folder, job log, ``HydraConfig``): ``@hydra.main`` alone
    composes twice more (once to learn the run mode, once to run), about 0.15 s each, which is
    a tenth of a small synthesize run's start-up. Command lines with Hydra flags go to
    ``@hydra.main`` unchanged.
    """
    args = sys.argv[1:]
    task = getattr(hydra_main, "__wrapped__", None)
    if any(arg.startswith("-") for arg in args) or task is None:
        hydra_main()
        return
    from mind_nemo.core.hydra_run import HydraApp

    app = HydraApp(task)
    cfg, error = app.compose(config_name, args)
    while error and (rewritten := _append_means_set(args, error)):
        args = rewritten
        cfg, error = app.compose(config_name, args)
    if error is None and cfg is not None:
        error = config_problem(app.task_config(cfg))
    if error or cfg is None:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    sys.argv[1:] = args
    app.run(config_name, cfg)


def exit_without_teardown(status: int = 0) -> NoReturn:
    """End the process at once, skipping the interpreter's teardown.

    At exit Python frees every module and object one by one. For the synthesize stage (a
    tokenizer, numpy, the last batch of encodings) that took 0.04-0.17 CPU-s, several per cent
    of a 2,000-request run, and every shard of a cluster run pays it. Call this only once the
    stage has closed everything it wrote (its files are synced and renamed by then): it flushes
    stdout, stderr and the logging handlers (Hydra's job log), and runs no ``atexit`` hooks.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: what Python's own exit reports too
            status = status or 120
    logging.shutdown()
    os._exit(status)
