"""Saturation: does a full ``synthesize`` run keep a real server as busy as a bare load loop?

One ``transformers serve`` (embedded SmolLM2-135M-Instruct, CPU, continuous batching) is started
once. The baseline is a bare aiohttp loop that sends the same prompts (the first N sample-corpus
contexts in the teacher-student style) with the same sampling and concurrency, and measures output
tokens/s. Then the full stage (corpus reading, chunking, planning, committing, accounting) runs
against the same server, and its generation-time output tokens/s is compared. Goal: >= 0.97.

    .venv/bin/python bench/bench_saturation.py --contexts 32 --concurrency 16 --max-tokens 96
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from mind_nemo.core.corpus import CorpusConfig, CorpusReader
from mind_nemo.servers.config import ServerConfig
from mind_nemo.servers.embedded_model import load_tokenizer
from mind_nemo.servers.launch import open_server
from mind_nemo.synthesize.chunking import split_into_contexts
from mind_nemo.synthesize.config import ChunkConfig
from mind_nemo.synthesize.styles import load_prompt


def sample_prompts(n: int) -> list[list[dict[str, str]]]:
    tokenizer = load_tokenizer("embedded")
    prompt = load_prompt("teacher_student")
    out = []
    for doc in CorpusReader(CorpusConfig(path="sample", id_field="id")):
        for ctx in split_into_contexts(doc, tokenizer, ChunkConfig()):
            out.append(prompt.messages(ctx.text))
            if len(out) == n:
                return out
    return out


async def bare_loop(url: str, model: str, prompts, concurrency: int, max_tokens: int) -> float:
    sem = asyncio.Semaphore(concurrency)
    tokens = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3600)) as session:

        async def one(messages) -> None:
            nonlocal tokens
            async with sem:
                body = {"model": model, "messages": messages, "temperature": 1.0, "top_p": 0.9,
                        "max_tokens": max_tokens}  # fmt: skip
                for attempt in range(3):  # uvicorn closes idle keep-alive sockets after 5 s
                    try:
                        async with session.post(f"{url}/chat/completions", json=body) as r:
                            tokens += (await r.json())["usage"]["completion_tokens"]
                        return
                    except aiohttp.ServerDisconnectedError:
                        if attempt == 2:
                            raise

        start = time.perf_counter()
        await asyncio.gather(*(one(m) for m in prompts))
        return tokens / (time.perf_counter() - start)


def synthesize_rate(url: str, model: str, n: int, concurrency: int, max_tokens: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "mind_nemo.synthesize", "+style=teacher_student",
             "server=openai", f"server.base_url={url}", f"server.model={model}",
             "server.tokenizer=embedded", "server.api_key_env=null",
             f"server.max_new_tokens={max_tokens}", f"limit={n}",
             f"engine.max_concurrent_requests={concurrency}", f"output_dir={tmp}/run",
             "progress=false"],
            check=True, capture_output=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )  # fmt: skip
        manifest = json.loads((Path(tmp) / "run" / "manifest.json").read_text())
        return float(manifest["session"]["output_tokens_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contexts", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    prompts = sample_prompts(args.contexts)
    with tempfile.TemporaryDirectory() as logs, open_server(ServerConfig(), Path(logs)) as server:
        asyncio.run(bare_loop(server.base_url, server.model, prompts[:4], 4, 8))  # warm-up
        bare, ours = [], []
        for _ in range(args.rounds):  # alternate, so drift in the machine hits both alike
            bare.append(asyncio.run(bare_loop(server.base_url, server.model, prompts,
                                              args.concurrency, args.max_tokens)))  # fmt: skip
            ours.append(synthesize_rate(server.base_url, server.model, args.contexts,
                                        args.concurrency, args.max_tokens))  # fmt: skip
    b, o = sum(bare) / len(bare), sum(ours) / len(ours)
    print(
        f"\n{args.contexts} contexts x teacher_student, concurrency {args.concurrency}, "
        f"max_tokens {args.max_tokens}, {args.rounds} alternating rounds, transformers serve CPU"
    )
    print(f"{'bare aiohttp load loop (baseline)':38} {b:8.1f} output tok/s  rounds {bare}")
    print(f"{'mind_nemo.synthesize (full stage)':38} {o:8.1f} output tok/s  rounds {ours}")
    print(f"ratio synthesize / bare loop: {o / b:.3f}")


if __name__ == "__main__":
    main()
