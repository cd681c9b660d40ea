"""The async client's failure policy, and the server commands/launch behaviour."""

from __future__ import annotations

import asyncio
import email.utils
import time

import pytest

from mind_nemo.core.errors import UserError
from mind_nemo.servers.client import OpenAICompatibleClient, RequestFailed, parse_retry_after
from mind_nemo.servers.commands import server_command
from mind_nemo.servers.config import ServerConfig
from mind_nemo.servers.launch import ServerHandle, check_server_config, open_server, wait_healthy


def test_parse_retry_after_seconds_and_dates():
    assert parse_retry_after("2.5") == 2.5
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < parse_retry_after(future) <= 31


def complete(url: str, **kwargs):
    async def go():
        async with OpenAICompatibleClient(url, "stub", **kwargs) as client:
            return await client.complete([{"role": "user", "content": "x = 7"}], {"max_tokens": 9})

    return asyncio.run(go())


def test_client_success_and_usage(stub_server):
    stub = stub_server()
    result = complete(stub.url)
    assert "7" in result.text and result.completion_tokens > 0 and result.attempts == 1


@pytest.mark.parametrize(
    ("fault", "reason"),
    [("429", "http_429"), ("503", "http_503"), ("malformed", "malformed_body"),
     ("drop", "connection_error"), ("timeout", "timeout")],
)  # fmt: skip
def test_client_retries_each_fault_then_fails_with_reason(stub_server, fault, reason):
    stub = stub_server("--fault-rate", "1", "--faults", fault, "--stall", "2")
    with pytest.raises(RequestFailed) as err:
        complete(stub.url, max_retries=2, backoff_initial_s=0.01, timeout_s=0.5)
    assert err.value.reason == reason
    assert err.value.attempts == 3


def test_client_does_not_retry_client_errors(stub_server):
    stub = stub_server("--fault-rate", "1", "--faults", "400")
    with pytest.raises(RequestFailed) as err:
        complete(stub.url, max_retries=3)
    assert err.value.reason == "http_400" and err.value.attempts == 1


def test_connection_refused_is_retried_then_reported():
    with pytest.raises(RequestFailed) as err:
        complete("http://127.0.0.1:9/v1", max_retries=1, backoff_initial_s=0.01)
    assert err.value.reason == "connection_error"


def test_gpu_server_commands_are_built_from_config():
    cfg = ServerConfig(type="vllm", tensor_parallel_size=8, num_nodes=2, context_window=8192)
    cmd = server_command(cfg, "/models/llama", 8000)
    assert cmd[:3] == ["vllm", "serve", "/models/llama"]
    assert cmd[cmd.index("--tensor-parallel-size") + 1] == "8"
    assert cmd[cmd.index("--pipeline-parallel-size") + 1] == "2"
    assert "--enable-prefix-caching" in cmd and cmd[cmd.index("--host") + 1] == "127.0.0.1"
    sg = server_command(ServerConfig(type="sglang", tensor_parallel_size=4), "m", 9)
    assert sg[1:3] == ["-m", "sglang.launch_server"] and sg[sg.index("--tp") + 1] == "4"
    trt = server_command(ServerConfig(type="trtllm", tensor_parallel_size=8, num_nodes=2), "m", 9)
    assert trt[0] == "trtllm-llmapi-launch" and trt[1] == "trtllm-serve"
    assert trt[trt.index("--tp_size") + 1] == "8"
    local = server_command(ServerConfig(), "/m", 5)
    assert "serve" in local and "--continuous-batching" in local
    with pytest.raises(UserError, match="type='magic': must be one of"):  # refused when built
        server_command(ServerConfig(type="magic"), "m", 1)


def test_api_key_comes_from_the_named_environment_variable(monkeypatch):
    cfg = ServerConfig(type="openai", model="m", base_url="http://h/v1", api_key_env="MY_KEY")
    with pytest.raises(UserError, match="MY_KEY"):
        check_server_config(cfg)
    monkeypatch.setenv("MY_KEY", "sk-secret")
    check_server_config(cfg)


def test_missing_server_binary_is_one_clear_error(tmp_path):
    cfg = ServerConfig(type="vllm", model=str(tmp_path))
    with pytest.raises(UserError, match="'vllm' is not installed"), open_server(cfg, tmp_path):
        pass


def test_startup_timeout_and_early_exit_are_clear_errors(tmp_path):
    import subprocess
    import sys

    with open(tmp_path / "server.log", "w") as log:
        dead = subprocess.Popen(
            [sys.executable, "-c", "print('bad flag'); raise SystemExit(1)"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        dead.wait()
    handle = ServerHandle("http://127.0.0.1:9/v1", "m", None, dead, tmp_path / "server.log")
    with pytest.raises(UserError, match="exited during start-up.*bad flag"):
        wait_healthy(handle, 5, "vllm server")
    with pytest.raises(UserError, match="did not become healthy within 1s"):
        wait_healthy(ServerHandle("http://127.0.0.1:9/v1", "m"), 1, "server")


def test_start_up_wait_and_circuit_breaker_probe_the_same_paths(monkeypatch):
    """Behind a path prefix, both probers ask ``<prefix>/health`` first, then
    ``<prefix>/v1/models``; a server whose health check is missing is up by its model list.
    Both go to the server directly, as requests do, whatever proxy the environment names."""
    import http.server
    import threading

    from mind_nemo.servers.client import CircuitBreaker
    from mind_nemo.servers.config import probe_paths

    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            status = 200 if self.path == "/proxy/v1/models" else 404
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/proxy/v1/"
    for name in ("http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    try:
        assert probe_paths(base) == ("/proxy/health", "/proxy/v1/models")
        assert probe_paths("https://h/v1") == ("/health", "/v1/models")
        wait_healthy(ServerHandle(base, "m"), 5, "server")
        assert seen == ["/proxy/health", "/proxy/v1/models"]
        seen.clear()

        async def probe() -> bool:
            breaker = CircuitBreaker(base)
            try:
                return await breaker._probe_once()
            finally:
                await breaker.aclose()

        # a 404 from the health check already proves the server answers
        assert asyncio.run(probe()) is True
        assert seen == ["/proxy/health"]
    finally:
        server.shutdown()
        server.server_close()
