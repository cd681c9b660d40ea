"""Start (or point at) the server that answers generation requests, and always stop it.

``open_server`` is a context manager: for launched servers it spawns the process in its own
process group with a parent-death signal (so even ``kill -9`` of mind_nemo takes the server with
it), waits for ``/health`` with a timeout, and on exit (normal, error or Ctrl-C) terminates the
whole group. For ``server.type=openai`` it only checks the endpoint and reads the API key from the
environment variable the config names.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from mind_nemo.core.errors import UserError
from mind_nemo.servers.commands import server_command
from mind_nemo.servers.config import ServerConfig, probe_paths
from mind_nemo.servers.embedded_model import resolve_model_path

log = logging.getLogger(__name__)


@dataclass
class ServerHandle:
    """A reachable endpoint; ``process`` is set when we launched it."""

    base_url: str
    model: str
    api_key: str | None = None
    process: subprocess.Popen | None = None
    log_path: Path | None = None

    def is_alive(self) -> bool:
        return self.process is None or self.process.poll() is None

    def log_tail(self, lines: int = 5) -> str:
        if not self.log_path or not self.log_path.exists():
            return ""
        tail = self.log_path.read_text(errors="replace").strip().splitlines()[-lines:]
        return " | ".join(line.strip() for line in tail)


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free right now on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """In the child before exec: own process group, and SIGKILL when the parent dies (Linux).

    SIGKILL, not SIGTERM: uvicorn-based servers shut down gracefully on SIGTERM, which means
    finishing every in-flight generation for a client that no longer exists."""
    os.setsid()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG


def wait_healthy(handle: ServerHandle, timeout_s: float, what: str) -> None:
    """Poll ``/health`` (then ``/v1/models``) until 200, the process exits, or time runs out."""
    # The standard library, not httpx: importing httpx cost ~0.15 s of every run's start-up.
    import http.client
    import urllib.request

    parts = urlsplit(handle.base_url)
    urls = [f"{parts.scheme}://{parts.netloc}{path}" for path in probe_paths(handle.base_url)]
    # Directly, as the client connects (no HTTP proxy from the environment), so "healthy"
    # means reachable the way requests will be sent.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not handle.is_alive():
            raise UserError(
                f"{what} exited during start-up (see {handle.log_path}): {handle.log_tail(2)}"
            )
        for url in urls:
            # HTTPError (not 2xx) is an OSError; suppress covers urlopen's errors too
            with (
                contextlib.suppress(OSError, http.client.HTTPException),
                opener.open(url, timeout=5.0) as response,
            ):
                if response.status == 200:
                    return
        time.sleep(0.5)
    raise UserError(
        f"{what} did not become healthy within {timeout_s:.0f}s "
        f"(server.startup_timeout_s); log: {handle.log_path}"
    )


def stop_process(process: subprocess.Popen, grace_s: float = 5.0) -> None:
    """Terminate the server's process group, then kill it if it lingers."""
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def api_key_from_env(cfg: ServerConfig) -> str | None:
    """Read the API key from the variable named in the config; the key never enters the config."""
    if not cfg.api_key_env:
        return None
    key = os.environ.get(cfg.api_key_env)
    if not key:
        raise UserError(f"environment variable {cfg.api_key_env} (server.api_key_env) is not set")
    return key


def check_server_config(cfg: ServerConfig) -> None:
    """Catch what the config cannot check itself (its values are checked when it is built):
    the API key's environment variable, before anything slow happens."""
    api_key_from_env(cfg)


@contextlib.contextmanager
def open_server(cfg: ServerConfig, log_dir: Path) -> Iterator[ServerHandle]:
    """Yield a healthy endpoint for ``cfg``; a launched server is stopped on the way out."""
    check_server_config(cfg)
    if cfg.type == "openai":
        assert cfg.base_url
        handle = ServerHandle(cfg.base_url.rstrip("/"), cfg.model, api_key_from_env(cfg))
        wait_healthy(handle, cfg.startup_timeout_s, f"server {cfg.base_url}")
        yield handle
        return
    model_path = resolve_model_path(cfg.model)
    port = cfg.port or free_port(cfg.host)
    argv = server_command(cfg, model_path, port)
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / "server.log"
    log.info("starting %s server: %s", cfg.type, " ".join(argv))
    env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
    with open(log_path, "ab") as log_file:
        try:
            process = subprocess.Popen(
                argv,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=_die_with_parent,
            )
        except FileNotFoundError:
            raise UserError(
                f"cannot start {cfg.type} server: {argv[0]!r} is not installed"
            ) from None
    handle = ServerHandle(f"http://{cfg.host}:{port}/v1", model_path, None, process, log_path)
    try:
        wait_healthy(handle, cfg.startup_timeout_s, f"{cfg.type} server")
        log.info("%s server ready at %s", cfg.type, handle.base_url)
        yield handle
    finally:
        stop_process(process)
