"""Client overhead: completions/s and client CPU per request against an instant stub server.

Baseline, measured in the same run against the same stub: a plain ``openai.AsyncOpenAI`` client
with an ``asyncio.Semaphore`` (what most hand-written generation scripts do), and datatrove's
inference runner when it is installed. The stub answers instantly from another process on
loopback, so what is measured is the client's own cost. Goal: ours >= 1.5x the plain loop.

    .venv/bin/python bench/bench_client.py --requests 4000 --concurrency 64
"""

from __future__ import annotations

import argparse
import asyncio
import time

import httpx

from mind_nemo.servers.client import OpenAICompatibleClient
from mind_nemo.servers.stub import StubProcess

PROMPT = [{"role": "user", "content": "Let x = 3. " * 200 + "Explain as a dialogue."}]
SAMPLING = {"temperature": 1.0, "top_p": 0.9, "max_tokens": 64}


async def run_ours(url: str, n: int, concurrency: int) -> int:
    async with OpenAICompatibleClient(url, "stub", max_connections=concurrency) as client:
        sem = asyncio.Semaphore(concurrency)
        done = 0

        async def one() -> None:
            nonlocal done
            async with sem:
                await client.complete(PROMPT, SAMPLING)
                done += 1

        await asyncio.gather(*(one() for _ in range(n)))
        return done


async def run_openai(url: str, n: int, concurrency: int) -> int:
    import openai

    client = openai.AsyncOpenAI(
        base_url=url,
        api_key="unused",
        max_retries=6,
        http_client=openai.DefaultAsyncHttpxClient(
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        ),
    )
    sem = asyncio.Semaphore(concurrency)
    done = 0

    async def one() -> None:
        nonlocal done
        async with sem:
            await client.chat.completions.create(model="stub", messages=PROMPT, **SAMPLING)
            done += 1

    await asyncio.gather(*(one() for _ in range(n)))
    await client.close()
    return done


def measure(name: str, coro_fn, url: str, n: int, concurrency: int) -> dict:
    asyncio.run(coro_fn(url, min(200, n), concurrency))  # warm-up
    wall0, cpu0 = time.perf_counter(), time.process_time()
    done = asyncio.run(coro_fn(url, n, concurrency))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {"name": name, "done": done, "rps": done / wall, "cpu_ms": 1000 * cpu / done}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    stub = StubProcess()
    url = stub.url
    try:
        rows = [
            measure("mind_nemo client", run_ours, url, args.requests, args.concurrency),
            measure(
                "openai.AsyncOpenAI + semaphore", run_openai, url, args.requests, args.concurrency
            ),
        ]
        try:
            import datatrove  # noqa: F401

            print("datatrove is installed, but its inference runner needs a full pipeline; "
                  "not measured")  # fmt: skip
        except ImportError:
            print("datatrove: not installed here (pip install datatrove[inference]); row skipped")
    finally:
        stub.stop()
    base = rows[1]
    print(f"\n{args.requests} requests, concurrency {args.concurrency}, instant stub on loopback")
    print(f"{'client':34} {'completions/s':>14} {'client CPU ms/req':>18} {'vs baseline':>12}")
    for row in rows:
        print(f"{row['name']:34} {row['rps']:14.0f} {row['cpu_ms']:18.3f} "
              f"{row['rps'] / base['rps']:11.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
