"""The HTTP/1.1 transport under our one client: kept-alive connections to one server, bytes in
and out, nothing more.

Generation sends one small POST per context and reads one JSON answer, hundreds at a time, to a
single server. A general HTTP library pays for what that traffic never uses (cookies, redirects,
proxies, multipart, per-request trace hooks and header objects): measured against the bench's
fake server, aiohttp took 0.38-0.43 ms of CPU per request and 0.13 s to import, this transport
about 0.14 ms (``bench/bench_engine_peers.py``). On two cores that CPU is taken from the
planner, and at hundreds of nodes it is a core each.

What it does: ``http`` and ``https`` (the default certificate checks; a private CA's bundle is
named by the standard ``SSL_CERT_FILE`` variable), up to
``max_connections`` open connections kept alive and reused, bodies framed by
``Content-Length``, ``Transfer-Encoding: chunked`` or the end of the connection, gzip/deflate
bodies decoded (we ask for none), ``Connection: close`` honoured, a connect timeout and a
per-request timeout. What goes wrong is raised as one of three errors, so the client's retry
policy (:mod:`mind_nemo.servers.client`) can tell an answer from no answer. It does not go
through an HTTP proxy (``HTTPS_PROXY`` is not read): the server is reached directly.
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


class HttpError(Exception):
    """No usable answer came back (base of the errors below)."""


class ConnectFailed(HttpError):
    """The connection could not be made: refused, unreachable, name not found, timed out."""


class Disconnected(HttpError):
    """The server closed the connection before any byte of an answer: typically a kept-alive
    connection it had already dropped. Sending again at once is the right move."""


class BrokenAnswer(HttpError):
    """The connection failed part-way through an answer, or the answer is not HTTP."""


@dataclass
class Response:
    status: int
    #: Header names in lower case (a repeated header keeps its last value).
    headers: dict[str, str]
    body: bytes


class _Parser:
    """Incremental parser of one HTTP/1.1 response; ``feed`` returns the response when whole."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.head: tuple[int, dict[str, str]] | None = None
        self.length: int | None = None  # Content-Length, when framed by it
        self.chunked = False
        self.chunks: list[bytes] = []
        self.until_close = False

    def feed(self, data: bytes) -> Response | None:
        self.buffer += data
        while self.head is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return None
            lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            del self.buffer[: end + 4]
            status, headers = _parse_head(lines)
            if 100 <= status < 200:  # an interim answer (100 Continue): the real one follows
                continue
            self.head = (status, headers)
            if status in (204, 304):
                self.length = 0
            elif "chunked" in headers.get("transfer-encoding", ""):
                self.chunked = True
            elif "content-length" in headers:
                try:
                    self.length = int(headers["content-length"])
                except ValueError:
                    raise BrokenAnswer(
                        f"bad Content-Length {headers['content-length']!r}"
                    ) from None
            else:
                self.until_close = True
        if self.length is not None:
            if len(self.buffer) < self.length:
                return None
            body = bytes(self.buffer[: self.length])
            del self.buffer[: self.length]
            return self._response(body)
        if self.chunked:
            return self._feed_chunks()
        return None  # read until the server closes

    def _feed_chunks(self) -> Response | None:
        while True:
            end = self.buffer.find(b"\r\n")
            if end < 0:
                return None
            size_text = bytes(self.buffer[:end]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise BrokenAnswer(f"bad chunk size {size_text[:20]!r}") from None
            if size == 0:  # the last chunk; optional trailer lines, then an empty line
                if self.buffer[end + 2 : end + 4] == b"\r\n":
                    del self.buffer[: end + 4]
                else:
                    trailers_end = self.buffer.find(b"\r\n\r\n", end + 2)
                    if trailers_end < 0:
                        return None
                    del self.buffer[: trailers_end + 4]
                return self._response(b"".join(self.chunks))
            if len(self.buffer) < end + 2 + size + 2:
                return None
            self.chunks.append(bytes(self.buffer[end + 2 : end + 2 + size]))
            del self.buffer[: end + 2 + size + 2]

    def at_close(self) -> Response | None:
        """The connection ended: the answer, if it was framed by the end of the connection."""
        if self.head is not None and self.until_close:
            return self._response(bytes(self.buffer))
        return None

    def _response(self, body: bytes) -> Response:
        assert self.head is not None
        status, headers = self.head
        encoding = headers.get("content-encoding", "identity")
        if encoding in ("gzip", "deflate"):
            try:
                body = zlib.decompress(body, wbits=47)  # 47: zlib or gzip, detected
            except zlib.error as err:
                raise BrokenAnswer(f"body is not valid {encoding}: {err}") from None
        return Response(status, headers, body)

    @property
    def reusable(self) -> bool:
        """Whether the connection can carry the next request after this answer."""
        return self.head is not None and not self.until_close and not self.buffer


def _parse_head(lines: list[str]) -> tuple[int, dict[str, str]]:
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise BrokenAnswer(f"not an HTTP answer: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if parts[0] == "HTTP/1.0" and headers.get("connection", "").lower() != "keep-alive":
        headers["connection"] = "close"
    return int(parts[1]), headers


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection; carries one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = _Parser()
        self.waiter: asyncio.Future[Response] | None = None
        self.closed = False
        self.got_bytes = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.waiter is None or self.waiter.done():
            self.close()  # bytes nobody asked for: the connection is not in a known state
            return
        self.got_bytes = True
        try:
            response = self.parser.feed(data)
        except HttpError as err:
            self.waiter.set_exception(err)
            self.close()
            return
        if response is not None:
            self.waiter.set_result(response)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if (response := self.parser.at_close()) is not None:
            waiter.set_result(response)
        elif not self.got_bytes:
            waiter.set_exception(Disconnected("server closed the connection before answering"))
        else:
            detail = f": {type(exc).__name__}: {exc}" if exc else ""
            waiter.set_exception(BrokenAnswer(f"connection lost mid-answer{detail}"))

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def send(self, data: bytes) -> asyncio.Future[Response]:
        assert self.transport is not None
        self.parser = _Parser()
        self.got_bytes = False
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.waiter


class HttpPool:
    """Requests to one server (``base_url``'s scheme, host and port) over reused connections.

    Created and used inside one running event loop. ``headers`` go with every request.
    """

    def __init__(
        self,
        base_url: str,
        *,
        headers: dict[str, str] | None = None,
        max_connections: int = 256,
        connect_timeout_s: float = 30.0,
        keep_alive: bool = True,
    ) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.host = url.hostname
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.ssl = ssl.create_default_context() if url.scheme == "https" else None
        fixed = {
            "Host": url.netloc.rpartition("@")[2],
            "User-Agent": "mind_nemo",
            "Accept-Encoding": "identity",
            **(headers or {}),
        }
        if not keep_alive:
            fixed["Connection"] = "close"
        self._fixed = "".join(f"{k}: {v}\r\n" for k, v in fixed.items())
        self.keep_alive = keep_alive
        self.connect_timeout_s = connect_timeout_s
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(max_connections)
        self._open: set[_Connection] = set()

    async def request(
        self, method: str, path: str, body: bytes | None = None, *, timeout_s: float
    ) -> Response:
        """Send one request and return the whole answer; raise :class:`HttpError` or
        ``TimeoutError`` (no answer within ``timeout_s``, connecting included)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        async with self._slots:
            connection = await self._connection(deadline)
            head = f"{method} {path} HTTP/1.1\r\n{self._fixed}"
            if body is not None:
                head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            waiter = connection.send(head.encode("latin-1") + b"\r\n" + (body or b""))
            timer = loop.call_at(deadline, _expire, waiter)
            try:
                response = await waiter
            except BaseException:
                connection.close()
                self._open.discard(connection)
                raise
            finally:
                timer.cancel()
            if (
                self.keep_alive
                and connection.parser.reusable
                and not connection.closed
                and response.headers.get("connection", "").lower() != "close"
            ):
                self._idle.append(connection)
            else:
                connection.close()
                self._open.discard(connection)
            return response

    async def _connection(self, deadline: float) -> _Connection:
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed:
                return connection
            self._open.discard(connection)
        loop = asyncio.get_running_loop()
        timeout = min(self.connect_timeout_s, max(0.0, deadline - loop.time()))
        connect = asyncio.ensure_future(
            loop.create_connection(
                _Connection, self.host, self.port, ssl=self.ssl,
                server_hostname=self.host if self.ssl else None,
            )
        )  # fmt: skip
        # Not asyncio.wait_for: on Python 3.10-3.11 it can swallow a cancellation that arrives
        # as the connect finishes (a refused port finishes at once), and a cancelled prober
        # then kept probing a dead server forever. asyncio.wait never swallows one.
        try:
            done, _ = await asyncio.wait({connect}, timeout=timeout)
        except asyncio.CancelledError:
            _discard(connect)
            raise
        if not done:
            _discard(connect)
            raise ConnectFailed(f"TimeoutError: no connection within {timeout:.1f}s")
        try:
            _, connection = connect.result()
        except (OSError, ssl.SSLError) as err:
            raise ConnectFailed(f"{type(err).__name__}: {err}") from None
        self._open.add(connection)
        return connection

    async def aclose(self) -> None:
        for connection in list(self._open):
            connection.close()
        self._open.clear()
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports run their close callbacks


def _discard(connect: asyncio.Future[Any]) -> None:
    """Stop a connect we no longer wait for; close its connection if it was made after all."""
    if not connect.done():
        connect.cancel()
    elif not connect.cancelled() and connect.exception() is None:
        transport, _ = connect.result()
        transport.close()


def _expire(waiter: asyncio.Future[Response]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())
