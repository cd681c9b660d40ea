"""The generation engine: keep the server full, commit each answer the moment it arrives.

A pool of worker coroutines pulls work items from one shared source, so at most
``max_concurrent_requests`` requests are in flight, whatever the corpus size. The source is a
plain iterator (tests) or a :class:`~mind_nemo.synthesize.prefetch.Prefetcher`, which plans in a
thread and bounds what it holds, so the loop never stops to tokenise. Each finished request is
handed to ``on_success`` (which commits it) and each exhausted one to ``on_failure``; one bad
row never stops the others. An outage is not a bad row: with the client's circuit breaker,
requests wait while the server is unreachable instead of failing, and a watchdog ends the run
cleanly when the server dies (launched process gone, or no answer for ``server_dead_after_s``):
in-flight and waiting requests are cancelled and not recorded, so the next plain run redoes
them. In adaptive mode the pool starts small and doubles while output tokens/s still grows by at
least 5% per step.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from mind_nemo.servers.client import Completion, OpenAICompatibleClient, RequestFailed
from mind_nemo.synthesize.config import EngineConfig
from mind_nemo.synthesize.plan import WorkItem

log = logging.getLogger(__name__)


class WorkSource(Protocol):
    """Where work items come from when planning runs beside the loop."""

    def next_item(self) -> Awaitable[WorkItem | None]: ...


@dataclass
class EngineOutcome:
    """How the engine stopped: ``finished`` (plan exhausted) or ``server_dead``."""

    status: str
    detail: str = ""
    peak_concurrency: int = 0


class Engine:
    def __init__(
        self,
        client: OpenAICompatibleClient,
        cfg: EngineConfig,
        sampling: Callable[[WorkItem], dict[str, Any]],
        on_success: Callable[[WorkItem, Completion], None],
        on_failure: Callable[[WorkItem, RequestFailed], None],
        server_alive: Callable[[], bool] = lambda: True,
    ) -> None:
        self.client = client
        self.cfg = cfg
        self.sampling = sampling
        self.on_success = on_success
        self.on_failure = on_failure
        self.server_alive = server_alive
        self._items: Iterator[WorkItem] = iter(())
        self._source: WorkSource | None = None
        self._exhausted = False
        self._in_flight = 0
        self._completion_tokens = 0
        self._workers: set[asyncio.Task] = set()
        self._stop: asyncio.Event | None = None
        self._outcome = EngineOutcome("finished")

    async def run(self, items: Iterator[WorkItem] | WorkSource) -> EngineOutcome:
        if isinstance(items, Iterator):
            self._items = items
        else:
            self._source = items
        self._stop = asyncio.Event()
        limit = self.cfg.max_concurrent_requests
        start = max(1, min(limit, limit // 8 or 1)) if self.cfg.adaptive_concurrency else limit
        self._grow(start)
        watchdog = asyncio.create_task(self._watchdog())
        tuner = asyncio.create_task(self._tune()) if self.cfg.adaptive_concurrency else None
        try:
            while self._workers:
                done, _ = await asyncio.wait(self._workers, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    self._workers.discard(task)
                    if not task.cancelled() and (error := task.exception()) is not None:
                        raise error  # a bug in a callback: surface it
        finally:
            for pending in (watchdog, tuner, *self._workers):
                if pending is not None:
                    pending.cancel()
            await asyncio.gather(
                *(t for t in (watchdog, tuner, *self._workers) if t), return_exceptions=True
            )
        return self._outcome

    def _grow(self, n: int) -> None:
        for _ in range(n):
            self._workers.add(asyncio.create_task(self._worker()))
        self._outcome.peak_concurrency = max(self._outcome.peak_concurrency, len(self._workers))

    async def _next_item(self) -> WorkItem | None:
        if self._exhausted:
            return None
        if self._source is not None:
            item = await self._source.next_item()
        else:
            item = next(self._items, None)
        if item is None:
            self._exhausted = True
        return item

    async def _worker(self) -> None:
        assert self._stop is not None
        while not self._stop.is_set():
            item = await self._next_item()
            if item is None:
                return
            self._in_flight += 1
            try:
                completion = await self.client.complete(item.prompt, self.sampling(item))
            except RequestFailed as failure:
                if self._stop.is_set():
                    return  # the server died under us: not the row's fault; redo next run
                self.on_failure(item, failure)
            else:
                self._completion_tokens += completion.completion_tokens
                self.on_success(item, completion)
            finally:
                self._in_flight -= 1

    def _end(self, status: str, detail: str) -> None:
        assert self._stop is not None
        if not self._stop.is_set():
            log.error("stopping: %s", detail)
            self._outcome.status, self._outcome.detail = status, detail
            self._stop.set()
            for task in self._workers:
                task.cancel()

    async def _watchdog(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            if not self.server_alive():
                self._end("server_dead", "the server process exited")
                return
            silent = time.monotonic() - self.client.last_response_at
            if self._in_flight and silent > self.cfg.server_dead_after_s:
                breaker = getattr(self.client, "breaker", None)
                how = ", unreachable" if breaker is not None and breaker.is_open else ""
                self._end(
                    "server_dead",
                    f"no answer from the server for {silent:.0f}s{how} "
                    "(engine.server_dead_after_s)",
                )
                return

    async def _tune(self) -> None:
        """Double the pool while a window's output tokens/s beats the last one by >= 5%."""
        window_s = self.cfg.adaptive_window_s
        previous = 0.0
        while len(self._workers) < self.cfg.max_concurrent_requests and not self._exhausted:
            before, t0 = self._completion_tokens, time.monotonic()
            await asyncio.sleep(window_s)
            rate = (self._completion_tokens - before) / (time.monotonic() - t0)
            if previous and rate < previous * 1.05:
                log.info(
                    "adaptive concurrency settled at %d (%.1f tok/s)", len(self._workers), rate
                )
                return
            previous = rate
            room = self.cfg.max_concurrent_requests - len(self._workers)
            self._grow(min(room, len(self._workers)))
            log.info("adaptive concurrency -> %d (%.1f tok/s)", len(self._workers), rate)
