"""One async client for OpenAI-compatible servers (chat and completions APIs).

Every LLM backend we support (transformers serve, vLLM, SGLang, TensorRT-LLM's trtllm-serve, hosted
endpoints) speaks this protocol, so generation needs exactly one client. It owns the failure
policy: each request has a timeout; 429, 5xx, timeouts, connection errors and malformed bodies
are retried with exponential backoff and full jitter (``Retry-After`` wins when the server sends
it); other 4xx answers fail at once. A request that exhausts its retries raises
:class:`RequestFailed` with a short reason, which the engine records instead of crashing.

A retry budget is for answers that are the row's own bad luck. An outage is not: with
``circuit_breaker=True`` a failure that is not an answer (refused or reset connection, DNS
failure, timeout) is first checked against the server itself with one shared probe, and while the
server is unreachable every request waits on a :class:`CircuitBreaker` instead of spending its
retries, so rows in flight when a server restarts are not written off. The transport is
:mod:`mind_nemo.servers.http`, kept-alive connections to the one server and nothing else, which
costs about a third of aiohttp's CPU per request (httpx's pool is slower still: it scans every
connection on every request).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import random
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from mind_nemo.servers.config import probe_paths
from mind_nemo.servers.http import Disconnected, HttpError, HttpPool

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


@dataclass
class Completion:
    """What came back for one request."""

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    latency_s: float
    attempts: int


class RequestFailed(Exception):
    """A request that could not be completed; ``reason`` is a short machine-friendly label."""

    def __init__(self, reason: str, detail: str = "", attempts: int = 1) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.attempts = attempts


class _Retry(Exception):
    """Internal: this attempt failed in a way worth retrying.

    ``answered`` is False when no HTTP answer came back (connection or timeout trouble): such a
    failure may be an outage rather than the row's fault, so the breaker gets a say."""

    def __init__(
        self, reason: str, detail: str, retry_after: float | None = None, answered: bool = True
    ) -> None:
        super().__init__(reason)
        self.reason, self.detail, self.retry_after = reason, detail, retry_after
        self.answered = answered


class CircuitBreaker:
    """Shared view of whether the server is reachable, so an outage does not burn row retries.

    Closed (the normal state) costs one attribute check per attempt. A request whose attempt got
    no answer calls :meth:`failure_counts`: one probe (``GET /health``, then ``/v1/models``;
    concurrent failures share it) decides. If the server answers the probe it is up, so the
    failure was this request's own and counts against its retries. If not, the breaker opens:
    every request waits in :meth:`wait_closed` (new ones before sending, failed ones before
    retrying) while a single prober retries with exponential backoff, and the first probe or
    request that gets an answer closes it. Waiting is unbounded here on purpose: the caller
    decides when an outage is fatal (the engine's ``server_dead_after_s`` watchdog cancels the
    waiters, which leaves their rows unrecorded, so the next run redoes them).
    """

    def __init__(
        self,
        base_url: str,
        *,
        headers: dict[str, str] | None = None,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 60.0,
        probe_timeout_s: float = 10.0,
    ) -> None:
        self.base_url = base_url
        #: Paths on the server probed in turn: its health check, then the model list.
        self.probe_paths = probe_paths(base_url)
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self._headers = headers or {}
        self._probe_timeout_s = probe_timeout_s
        #: True while the server is believed unreachable; read on every attempt (no lock).
        self.is_open = False
        #: Monotonic time the current outage began (None while closed).
        self.opened_at: float | None = None
        #: Outages seen and probes sent, for logs and tests.
        self.outages = 0
        self.probes = 0
        self._closed: asyncio.Event | None = None
        self._probe: asyncio.Task | None = None
        self._prober: asyncio.Task | None = None
        self._pool: HttpPool | None = None
        self._closing = False

    def _event(self) -> asyncio.Event:
        if self._closed is None:  # created inside the running loop
            self._closed = asyncio.Event()
            self._closed.set()
        return self._closed

    async def wait_closed(self) -> None:
        """Return at once while closed; otherwise when the server is reachable again."""
        if self.is_open:
            await self._event().wait()

    def saw_answer(self) -> None:
        """Any HTTP answer proves the server reachable: close the breaker if it is open."""
        if self.is_open:
            self._close()

    async def failure_counts(self) -> bool:
        """After an attempt got no answer: True if the server is up (the failure is the row's),
        False after waiting out an outage (the attempt does not count; try again)."""
        if not self.is_open:
            if self._probe is None or self._probe.done():
                self._probe = asyncio.create_task(self._probe_once())
            if await asyncio.shield(self._probe):
                return True
            self._open()
        await self.wait_closed()
        return False

    async def _probe_once(self) -> bool:
        """One probe: any answer below 500 from either URL means requests will be answered."""
        self.probes += 1
        if self._pool is None:
            self._pool = HttpPool(
                self.base_url, headers=self._headers, max_connections=2, keep_alive=False
            )
        for path in self.probe_paths:
            try:
                response = await self._pool.request("GET", path, timeout_s=self._probe_timeout_s)
            except (HttpError, TimeoutError):
                continue
            if response.status < 500:
                return True
        return False

    def _open(self) -> None:
        if self.is_open:
            return
        self.is_open = True
        self.opened_at = time.monotonic()
        self.outages += 1
        self._event().clear()
        log.warning("server unreachable: requests wait (not counted as retries) until it is back")
        self._prober = asyncio.create_task(self._probe_until_reachable())

    def _close(self) -> None:
        if self.opened_at is not None:
            log.warning("server reachable again after %.1fs", time.monotonic() - self.opened_at)
        self.is_open = False
        self.opened_at = None
        self._event().set()
        if self._prober is not None and self._prober is not asyncio.current_task():
            self._prober.cancel()
        self._prober = None

    async def _probe_until_reachable(self) -> None:
        attempt = 0
        while self.is_open and not self._closing:
            attempt += 1
            ceiling = min(self.backoff_max_s, self.backoff_initial_s * 2 ** min(attempt - 1, 30))
            await asyncio.sleep(random.uniform(ceiling / 2, ceiling))
            if await self._probe_once():
                self._close()
                return

    async def aclose(self) -> None:
        self._closing = True  # a prober that misses its cancellation still stops
        for task in (self._probe, self._prober):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def parse_completion(body: Any, api: str) -> tuple[str, str, int, int, int]:
    """Extract (text, finish_reason, prompt, completion, cached tokens) or raise ValueError."""
    choice = body["choices"][0]
    text = choice["message"]["content"] if api == "chat" else choice["text"]
    if not isinstance(text, str):
        raise ValueError("completion text is not a string")
    usage = body.get("usage") or {}
    details = usage.get("prompt_tokens_details") or {}
    return (
        text,
        str(choice.get("finish_reason") or ""),
        int(usage.get("prompt_tokens") or 0),
        int(usage.get("completion_tokens") or 0),
        int(details.get("cached_tokens") or 0),
    )


class OpenAICompatibleClient:
    """Async client with bounded connections, timeouts and retries."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api: str = "chat",
        api_key: str | None = None,
        timeout_s: float = 600.0,
        max_retries: int = 6,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 60.0,
        max_connections: int = 256,
        circuit_breaker: bool = False,
    ) -> None:
        if api not in ("chat", "completions"):
            raise ValueError(f"api must be 'chat' or 'completions', not {api!r}")
        self.model = model
        self.api = api
        self.max_retries = max_retries
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout_s = timeout_s
        self._max_connections = max_connections
        self._base_url = base_url
        self._path = urlsplit(base_url).path.rstrip("/") + (
            "/chat/completions" if api == "chat" else "/completions"
        )
        self._pool: HttpPool | None = None
        #: Monotonic time of the last answer of any kind from the server (dead-server watch).
        self.last_response_at = time.monotonic()
        #: Set with ``circuit_breaker=True``: an outage makes requests wait, not fail.
        self.breaker = (
            CircuitBreaker(
                base_url,
                headers=self._headers,
                backoff_initial_s=backoff_initial_s,
                backoff_max_s=backoff_max_s,
                probe_timeout_s=min(timeout_s, 10.0),
            )
            if circuit_breaker
            else None
        )

    def _http(self) -> HttpPool:
        """The connection pool, created lazily inside the running event loop."""
        if self._pool is None:
            self._pool = HttpPool(
                self._base_url,
                headers=self._headers,
                max_connections=self._max_connections,
                connect_timeout_s=min(self._timeout_s, 30.0),
            )
        return self._pool

    async def aclose(self) -> None:
        if self.breaker is not None:
            await self.breaker.aclose()
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None

    async def __aenter__(self) -> OpenAICompatibleClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def payload(self, prompt: str | list[dict[str, str]], sampling: dict[str, Any]) -> dict:
        """Request body: ``prompt`` is chat messages for the chat API, text for completions."""
        key = "messages" if self.api == "chat" else "prompt"
        return {"model": self.model, key: prompt, **sampling}

    async def complete(
        self, prompt: str | list[dict[str, str]], sampling: dict[str, Any]
    ) -> Completion:
        """Send one request, retrying transient failures; raise RequestFailed when out of tries.

        ``attempts`` counts the tries charged to this request: with a breaker, tries lost to an
        outage are not charged (the request waited for the server instead)."""
        body = self.payload(prompt, sampling)
        start = time.monotonic()
        breaker = self.breaker
        attempt = 1
        while True:
            if breaker is not None and breaker.is_open:
                await breaker.wait_closed()
            try:
                text, finish, p_tok, c_tok, cached = await self._attempt(body)
                return Completion(
                    text, finish, p_tok, c_tok, cached, time.monotonic() - start, attempt
                )
            except _Retry as retry:
                if (
                    not retry.answered
                    and breaker is not None
                    and not await breaker.failure_counts()
                ):
                    continue  # an outage, now over: not this request's fault
                if attempt > self.max_retries:
                    raise RequestFailed(retry.reason, retry.detail, attempt) from None
                await asyncio.sleep(self._delay(attempt, retry.retry_after))
                attempt += 1

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.backoff_max_s)
        ceiling = min(self.backoff_max_s, self.backoff_initial_s * 2 ** (attempt - 1))
        return random.uniform(0.0, ceiling)

    async def _attempt(self, body: dict) -> tuple[str, str, int, int, int]:
        data = json.dumps(body).encode()
        try:
            response = await self._http().request(
                "POST", self._path, data, timeout_s=self._timeout_s
            )
        except TimeoutError:
            detail = f"no answer within {self._timeout_s}s"
            raise _Retry("timeout", detail, answered=False) from None
        except Disconnected as err:
            # Typically a keep-alive connection the server closed while idle: retry at once.
            raise _Retry("connection_error", f"{type(err).__name__}: {err}"[:200], 0.0,
                         answered=False) from None  # fmt: skip
        except HttpError as err:  # refused, unreachable, reset, not HTTP
            detail = f"{type(err).__name__}: {err}"[:200]
            raise _Retry("connection_error", detail, answered=False) from None
        status, raw = response.status, response.body
        retry_after = response.headers.get("retry-after")
        self.last_response_at = time.monotonic()
        if self.breaker is not None:
            self.breaker.saw_answer()
        text = raw[:200].decode("utf-8", "replace")
        if status in RETRYABLE_STATUS or status >= 500:
            raise _Retry(f"http_{status}", text, parse_retry_after(retry_after))
        if status >= 400:
            raise RequestFailed(f"http_{status}", text)
        try:
            return parse_completion(json.loads(raw), self.api)
        except (ValueError, KeyError, IndexError, TypeError) as err:
            raise _Retry("malformed_body", f"{type(err).__name__}: {err}"[:200]) from None
