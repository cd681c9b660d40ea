"""Shared Hydra entry-point plumbing: one clear line for a bad override, not a wall of text.

Hydra reports a bad override or an unknown config option in six to fifteen lines (search paths,
object types, a hint about HYDRA_FULL_ERROR). Before handing control to ``@hydra.main`` we
compose the same config once with the same overrides; if that fails we print the substance of
Hydra's message on a single line and exit with status 2. Command lines with Hydra flags
(``--help``, ``--cfg``, ``-m`` ...) go straight to Hydra.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

from mind_nemo.core.package_files import CONFIG_MODULE

#: What `@hydra.main(config_path=...)` takes for the same configs.
CONFIG_PATH = f"pkg://{CONFIG_MODULE}"
_NOISE = ("full_key:", "reference_type=", "object_type=", "Set the environment variable",
          "Config search path", "provider=")  # fmt: skip


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


def validate_overrides(config_name: str, overrides: list[str]) -> str | None:
    """Compose the config with ``overrides``; return a one-line error or None if it is fine."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
            compose(config_name=config_name, overrides=overrides)
    except Exception as err:  # Hydra raises several unrelated types for user mistakes
        messages = [str(err)]
        if err.__cause__ is not None and str(err.__cause__) not in messages[0]:
            messages.append(str(err.__cause__))
        return "; ".join(filter(None, map(one_line, messages))) or type(err).__name__
    finally:
        GlobalHydra.instance().clear()
    return None


def _append_means_set(args: list[str], error: str) -> list[str] | None:
    """``+key=v`` on a key the schema already has means "set it": rewrite it as ``++key=v``."""
    marker = "An item is already at '"
    if marker not in error:
        return None
    key = error.split(marker, 1)[1].split("'", 1)[0]
    rewritten = [f"+{a}" if a.startswith(f"+{key}=") else a for a in args]
    return rewritten if rewritten != args else None


def run_hydra_main(config_name: str, hydra_main: Callable[[], Any]) -> None:
    """Validate ``sys.argv`` overrides for ``config_name``, then run the Hydra main."""
    args = sys.argv[1:]
    if not any(arg.startswith("-") for arg in args):
        error = validate_overrides(config_name, args)
        while error and (rewritten := _append_means_set(args, error)):
            args = rewritten
            error = validate_overrides(config_name, args)
        sys.argv[1:] = args
        if error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)
    hydra_main()
