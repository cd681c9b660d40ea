"""The HTTP/1.1 transport against real servers: aiohttp's web server (chunked, gzip, keep-alive,
``Connection: close``) and the standard library's HTTP/1.0 server, plus the failures the
client's retry policy depends on telling apart (refused, dropped before answering, cut
mid-answer, too slow)."""

from __future__ import annotations

import asyncio
import gzip
import http.server
import json
import socket
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator

import pytest
from aiohttp import web

from mind_nemo.servers.http import BrokenAnswer, ConnectFailed, Disconnected, HttpPool

BODY = {"answer": "Teacher: 3/4 + 1/4 = 1. " * 200}


def _app(seen: list[web.Request]) -> web.Application:
    async def plain(request: web.Request) -> web.Response:
        seen.append(request)
        return web.json_response({"echo": await request.json(), **BODY})

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        text = json.dumps(BODY).encode()
        for i in range(0, len(text), 97):
            await response.write(text[i : i + 97])
        await response.write_eof()
        return response

    async def gzipped(request: web.Request) -> web.Response:
        return web.Response(body=gzip.compress(json.dumps(BODY).encode()),
                            headers={"Content-Encoding": "gzip"})  # fmt: skip

    async def closing(request: web.Request) -> web.Response:
        return web.json_response(BODY, headers={"Connection": "close"})

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response(BODY)

    async def cut(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": "100000"})
        await response.prepare(request)
        await response.write(b'{"half": "')
        assert request.transport is not None
        request.transport.close()
        return response

    async def retry_later(request: web.Request) -> web.Response:
        return web.Response(status=429, headers={"Retry-After": "7"}, text="busy")

    app = web.Application()
    app.add_routes([web.post("/v1/plain", plain), web.get("/chunked", chunked),
                    web.get("/gzip", gzipped), web.get("/close", closing), web.get("/slow", slow),
                    web.get("/cut", cut), web.get("/busy", retry_later)])  # fmt: skip
    return app


def with_server(test: Callable[[str, list[web.Request]], Awaitable[None]]) -> None:
    """Run ``test(url, requests_seen)`` in a fresh event loop beside the aiohttp server."""

    async def main() -> None:
        seen: list[web.Request] = []
        runner = web.AppRunner(_app(seen))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            await test(f"http://127.0.0.1:{port}/v1", seen)
        finally:
            await runner.cleanup()

    asyncio.run(main())


def test_json_post_is_answered_and_connections_are_reused() -> None:
    async def check(url: str, seen: list[web.Request]) -> None:
        pool = HttpPool(url, headers={"Authorization": "Bearer k"}, max_connections=4)
        payload = {"messages": [{"role": "user", "content": "é ∑ 3/4"}]}
        answers = await asyncio.gather(*(
            pool.request("POST", "/v1/plain", json.dumps(payload).encode(), timeout_s=10)
            for _ in range(40)
        ))  # fmt: skip
        await pool.aclose()
        assert {a.status for a in answers} == {200}
        assert all(json.loads(a.body) == {"echo": payload, **BODY} for a in answers)
        assert seen[0].headers["Authorization"] == "Bearer k"
        assert seen[0].headers["Host"] == url.split("/")[2]
        # 40 requests, at most 4 at a time: only 4 connections were ever opened
        assert len({id(r.transport) for r in seen}) <= 4

    with_server(check)


def test_chunked_gzip_and_close_framings() -> None:
    async def check(url: str, seen: list[web.Request]) -> None:
        pool = HttpPool(url)
        for path in ("/chunked", "/gzip", "/close", "/chunked"):
            answer = await pool.request("GET", path, timeout_s=10)
            assert json.loads(answer.body) == BODY, path
        await pool.aclose()

    with_server(check)


def test_retry_after_header_reaches_the_caller() -> None:
    async def check(url: str, seen: list[web.Request]) -> None:
        pool = HttpPool(url)
        answer = await pool.request("GET", "/busy", timeout_s=10)
        await pool.aclose()
        assert (answer.status, answer.headers["retry-after"], answer.body) == (429, "7", b"busy")

    with_server(check)


def test_timeout_then_the_pool_still_works() -> None:
    async def check(url: str, seen: list[web.Request]) -> None:
        pool = HttpPool(url, max_connections=1)
        with pytest.raises(TimeoutError):
            await pool.request("GET", "/slow", timeout_s=0.3)
        answer = await pool.request(
            "GET", "/gzip", timeout_s=10
        )  # the timed-out connection is gone
        await pool.aclose()
        assert json.loads(answer.body) == BODY

    with_server(check)


def test_cut_mid_answer_is_a_broken_answer() -> None:
    async def check(url: str, seen: list[web.Request]) -> None:
        pool = HttpPool(url)
        with pytest.raises(BrokenAnswer):
            await pool.request("GET", "/cut", timeout_s=10)
        await pool.aclose()

    with_server(check)


def test_refused_connection_is_connect_failed() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def check() -> None:
        pool = HttpPool(f"http://127.0.0.1:{port}")
        await pool.request("GET", "/", timeout_s=5)

    with pytest.raises(ConnectFailed, match="Connect|refused|Errno"):
        asyncio.run(check())


@pytest.fixture
def dropping_server() -> Iterator[tuple[str, list[int]]]:
    """Answers the first request on each connection, then closes it without a word (what a
    server does to a kept-alive connection it has timed out)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[int] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(1)
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                conn.recv(65536)  # the next request on this connection: dropped unanswered

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", accepted
    listener.close()


def test_kept_alive_connection_dropped_by_the_server_is_disconnected(
    dropping_server: tuple,
) -> None:
    url, accepted = dropping_server

    async def check() -> None:
        pool = HttpPool(url, max_connections=1)
        assert (await pool.request("GET", "/", timeout_s=5)).body == b"ok"
        with pytest.raises(Disconnected):
            await pool.request("GET", "/", timeout_s=5)
        assert (await pool.request("GET", "/", timeout_s=5)).body == b"ok"  # a new connection
        await pool.aclose()

    asyncio.run(check())
    assert len(accepted) == 2


class _Http10(http.server.BaseHTTPRequestHandler):
    """The standard library's server: HTTP/1.0, no keep-alive, body ends with the connection."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(json.dumps(BODY).encode())

    def log_message(self, *args: object) -> None:
        pass


def test_http10_server_without_length() -> None:
    httpd = http.server.HTTPServer(("127.0.0.1", 0), _Http10)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()

    async def check() -> None:
        pool = HttpPool(f"http://127.0.0.1:{httpd.server_port}")
        for _ in range(3):
            answer = await pool.request("GET", "/", timeout_s=10)
            assert json.loads(answer.body) == BODY
        await pool.aclose()

    try:
        asyncio.run(check())
    finally:
        httpd.shutdown()


def test_https_with_a_private_ca_via_ssl_cert_file(tmp_path, monkeypatch):
    """An ``https`` endpoint signed by a private CA: certificates are checked by default (an
    unknown issuer is a connect failure, not a silent downgrade), and the standard
    ``SSL_CERT_FILE`` variable names the CA bundle to trust, as the README says."""
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("no openssl binary to make a test certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)

    async def main() -> tuple[type[Exception] | None, int]:
        runner = web.AppRunner(_app([]))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        url = f"https://127.0.0.1:{port}"
        try:
            untrusted = HttpPool(url)
            refused: type[Exception] | None = None
            try:
                await untrusted.request("GET", "/chunked", timeout_s=10)
            except ConnectFailed as err:
                refused = type(err)
            finally:
                await untrusted.aclose()
            monkeypatch.setenv("SSL_CERT_FILE", str(cert))
            trusted = HttpPool(url)
            try:
                response = await trusted.request("GET", "/chunked", timeout_s=10)
            finally:
                await trusted.aclose()
            assert json.loads(response.body) == BODY
            return refused, response.status
        finally:
            await runner.cleanup()

    assert asyncio.run(main()) == (ConnectFailed, 200)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="Task.cancelling() is Python 3.11+")
def test_a_cancelled_connect_is_never_swallowed():
    """Cancelling a request while its connect to a refused port finishes must cancel it: the
    circuit breaker's prober is stopped this way, and a swallowed cancellation (as
    ``asyncio.wait_for`` can on Python 3.10-3.11) kept it probing a dead server forever."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: connecting is refused at once

    async def main() -> tuple[int, int]:
        pool = HttpPool(f"http://127.0.0.1:{port}")
        cancelled = swallowed = 0
        for i in range(300):
            task = asyncio.ensure_future(pool.request("GET", "/health", timeout_s=5))
            for _ in range(i % 6):  # cancel at a different step of the connect each time
                await asyncio.sleep(0)
            task.cancel()
            try:
                await task
                swallowed += 1
            except asyncio.CancelledError:
                cancelled += 1
            except ConnectFailed:  # fine if it failed before the cancel came; not if after
                swallowed += task.cancelling() > 0
        await pool.aclose()
        return cancelled, swallowed

    cancelled, swallowed = asyncio.run(main())
    assert swallowed == 0
    assert cancelled > 0
