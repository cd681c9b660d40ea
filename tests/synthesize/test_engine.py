"""The engine on its own: bounded in-flight work, adaptive concurrency, one bad row alone."""

from __future__ import annotations

import asyncio
import time

from mind_nemo.core.records import Context
from mind_nemo.servers.client import Completion, RequestFailed
from mind_nemo.synthesize.config import EngineConfig
from mind_nemo.synthesize.engine import Engine
from mind_nemo.synthesize.plan import WorkItem


class FakeClient:
    """Answers after ``delay`` seconds; throughput grows with concurrency (like a GPU server
    below saturation), up to ``capacity`` requests at once."""

    def __init__(self, delay: float = 0.01, capacity: int = 10_000, fail_every: int = 0):
        self.delay, self.capacity, self.fail_every = delay, capacity, fail_every
        self.in_flight = self.peak = self.calls = 0
        self.last_response_at = time.monotonic()
        self._slots = asyncio.Semaphore(capacity)

    async def complete(self, prompt, sampling):
        self.calls += 1
        call = self.calls
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            async with self._slots:
                await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        self.last_response_at = time.monotonic()
        if self.fail_every and call % self.fail_every == 0:
            raise RequestFailed("http_500", "injected")
        return Completion("A: x\nB: y", "stop", 10, 5, 0, self.delay, 1)


def items(n: int):
    for i in range(n):
        ctx = Context(f"d{i}", 0, "text", 0, 1, 0, 4)
        yield WorkItem(ctx, "debate", 0, [{"role": "user", "content": "x"}], "h", 16)


def run_engine(client, cfg, n):
    ok, bad = [], []
    engine = Engine(client, cfg, lambda item: {}, lambda i, c: ok.append(i),
                    lambda i, f: bad.append((i, f.reason)))  # fmt: skip
    outcome = asyncio.run(engine.run(items(n)))
    return outcome, ok, bad


def test_in_flight_is_bounded_and_every_item_is_handled_once():
    client = FakeClient(fail_every=7)
    outcome, ok, bad = run_engine(client, EngineConfig(max_concurrent_requests=5), 100)
    assert outcome.status == "finished"
    assert client.peak == 5
    assert len(ok) + len(bad) == 100
    assert len(bad) == 100 // 7 and {r for _, r in bad} == {"http_500"}
    assert len({i.key for i in ok} | {i.key for i, _ in bad}) == 100


def test_adaptive_mode_grows_while_throughput_grows_and_stops_at_saturation():
    client = FakeClient(delay=0.02, capacity=16)  # more than 16 in flight buys nothing
    cfg = EngineConfig(max_concurrent_requests=256, adaptive_concurrency=True,
                       adaptive_window_s=0.3)  # fmt: skip
    outcome, ok, _ = run_engine(client, cfg, 6000)
    assert len(ok) == 6000
    assert 32 <= outcome.peak_concurrency < 256  # grew past the start (32), stopped well short


def test_silent_server_ends_the_run_as_dead():
    client = FakeClient(delay=30)
    client.last_response_at -= 100
    cfg = EngineConfig(max_concurrent_requests=4, server_dead_after_s=1)
    start = time.monotonic()
    outcome, ok, bad = run_engine(client, cfg, 10)
    assert outcome.status == "server_dead" and "no answer" in outcome.detail
    assert not ok and not bad  # in-flight work is not recorded: it is redone next run
    assert time.monotonic() - start < 10
