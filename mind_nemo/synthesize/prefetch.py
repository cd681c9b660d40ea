"""Plan ahead in a thread, so the event loop only sends, receives and commits.

Reading the corpus, tokenising, choosing cuts and rendering prompts is CPU work; done inside the
engine's worker coroutines it stops every request while a document is tokenised. Here a
producer thread runs the plan (:meth:`~mind_nemo.synthesize.plan.Planner.units`) and hands
finished work to the event loop in chunks, at most ``chunks_ahead`` chunks ahead, so memory stays
bounded whatever the corpus. The tokenizer's Rust side releases the GIL, and what Python work is
left (numpy ranking, prompt strings) is small per request.

The order of the plan is kept: chunks arrive in the order the planner made them, and keys do not
depend on timing, so resume and exactly-once are as without the thread. Each chunk is
``record``-ed in the thread before the loop can take it (the stage appends its document notes
and contexts to their files there), so a context is on file before any of its requests is sent,
and the loop's thread writes only what answers bring. Done on the loop, that recording was most
of the delay between an answer and the next request (see the synthesize README). An error in
the producer (a bad tokenizer, a bug) is raised in the loop at the next item.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

from mind_nemo.synthesize.plan import PlanUnit, WorkItem

#: Work items per chunk handed from the thread to the loop (one wake-up of the loop each).
CHUNK_ITEMS = 32


class Prefetcher:
    """Runs ``units`` in a thread; the event loop awaits :meth:`next_item`.

    ``record(chunk)`` runs in the thread for each chunk, before the loop can take it."""

    def __init__(
        self,
        units: Iterator[PlanUnit],
        record: Callable[[list[PlanUnit]], object],
        chunks_ahead: int = 16,
    ) -> None:
        self._units = units
        self._record = record
        self._slots = threading.Semaphore(max(1, chunks_ahead))
        self._stopped = threading.Event()
        self._chunks: deque[list[PlanUnit]] = deque()
        self._items: deque[WorkItem] = deque()
        self._ended = False
        self._error: BaseException | None = None
        #: Workers waiting for work; a chunk wakes as many as it has items (not all of them).
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        #: Seconds workers spent waiting for the producer with nothing to send, summed over
        #: the waiting workers (starvation: near zero when the producer keeps ahead).
        self.waited_s = 0.0
        #: CPU seconds the producer thread used (reading, tokenising, ranking, rendering).
        self.producer_cpu_s = 0.0

    @classmethod
    def for_requests(
        cls,
        units: Iterator[PlanUnit],
        record: Callable[[list[PlanUnit]], object],
        in_flight: int,
    ) -> Prefetcher:
        """Enough chunks ahead to refill ``in_flight`` requests twice over."""
        return cls(units, record, chunks_ahead=max(4, 2 * in_flight // CHUNK_ITEMS + 1))

    @property
    def starving(self) -> bool:
        """True while some worker waits for work: the loop is idle, so planning may use every
        core. Read from the producer thread (a deque's truth value is one atomic read)."""
        return bool(self._waiters)

    def start(self) -> None:
        """Start the producer; call from inside the running event loop."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._produce, name="plan-producer", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the producer (it ends after the unit it is on) and wait for it a little."""
        self._stopped.set()
        self._slots.release()  # unblock a producer waiting for room
        if self._thread is not None:
            self._thread.join(timeout_s)

    # -- the producer thread ----------------------------------------------------------------
    def _produce(self) -> None:
        started = time.thread_time()
        try:
            chunk: list[PlanUnit] = []
            items = 0
            for unit in self._units:
                chunk.append(unit)
                items += len(unit.items)
                if items >= CHUNK_ITEMS:
                    if not self._hand_over(chunk):
                        return
                    chunk, items = [], 0
            if chunk:
                self._hand_over(chunk)
        except BaseException as err:  # raised in the loop, where it can end the run
            self._call_in_loop(self._fail, err)
        finally:
            self.producer_cpu_s = time.thread_time() - started
            self._call_in_loop(self._end)

    def _hand_over(self, chunk: list[PlanUnit]) -> bool:
        """Wait for room, then give ``chunk`` to the loop; False once stopped."""
        self._slots.acquire()
        if self._stopped.is_set():
            return False
        self._record(chunk)
        self._call_in_loop(self._deliver, chunk)
        return True

    def _call_in_loop(self, callback: Callable[..., None], *args: object) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop is closed: the run is over
            self._loop.call_soon_threadsafe(callback, *args)

    # -- the event loop side ----------------------------------------------------------------
    def _wake(self, count: int) -> None:
        while count > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():  # a cancelled worker's future is done already
                waiter.set_result(None)
                count -= 1

    def _deliver(self, chunk: list[PlanUnit]) -> None:
        self._chunks.append(chunk)
        self._wake(sum(len(unit.items) for unit in chunk) or 1)

    def _fail(self, error: BaseException) -> None:
        self._error = error
        self._wake(len(self._waiters))

    def _end(self) -> None:
        self._ended = True
        self._wake(len(self._waiters))

    async def next_item(self) -> WorkItem | None:
        """The next work item in plan order; ``None`` when the plan is exhausted."""
        while True:
            if self._items:
                return self._items.popleft()
            if self._chunks:
                chunk = self._chunks.popleft()
                self._slots.release()
                for unit in chunk:
                    self._items.extend(unit.items)
                continue
            if self._error is not None:
                raise self._error
            if self._ended:
                return None
            loop = asyncio.get_running_loop()
            waiter = loop.create_future()
            self._waiters.append(waiter)
            started = loop.time()
            await waiter
            self.waited_s += loop.time() - started
