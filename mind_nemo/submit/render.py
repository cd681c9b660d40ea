"""Render sbatch scripts from the template files next to this module, and check them.

The scripts' shape lives in ``templates/*.sbatch.j2`` (Jinja2, one file per kind of job), not in
Python strings: what varies is data (argv lists, ``#SBATCH`` directives, setup lines), and every
value that reaches the shell goes through ``shlex.quote``. ``#SBATCH`` lines are not parsed by a
shell, so their values are checked for whitespace instead. ``check_bash`` runs ``bash -n`` on a
rendered script, which is what the dry run and the tests rely on.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import jinja2

from mind_nemo.core.errors import UserError
from mind_nemo.submit.config import Resources, SlurmConfig

TEMPLATES = Path(__file__).parent / "templates"
_SAFE_DIRECTIVE = re.compile(r"^--[a-z][a-z-]*(=\S+)?$")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["q"] = lambda value: shlex.quote(str(value))
    env.filters["shjoin"] = lambda argv: " ".join(shlex.quote(str(a)) for a in argv)
    return env


_ENV = _environment()


def render(template: str, **context: Any) -> str:
    """``templates/<template>`` filled with ``context``; a missing variable is an error."""
    return _ENV.get_template(template).render(**context)


def directives(res: Resources, defaults: SlurmConfig, extra: list[str] | None = None) -> list[str]:
    """``#SBATCH`` flags for one job: its resources, cluster defaults where it leaves them out."""
    flags: list[str] = []
    for key in ("partition", "account", "qos"):
        value = getattr(res, key) or getattr(defaults, key)
        if value:
            flags.append(f"--{key}={value}")
    if res.time:
        flags.append(f"--time={res.time}")
    flags += [f"--nodes={res.nodes}", f"--ntasks-per-node={res.ntasks_per_node}"]
    flags.append(f"--cpus-per-task={res.cpus_per_task}")
    if res.gpus_per_node:
        flags.append(f"--gpus-per-node={res.gpus_per_node}")
    if res.mem:
        flags.append(f"--mem={res.mem}")
    if res.exclusive:
        flags.append("--exclusive")
    flags += list(res.extra) + list(extra or [])
    for flag in flags:
        if not _SAFE_DIRECTIVE.match(flag):
            raise UserError(
                f"sbatch flag {flag!r} must look like --name or --name=value without spaces"
            )
    return flags


def check_bash(script: str, name: str) -> None:
    """``bash -n`` on a rendered script: a syntax error is a bug worth one clear line."""
    result = subprocess.run(
        ["bash", "-n"], input=script, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise UserError(f"rendered script {name} is not valid bash: {result.stderr.strip()}")
