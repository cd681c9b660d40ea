"""One async client for OpenAI-compatible servers (chat and completions APIs).

Every LLM backend we support (transformers serve, vLLM, SGLang, TensorRT-LLM's trtllm-serve, hosted
endpoints) speaks this protocol, so generation needs exactly one client. It owns the failure
policy: each request has a timeout; 429, 5xx, timeouts, connection errors and malformed bodies
are retried with exponential backoff and full jitter (``Retry-After`` wins when the server sends
it); other 4xx answers fail at once. A request that exhausts its retries raises
:class:`RequestFailed` with a short reason, which the engine records instead of crashing. The
transport is aiohttp: its connection pool stays cheap with hundreds of open connections, where
httpx's pool scans every connection on every request.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

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
    """Internal: this attempt failed in a way worth retrying."""

    def __init__(self, reason: str, detail: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason, self.detail, self.retry_after = reason, detail, retry_after


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
    ) -> None:
        if api not in ("chat", "completions"):
            raise ValueError(f"api must be 'chat' or 'completions', not {api!r}")
        self.model = model
        self.api = api
        self.max_retries = max_retries
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, connect=min(timeout_s, 30.0))
        self._max_connections = max_connections
        self._url = base_url.rstrip("/") + (
            "/chat/completions" if api == "chat" else "/completions"
        )
        self._session: aiohttp.ClientSession | None = None
        #: Monotonic time of the last answer of any kind from the server (dead-server watch).
        self.last_response_at = time.monotonic()

    def _http(self) -> aiohttp.ClientSession:
        """The session, created lazily inside the running event loop."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(limit=self._max_connections, force_close=False),
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

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
        """Send one request, retrying transient failures; raise RequestFailed when out of tries."""
        body = self.payload(prompt, sampling)
        start = time.monotonic()
        for attempt in range(1, self.max_retries + 2):
            try:
                text, finish, p_tok, c_tok, cached = await self._attempt(body)
                return Completion(
                    text, finish, p_tok, c_tok, cached, time.monotonic() - start, attempt
                )
            except _Retry as retry:
                if attempt > self.max_retries:
                    raise RequestFailed(retry.reason, retry.detail, attempt) from None
                await asyncio.sleep(self._delay(attempt, retry.retry_after))
        raise AssertionError("unreachable")

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.backoff_max_s)
        ceiling = min(self.backoff_max_s, self.backoff_initial_s * 2 ** (attempt - 1))
        return random.uniform(0.0, ceiling)

    async def _attempt(self, body: dict) -> tuple[str, str, int, int, int]:
        try:
            async with self._http().post(self._url, json=body) as response:
                status = response.status
                raw = await response.read()
                retry_after = response.headers.get("retry-after")
        except TimeoutError:
            raise _Retry("timeout", f"no answer within {self._timeout.total}s") from None
        except aiohttp.ServerDisconnectedError as err:
            # Typically a keep-alive connection the server closed while idle: retry at once.
            raise _Retry("connection_error", f"{type(err).__name__}: {err}"[:200], 0.0) from None
        except aiohttp.ClientError as err:
            raise _Retry("connection_error", f"{type(err).__name__}: {err}"[:200]) from None
        self.last_response_at = time.monotonic()
        text = raw[:200].decode("utf-8", "replace")
        if status in RETRYABLE_STATUS or status >= 500:
            raise _Retry(f"http_{status}", text, parse_retry_after(retry_after))
        if status >= 400:
            raise RequestFailed(f"http_{status}", text)
        try:
            return parse_completion(json.loads(raw), self.api)
        except (ValueError, KeyError, IndexError, TypeError) as err:
            raise _Retry("malformed_body", f"{type(err).__name__}: {err}"[:200]) from None
