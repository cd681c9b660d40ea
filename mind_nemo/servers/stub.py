"""A fake OpenAI-compatible server for tests, benchmarks and dry runs: no model, no GPU.

``python -m mind_nemo.servers.stub --port 8000 --latency 0.01,0.05 --fault-rate 0.2`` answers
``/v1/chat/completions`` and ``/v1/completions`` with a deterministic two-speaker "conversation"
derived from the prompt (so two runs give identical text), after a random latency. With a fault
rate it misbehaves in every way the engine must survive: 429 with ``Retry-After``, 500 and 503,
answers slower than any sane timeout, connections dropped mid-request, and malformed bodies.
Like a prefix-caching server it reports ``cached_tokens``: the words a prompt shares with the
previous one from its start. It speaks just enough HTTP/1.1 (keep-alive, Content-Length) over
asyncio streams to be fast: the client-overhead benchmark needs a server that is never the
bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import random
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

FAULTS = ("429", "500", "503", "timeout", "drop", "malformed")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


@dataclass
class StubSettings:
    latency: tuple[float, float] = (0.0, 0.0)
    fault_rate: float = 0.0
    faults: tuple[str, ...] = FAULTS
    #: How long a "timeout" fault stalls before answering (longer than the client's timeout).
    stall_s: float = 30.0
    words: int = 60
    seed: int = 0


def fake_conversation(prompt: str, words: int) -> str:
    """Deterministic two-speaker text from a prompt; keeps the prompt's numbers."""
    digest = hashlib.sha256(prompt.encode("utf-8")).hexdigest()
    numbers = _NUMBER.findall(prompt)[:8] or ["1", "2"]
    turns, count, i = [], 0, 0
    while count < words:
        speaker = "Student" if i % 2 == 0 else "Teacher"
        body = f"we use {numbers[i % len(numbers)]} here, check {digest[i % 56 : i % 56 + 8]}."
        turns.append(f"{speaker}: {body}")
        count += len(body.split()) + 1
        i += 1
    return "\n\n".join(turns)


class StubServer:
    def __init__(self, settings: StubSettings) -> None:
        self.s = settings
        self.rng = random.Random(settings.seed)
        self.requests = 0
        #: The previous prompt's words, to report prefix-cache hits like vLLM/SGLang do.
        self._last_prompt: list[str] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await self._read_request(reader)
                if request is None:
                    break
                method, path, body = request
                keep = await self._respond(writer, method, path, body)
                if not keep:
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _read_request(self, reader: asyncio.StreamReader) -> tuple[str, str, bytes] | None:
        head = await reader.readuntil(b"\r\n\r\n") if not reader.at_eof() else b""
        if not head:
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        length = 0
        for line in lines[1:]:
            if line.lower().startswith("content-length:"):
                length = int(line.split(":", 1)[1])
        body = await reader.readexactly(length) if length else b""
        return method, path, body

    @staticmethod
    def _send(writer: asyncio.StreamWriter, status: int, body: bytes, extra: str = "") -> None:
        reason = {200: "OK", 404: "Not Found", 429: "Too Many Requests", 500: "Error",
                  503: "Unavailable"}.get(status, "Status")  # fmt: skip
        writer.write(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{extra}Connection: keep-alive\r\n\r\n".encode()
            + body
        )

    async def _respond(self, writer: asyncio.StreamWriter, method: str, path: str, body: bytes):
        if method == "GET":
            if path in ("/health", "/v1/models"):
                self._send(writer, 200, b'{"status":"ok","data":[{"id":"stub"}]}')
            else:
                self._send(writer, 404, b"{}")
            await writer.drain()
            return True
        if not path.endswith(("/chat/completions", "/completions")):
            self._send(writer, 404, b'{"error":"no such endpoint"}')
            await writer.drain()
            return True
        self.requests += 1
        lo, hi = self.s.latency
        if hi > 0:
            await asyncio.sleep(self.rng.uniform(lo, hi))
        if self.s.fault_rate and self.rng.random() < self.s.fault_rate:
            fault = self.rng.choice(self.s.faults)
            if fault == "drop":
                return False  # close without answering
            if fault == "timeout":
                await asyncio.sleep(self.s.stall_s)
            elif fault == "malformed":
                self._send(writer, 200, b'{"choices": [ {"oops": tr')
                await writer.drain()
                return True
            else:
                extra = "Retry-After: 0.05\r\n" if fault == "429" else ""
                self._send(writer, int(fault), b'{"error":"injected"}', extra)
                await writer.drain()
                return True
        self._send(writer, 200, self._completion(path, body))
        await writer.drain()
        return True

    def _completion(self, path: str, body: bytes) -> bytes:
        request = json.loads(body or b"{}")
        chat = path.endswith("/chat/completions")
        prompt = (
            "\n".join(m.get("content", "") for m in request.get("messages", []))
            if chat
            else str(request.get("prompt", ""))
        )
        max_tokens = int(request.get("max_tokens") or self.s.words)
        text = fake_conversation(prompt, min(self.s.words, max_tokens))
        n_out = len(text.split())
        words = prompt.split()
        cached = 0
        for a, b in zip(words, self._last_prompt, strict=False):
            if a != b:
                break
            cached += 1
        self._last_prompt = words
        choice = (
            {"index": 0, "message": {"role": "assistant", "content": text}}
            if chat
            else {"index": 0, "text": text}
        )
        choice["finish_reason"] = "stop"
        usage = {
            "prompt_tokens": len(prompt.split()),
            "completion_tokens": n_out,
            "total_tokens": len(prompt.split()) + n_out,
            "prompt_tokens_details": {"cached_tokens": cached},
        }
        return json.dumps({"id": "stub", "object": "chat.completion", "model": "stub",
                           "choices": [choice], "usage": usage}).encode()  # fmt: skip


class StubProcess:
    """This server in a subprocess on a free loopback port, for tests and benchmarks.

    ``StubProcess("--latency", "0,0.01")`` returns once ``/health`` answers; ``url`` is the
    ``/v1`` base URL; ``stop()`` (or leaving a ``with`` block) kills it. ``kill()`` then
    ``restart()`` simulate an outage: the server vanishes mid-run (connections reset, new ones
    refused) and comes back on the same port with the same arguments.
    """

    def __init__(self, *args: str, startup_timeout_s: float = 30.0) -> None:
        from mind_nemo.servers.launch import free_port

        self.args = args
        self.startup_timeout_s = startup_timeout_s
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._start()

    def _start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mind_nemo.servers.stub", "--port", str(self.port), *self.args]
        )
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"stub server exited with status {self.proc.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1):
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"stub server did not answer /health in {self.startup_timeout_s:.0f}s")

    def kill(self) -> None:
        """SIGKILL the server, as a crash would: in-flight requests get no answer."""
        self.proc.kill()
        self.proc.wait()

    def restart(self) -> None:
        """Start the server again on the same port (killing it first if it still runs)."""
        if self.proc.poll() is None:
            self.kill()
        self._start()

    def overrides(self) -> list[str]:
        """synthesize overrides that point at this stub (tokenizer: the embedded one)."""
        return [
            "server=openai",
            f"server.base_url={self.url}",
            "server.model=stub",
            "server.tokenizer=embedded",
            "server.api_key_env=null",
        ]

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def __enter__(self) -> StubProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def serve(host: str, port: int, settings: StubSettings) -> None:
    server = StubServer(settings)
    listener = await asyncio.start_server(server.handle, host, port, backlog=4096)
    async with listener:
        await listener.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--latency", default="0,0", help="min,max seconds per request")
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--faults", default=",".join(FAULTS))
    parser.add_argument("--stall", type=float, default=30.0, help="seconds a timeout fault stalls")
    parser.add_argument("--words", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    lo, hi = (float(x) for x in args.latency.split(","))
    settings = StubSettings(
        (lo, hi), args.fault_rate, tuple(args.faults.split(",")), args.stall, args.words, args.seed
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, settings))


if __name__ == "__main__":
    main()
