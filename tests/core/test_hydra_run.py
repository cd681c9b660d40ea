"""A plain command line is composed once and run the way ``@hydra.main`` runs it.

:func:`mind_nemo.core.cli.run_hydra_main` bypasses ``@hydra.main`` for overrides-only command
lines (one composition instead of three). What Hydra's own run gives a stage must still be
there: the composed config without its ``hydra`` node, the run folder made from ``hydra.run.dir``,
the job log named after the task's module, ``HydraConfig`` set, and the same one-line refusals.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
import pytest
from hydra._internal.hydra import Hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from mind_nemo.core.cli import CONFIG_PATH, run_hydra_main
from mind_nemo.synthesize import config as _registers_synthesize_schema  # noqa: F401

SEEN: list[dict] = []


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="synthesize")
def fake_stage(cfg: DictConfig) -> None:
    SEEN.append({"cfg": cfg, "job": HydraConfig.get().job.name, "run_dir": Path.cwd()})


def test_one_composition_and_what_the_task_is_given(tmp_path, monkeypatch):
    calls = []
    real = Hydra.compose_config

    def counting(self, *args, **kwargs):
        calls.append(kwargs.get("config_name"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Hydra, "compose_config", counting)
    out = tmp_path / "run"
    monkeypatch.setattr(sys, "argv", ["prog", "+style=debate", f"output_dir={out}"])
    SEEN.clear()
    run_hydra_main("synthesize", fake_stage)
    assert calls == ["synthesize"]  # @hydra.main alone composes twice, our check once more
    [seen] = SEEN
    assert "hydra" not in seen["cfg"] and seen["cfg"].output_dir == str(out)
    assert seen["job"] == "test_hydra_run"  # the job log keeps the task module's name
    assert (out / "test_hydra_run.log").is_file()  # made in hydra.run.dir, as Hydra does


def test_a_bad_override_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    argv = ["prog", "+style=debate", "no_such_key=1", f"output_dir={tmp_path / 'x'}"]
    monkeypatch.setattr(sys, "argv", argv)
    SEEN.clear()
    with pytest.raises(SystemExit) as exit_info:
        run_hydra_main("synthesize", fake_stage)
    assert exit_info.value.code == 2 and SEEN == []
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "no_such_key" in err[0]
    assert not (tmp_path / "x").exists()  # refused before Hydra made the run folder


def test_plus_on_an_existing_key_still_sets_it(tmp_path, monkeypatch):
    out = tmp_path / "o"
    monkeypatch.setattr(sys, "argv", ["prog", "+style=debate", "+limit=3", f"output_dir={out}"])
    SEEN.clear()
    run_hydra_main("synthesize", fake_stage)
    assert SEEN[0]["cfg"].limit == 3


def test_exit_without_teardown_flushes_output_and_logs_and_skips_atexit(tmp_path):
    """The synthesize stage ends with :func:`exit_without_teardown`: buffered stdout and a
    log file handler must reach their files, the status must be kept, and no atexit hook (the
    teardown it skips) runs."""
    import subprocess

    log = tmp_path / "job.log"
    script = (
        "import atexit, logging, sys\n"
        "from mind_nemo.core.cli import exit_without_teardown\n"
        f"logging.basicConfig(filename={str(log)!r}, level=logging.INFO)\n"
        "logging.getLogger('x').info('logged line')\n"
        "atexit.register(lambda: print('atexit ran'))\n"
        "sys.stdout.write('no newline, still buffered')\n"
        "exit_without_teardown(3)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 3, out.stderr
    assert out.stdout == "no newline, still buffered"
    assert "logged line" in log.read_text()
