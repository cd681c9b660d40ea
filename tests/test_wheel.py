"""The built wheel, installed without the checkout, is a working mind_nemo.

``make install`` installs the repository in editable mode, so every other test imports the source
tree and reads its data files in place: a module or data file that setup.py forgets to ship would
pass them all and break every real install. Here the wheel is built from a copy of the source
files (``pip wheel --no-deps --no-build-isolation``: offline, never pulls torch), installed with
``pip install --no-deps --target`` into a scratch folder, and run from there with the working
directory outside the repository. Two guards make "from there" a fact rather than a hope: a
``sitecustomize`` on PYTHONPATH drops the editable install's import hook from ``sys.meta_path``,
and an audit hook logs any file the child processes open or list under the checkout's
``mind_nemo/`` or ``hydra_configs/``; every run asserts that log stayed empty.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from mind_nemo.servers.launch import free_port
from tests.helpers import REPO, read_rows

pytestmark = pytest.mark.integration

#: Every ``python -m`` entry point: the stages, the merge kept at the top, the stub server and
#: the helpers the SLURM job scripts call. A module with a ``__main__`` guard must be listed here.
ENTRY_POINTS = (
    "mind_nemo.synthesize",
    "mind_nemo.merge",
    "mind_nemo.filter",
    "mind_nemo.report",
    "mind_nemo.mix",
    "mind_nemo.pretrain",
    "mind_nemo.evaluate",
    "mind_nemo.evaluate.compare",
    "mind_nemo.submit",
    "mind_nemo.import_nemo_skills",
    "mind_nemo.servers.stub",
    "mind_nemo.submit.serve",
    "mind_nemo.submit.health",
    "mind_nemo.submit.shard_done",
    "mind_nemo.submit.step",
)

#: The folders whose files the wheel ships, and where each lands inside it.
SHIPPED = {"mind_nemo": "mind_nemo", "hydra_configs": "mind_nemo/hydra_configs"}

GUARD = '''\
"""Test guard (tests/test_wheel.py): no import or file read may reach the repository checkout."""
import os
import sys

sys.meta_path[:] = [
    f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")
]
_FORBIDDEN = tuple(p for p in os.environ["MIND_NEMO_FORBIDDEN"].split(os.pathsep) if p)
_LOG = os.environ["MIND_NEMO_LEAK_LOG"]


def _audit(event, args):
    if event not in ("open", "os.listdir", "os.scandir") or not args:
        return
    if not isinstance(args[0], (str, bytes, os.PathLike)):
        return
    path = os.path.abspath(os.fsdecode(args[0]))
    if any(path == p or path.startswith(p + os.sep) for p in _FORBIDDEN):
        with open(_LOG, "a") as f:
            f.write(f"{os.getpid()} {event} {path}\\n")


sys.addaudithook(_audit)
'''


@dataclass
class Installed:
    wheel: Path
    scratch: Path
    workdir: Path
    env: dict[str, str]
    leak_log: Path

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """``python args...`` against the scratch install; fails if it touched the checkout."""
        result = subprocess.run(
            [sys.executable, *args],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        self.assert_no_leaks()
        return result

    def assert_no_leaks(self) -> None:
        leaks = self.leak_log.read_text() if self.leak_log.exists() else ""
        assert not leaks, f"the installed copy reached into the checkout:\n{leaks[:3000]}"


def source_files() -> list[str]:
    """The files a commit of this working tree would ship: tracked or new, not ignored."""
    if not (REPO / ".git").exists() or shutil.which("git") is None:
        pytest.skip("needs a git checkout to know which files are part of the source")
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *SHIPPED],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted(p for p in out.split("\0") if p and (REPO / p).is_file())


def in_wheel(path: str) -> str:
    """Where a source file lands in the wheel (hydra_configs/ is mind_nemo.hydra_configs)."""
    top, _, rest = path.partition("/")
    return f"{SHIPPED[top]}/{rest}"


def pip(*args: str, cwd: Path) -> None:
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "pip", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"pip {args[0]} failed:\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    """The wheel built from a copy of the source and installed into a scratch folder."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    for name in ("setup.py", "pyproject.toml", *source_files()):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, src / name)
    # Built from the copy, so no stale build/ folder of the checkout can slip files in.
    pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(root / "dist"), ".", cwd=src)
    (wheel,) = (root / "dist").glob("mind_nemo-*.whl")
    scratch = root / "site"
    pip("install", "--no-deps", "--no-compile", "--target", str(scratch), str(wheel), cwd=root)
    guard = root / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(GUARD)
    workdir = root / "work"
    workdir.mkdir()
    leak_log = root / "leaks.log"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(scratch), str(guard)]),
        "MIND_NEMO_FORBIDDEN": os.pathsep.join(str(REPO / top) for top in SHIPPED),
        "MIND_NEMO_LEAK_LOG": str(leak_log),
        "TQDM_DISABLE": "1",
        "HF_HUB_OFFLINE": "1",
    }
    return Installed(wheel, scratch, workdir, env, leak_log)


def test_wheel_ships_every_source_and_data_file(installed):
    """Every package, module and data file (prompts, configs with nested groups, templates,
    sample corpora, eval fixtures, lm_tasks, READMEs) is in the wheel, and nothing else is."""
    expected = {in_wheel(p) for p in source_files()}
    with zipfile.ZipFile(installed.wheel) as wheel:
        shipped = {n for n in wheel.namelist() if ".dist-info/" not in n}
    missing = sorted(expected - shipped)
    assert not missing, f"{len(missing)} source files are not in the wheel: {missing[:40]}"
    extra = sorted(shipped - expected)
    assert not extra, f"the wheel ships files that are not in the source: {extra[:40]}"
    # The kinds of data file the code looks up at run time, so an empty match cannot pass.
    for pattern in (
        "mind_nemo/synthesize/prompts/*.yaml",
        "mind_nemo/hydra_configs/*.yaml",
        "mind_nemo/hydra_configs/experiment/base/*.yaml",
        "mind_nemo/data/*.jsonl",
        "mind_nemo/data/eval_fixtures/*/*/*/*.jsonl",
        "mind_nemo/evaluate/lm_tasks/*.yaml",
        "mind_nemo/*/README.md",
    ):
        assert any(Path(n).match(pattern) for n in shipped), f"nothing matches {pattern}"


def test_the_scratch_install_wins_over_the_editable_checkout(installed):
    probe = (
        "import importlib.util, sys, mind_nemo, mind_nemo.hydra_configs\n"
        "from importlib.metadata import distribution\n"
        "print(mind_nemo.__file__)\n"
        "print(mind_nemo.hydra_configs.__file__)\n"
        "print(distribution('mind_nemo').locate_file(''))\n"
        "print(importlib.util.find_spec('hydra_configs'))\n"
        "print(any('__editable__' in getattr(f, '__module__', '') for f in sys.meta_path))\n"
    )
    result = installed.run("-c", probe)
    assert result.returncode == 0, result.stderr
    package, configs, dist, top_level_configs, editable = result.stdout.split("\n")[:5]
    scratch = installed.scratch.resolve()
    assert Path(package).resolve() == scratch / "mind_nemo" / "__init__.py"
    assert Path(configs).resolve() == scratch / "mind_nemo" / "hydra_configs" / "__init__.py"
    assert Path(dist).resolve() == scratch
    assert top_level_configs == "None"  # the checkout's hydra_configs/ is not importable
    assert editable == "False"


def test_every_entry_point_is_listed(installed):
    """Each module with a ``__main__`` guard in the wheel is one of ENTRY_POINTS, and back."""
    found = set()
    with zipfile.ZipFile(installed.wheel) as wheel:
        for name in wheel.namelist():
            if name.endswith(".py") and 'if __name__ == "__main__":' in wheel.read(name).decode():
                module = name.removesuffix(".py").replace("/", ".")
                found.add(module.removesuffix(".__main__"))
    assert found == set(ENTRY_POINTS)


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_entry_point_help(installed, module):
    result = installed.run("-m", module, "--help")
    assert result.returncode == 0, f"{module} --help:\n{result.stdout[-2000:]}{result.stderr}"
    assert result.stdout.strip()


def test_serve_composes_the_installed_configs(installed):
    """The multi-node server helper reads the synthesize configs through the package."""
    overrides = ("server=openai", "server.base_url=http://127.0.0.1:1/v1", "server.model=stub")
    result = installed.run("-m", "mind_nemo.submit.serve", "--port", "1", "--", *overrides)
    assert result.returncode == 2, result.stderr
    assert "server.type=openai cannot span nodes" in result.stderr


def test_stub_synthesize_from_the_wheel(installed):
    """A real synthesize run on the packaged sample corpus against the installed stub server."""
    port = free_port()
    stub = subprocess.Popen(
        [sys.executable, "-m", "mind_nemo.servers.stub", "--port", str(port)],
        cwd=installed.workdir,
        env=installed.env,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert stub.poll() is None, f"the stub exited with status {stub.returncode}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                    break
            except (urllib.error.URLError, OSError):
                assert time.monotonic() < deadline, "the stub did not answer /health in 30 s"
                time.sleep(0.05)
        out = installed.workdir / "run"
        result = installed.run(
            "-m",
            "mind_nemo.synthesize",
            "+style=debate",
            "server=openai",
            f"server.base_url=http://127.0.0.1:{port}/v1",
            "server.model=stub",
            "server.tokenizer=embedded",
            "server.api_key_env=null",
            f"output_dir={out}",
            "limit=4",
        )
    finally:
        stub.kill()
        stub.wait()
    installed.assert_no_leaks()
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    shard = "shard-00000-of-00001"
    rows = read_rows(out / "conversations" / f"{shard}.jsonl")
    contexts = read_rows(out / "contexts" / f"{shard}.jsonl")
    assert len(contexts) == 4 and len(rows) == 4
    assert {r["conversational_style"] for r in rows} == {"debate"}
    assert {(r["document_id"], r["context_index"]) for r in rows} == {
        (c["document_id"], c["index"]) for c in contexts
    }
    assert all(r["model"] == "stub" and r["text"] and r["completion_tokens"] > 0 for r in rows)
    # The job scripts' completeness check agrees, run from the same install.
    done = installed.run("-m", "mind_nemo.submit.shard_done", str(out), "0", "1")
    assert done.returncode == 0, done.stderr
