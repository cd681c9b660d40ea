"""Our synthesize engine against its peers, in one run, on one fake server, on the same contexts.

Every contender is a whole process started the way its users start it, sending one chat request
per context (the ``debate`` prompt around each of the same contexts) to the same fake
OpenAI-compatible server, results to JSONL:

* ``ours (documents)``: ``python -m mind_nemo.synthesize`` on documents it cuts itself;
* ``ours (contexts)``: the same on the pre-cut contexts (each document already fits);
* ``AsyncOpenAI loop``: a plain ``openai.AsyncOpenAI`` + semaphore script;
* ``datatrove``: datatrove's ``InferenceRunner`` (``--datatrove-python``, its own venv);
* ``NeMo-Skills``: ``python -m nemo_skills.inference.generate`` with our ``debate`` prompt file
  as its ``prompt_config`` over the same contexts (``--nemo-skills-python`` of its venv and
  ``--nemo-skills-dir`` of its checkout, which goes on ``PYTHONPATH``).

A peer whose Python is not given is skipped with a message. Each run must send one request per
context, the first with the very messages ``requests.jsonl`` holds for a context (the fake
server keeps the first request body), and NeMo-Skills must write one non-empty ``generation``
per context. Rounds are interleaved (each round runs every contender at every setting) and the
table shows medians: requests/s during generation (server side: first request in to last answer
out), whole-process wall time, CPU ms per request (user + system of the process and its
children), peak RSS, and how long a client takes from an answer to its next request on the same
kept-alive connection (server side; "-" for a client that opens a connection per request).
The fake server lives in this file (an ``asyncio.Protocol``, HTTP/1.1
keep-alive), independent of ``mind_nemo.servers.stub``.

Every contender runs from compiled bytecode, as ``pip install`` leaves a package: the bench
compiles our package (an editable install leaves it as source) and a NeMo-Skills checkout
first, since with ``PYTHONDONTWRITEBYTECODE`` set (as on our machines) Python would otherwise
compile their modules again in every process, about 50 ms of CPU for ours. The datatrove venv
was compiled by pip.

    .venv/bin/python bench/bench_engine_peers.py --rounds 3 \\
        --datatrove-python /tmp/dt/bin/python \\
        --nemo-skills-python /tmp/ns-venv/bin/python --nemo-skills-dir /tmp/nemo-skills

datatrove's venv: ``python3 -m venv /tmp/dt && /tmp/dt/bin/pip install datatrove orjson httpx``
(its ``[inference]`` extra did not install offline here, and an ``endpoint`` server needs only
these; without httpx its readiness check fails quietly and it would wait for the server forever,
so every contender is killed after ``RUN_TIMEOUT_S``).

The top of this file imports the standard library only: the peers' runners are this same file
started with the peer's own Python (``--peer NAME``).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
REPO = HERE.parents[1]
STYLE = "debate"
MAX_TOKENS = 256
#: A contender still running after this long is killed (a peer waiting for a server forever).
RUN_TIMEOUT_S = 300.0
ANSWER = " ".join(
    f"{'Student' if i % 2 == 0 else 'Teacher'}: step {i} of the argument holds." for i in range(8)
)

# ----------------------------------------------------------------------------- the fake server


class _Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.first_in: float | None = None
        self.last_out: float | None = None
        self.cpu0 = time.process_time()
        self.connections = 0
        #: Per kept-alive connection: seconds from sending an answer to the next request on it.
        self.turnaround_s = 0.0
        self.turnarounds = 0
        self.first_body: bytes | None = None  # of the first completion request since the reset

    def as_json(self) -> bytes:
        return json.dumps(
            {
                "requests": self.count,
                "first_in": self.first_in,
                "last_out": self.last_out,
                "server_cpu_s": time.process_time() - self.cpu0,
                "connections": self.connections,
                "turnaround_s": self.turnaround_s,
                "turnarounds": self.turnarounds,
                "first_messages": _messages(self.first_body),
            }
        ).encode()


def _messages(body: bytes | None) -> list[dict[str, Any]] | None:
    """The chat messages of a request body (a text completion's prompt as one user turn)."""
    if body is None:
        return None
    request = json.loads(body)
    if "messages" in request:
        return list(request["messages"])
    return [{"role": "user", "content": request.get("prompt")}]


STATS = _Stats()
_CHAT_BODY = json.dumps(
    {
        "id": "bench",
        "object": "chat.completion",
        "created": 0,
        "model": "bench",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": ANSWER},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 600, "completion_tokens": 64, "total_tokens": 664},
    }
).encode()
_TEXT_BODY = json.dumps(
    {
        "id": "bench",
        "object": "text_completion",
        "created": 0,
        "model": "bench",
        "choices": [{"index": 0, "text": ANSWER, "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": 600, "completion_tokens": 64, "total_tokens": 664},
    }
).encode()


class _Http(asyncio.Protocol):
    """Just enough HTTP/1.1: Content-Length bodies, keep-alive unless the client closes."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.answered_at: float | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        STATS.connections += 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            headers = {}
            for line in head[1:]:
                key, _, value = line.partition(":")
                headers[key.strip().lower()] = value.strip().lower()
            length = int(headers.get("content-length") or 0)
            if len(self.buffer) < end + 4 + length:
                return
            method, path = head[0].split(" ")[:2]
            if STATS.first_body is None and method == "POST" and path.endswith("/completions"):
                STATS.first_body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            self._handle(method, path, headers.get("connection") == "close")

    def _handle(self, method: str, path: str, close: bool) -> None:
        if method == "POST" and path.endswith("/completions"):
            STATS.count += 1
            now = time.time()
            if STATS.first_in is None:
                STATS.first_in = now
            if self.answered_at is not None:
                STATS.turnaround_s += now - self.answered_at
                STATS.turnarounds += 1
            body = _CHAT_BODY if path.endswith("/chat/completions") else _TEXT_BODY
            if self.latency:
                asyncio.get_running_loop().call_later(self.latency, self._send, body, close, True)
            else:
                self._send(body, close, True)
        elif path.startswith("/bench/stats"):
            self._send(STATS.as_json(), close)
        elif path.startswith("/bench/reset"):
            STATS.reset()
            self._send(b"{}", close)
        elif path.startswith("/v1/models"):
            self._send(b'{"object":"list","data":[{"id":"bench","object":"model"}]}', close)
        else:  # /health and anything else
            self._send(b"{}", close)

    def _send(self, body: bytes, close: bool, answer: bool = False) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        head = (
            f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{'Connection: close' if close else ''}\r\n\r\n"
        ).replace("\r\n\r\n\r\n", "\r\n\r\n")
        self.transport.write(head.encode() + body)
        if answer:
            STATS.last_out = self.answered_at = time.time()
        if close:
            self.transport.close()


async def _serve(port: int, latency: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Http(latency), "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


class FakeServer:
    """The server above in a subprocess; ``stats()`` and ``reset()`` talk to it."""

    def __init__(self, latency: float) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        cmd = [sys.executable, str(HERE), "--serve", str(self.port), "--latency", str(latency)]
        self.proc = subprocess.Popen(cmd)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                self._get("/health")
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("fake server did not start")

    def _get(self, path: str) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
            return dict(json.loads(r.read()))

    def reset(self) -> None:
        self._get("/bench/reset")

    def stats(self) -> dict[str, Any]:
        return self._get("/bench/stats")

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


# ----------------------------------------------------------------------------- peers (own venvs)


def _requests(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def peer_openai_loop(requests: Path, url: str, in_flight: int, out: Path) -> None:
    """What most hand-written generation scripts do."""
    import openai

    async def main() -> None:
        client = openai.AsyncOpenAI(base_url=url, api_key="unused", max_retries=6)
        sem = asyncio.Semaphore(in_flight)
        with open(out, "w") as f:

            async def one(row: dict[str, Any]) -> None:
                async with sem:
                    answer = await client.chat.completions.create(
                        model="bench", messages=row["messages"], max_tokens=MAX_TOKENS
                    )
                f.write(
                    json.dumps({"id": row["id"], "text": answer.choices[0].message.content}) + "\n"
                )

            await asyncio.gather(*(one(row) for row in _requests(requests)))

    asyncio.run(main())


def peer_datatrove(requests: Path, url: str, in_flight: int, out: Path) -> None:
    """datatrove's InferenceRunner against an already running endpoint, one task, JSONL out."""
    from datatrove.data import Document  # type: ignore[import-not-found]
    from datatrove.pipeline.inference.run_inference import InferenceConfig, InferenceRunner  # type: ignore[import-not-found]
    from datatrove.pipeline.writers import JsonlWriter  # type: ignore[import-not-found]

    rows = _requests(requests)
    documents = (
        Document(text=row["messages"][-1]["content"], id=row["id"],
                 metadata={"messages": row["messages"]})
        for row in rows
    )  # fmt: skip

    async def rollout(document: Any, generate: Any, **_: Any) -> str:
        payload = {"messages": document.metadata["messages"], "max_tokens": MAX_TOKENS}
        return str((await generate(payload)).text)

    config = InferenceConfig(
        server_type="endpoint",
        model_name_or_path="bench",
        endpoint_url=url.removesuffix("/v1"),
        max_concurrent_generations=in_flight,
        metric_interval=3600,
    )
    writer = JsonlWriter(str(out.parent), output_filename=out.name, compression=None)
    InferenceRunner(rollout_fn=rollout, config=config, output_writer=writer).run(documents)


PEERS = {"openai_loop": peer_openai_loop, "datatrove": peer_datatrove}

# ----------------------------------------------------------------------------- preparing the data


def prepare(folder: Path, contexts: int, source: Path) -> dict[str, Path]:
    """Documents (repeats of ``source`` under new ids) giving at least ``contexts`` contexts,
    the first ``contexts`` of them as pre-cut documents, the chat requests for the peers, and
    NeMo-Skills' input rows (the context under the field our prompt file fills) with that file."""
    sys.path.insert(0, str(REPO))
    from mind_nemo.core.records import CONTEXT_FIELD, Document
    from mind_nemo.core.tokenizer import load_fast_tokenizer
    from mind_nemo.synthesize.chunking import Chunker
    from mind_nemo.synthesize.config import ChunkConfig
    from mind_nemo.synthesize.styles import builtin_prompt_path, load_prompt

    base = [json.loads(line) for line in source.read_text().splitlines() if line.strip()]
    chunker = Chunker(load_fast_tokenizer("embedded"), ChunkConfig())
    prompt = load_prompt(STYLE)
    names = ("documents", "contexts", "requests", "ns_input")
    paths = {name: folder / f"{name}.jsonl" for name in names}
    paths["prompt"] = builtin_prompt_path(STYLE)
    cut: list[tuple[str, str]] = []
    with open(paths["documents"], "w") as docs:
        repeat = 0
        while len(cut) < contexts:
            for row in base:
                doc = Document(f"{row['id']}-r{repeat}", row["text"])
                docs.write(json.dumps({"id": doc.id, "text": doc.text}) + "\n")
                cut += [(f"{doc.id}-c{c.index}", c.text) for c in chunker(doc)]
                if len(cut) >= contexts:
                    break
            repeat += 1
    cut = cut[:contexts]
    with (
        open(paths["contexts"], "w") as ctx,
        open(paths["requests"], "w") as req,
        open(paths["ns_input"], "w") as ns,
    ):
        for cid, text in cut:
            ctx.write(json.dumps({"id": cid, "text": text}) + "\n")
            req.write(json.dumps({"id": cid, "messages": prompt.messages(text)}) + "\n")
            ns.write(json.dumps({"id": cid, CONTEXT_FIELD: text}) + "\n")
    return paths


# ----------------------------------------------------------------------------- running one


def _measure(
    cmd: list[str], server: FakeServer, env: dict[str, str] | None = None, cwd: Path = REPO
) -> dict:
    """Run ``cmd`` to the end; wall, CPU, peak RSS of it and its children, server-side rate."""
    server.reset()
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env={**os.environ, "TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1", **(env or {})},
    )  # fmt: skip
    assert proc.stderr is not None
    timer = threading.Timer(RUN_TIMEOUT_S, proc.kill)
    timer.start()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    timer.cancel()
    wall = time.monotonic() - start
    if wall >= RUN_TIMEOUT_S:
        raise RuntimeError(f"{cmd[:4]} still running after {RUN_TIMEOUT_S:.0f} s: killed")
    proc.returncode = os.waitstatus_to_exitcode(status)
    stats = server.stats()
    if proc.returncode != 0:
        tail = err.decode(errors="replace")[-1500:]
        raise RuntimeError(f"{cmd[:4]} failed ({proc.returncode}):\n{tail}")
    n = stats["requests"]
    span = (stats["last_out"] or 0) - (stats["first_in"] or 0)
    return {
        "requests": n,
        "rps": n / span if span > 0 else 0.0,
        "wall_s": wall,
        "cpu_ms_per_request": (usage.ru_utime + usage.ru_stime) * 1000 / max(n, 1),
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "server_cpu_ms_per_request": stats["server_cpu_s"] * 1000 / max(n, 1),
        # None for a client that opens a connection per request (no next request on it)
        "turnaround_ms": stats["turnaround_s"] * 1000 / stats["turnarounds"]
        if stats["turnarounds"]
        else None,
        "first_messages": stats["first_messages"],
    }


def ours_cmd(corpus: Path, url: str, in_flight: int, out: Path, contexts: int) -> list[str]:
    return [
        sys.executable, "-m", "mind_nemo.synthesize", "server=openai", f"server.base_url={url}",
        "server.model=bench", "server.tokenizer=embedded", "server.api_key_env=null",
        "corpus=files", f"corpus.path={corpus}", "corpus.id_field=id", f"output_dir={out}",
        f"+style={STYLE}", "progress=false", f"limit={contexts}",
        f"engine.max_concurrent_requests={in_flight}", f"sampling.max_new_tokens={MAX_TOKENS}",
    ]  # fmt: skip


def nemo_skills_cmd(python: str, paths: dict[str, Path], url: str, in_flight: int,
                    out: Path) -> list[str]:  # fmt: skip
    """``nemo_skills.inference.generate`` as its docs start it against a running vLLM server."""
    return [
        python, "-m", "nemo_skills.inference.generate",
        f"++input_file={paths['ns_input'].resolve()}", f"++output_file={out.resolve()}",
        f"++prompt_config={paths['prompt'].resolve()}",
        "++server.server_type=vllm", f"++server.base_url={url}", "++server.model=bench",
        f"++max_concurrent_requests={in_flight}", f"++inference.tokens_to_generate={MAX_TOKENS}",
        "++inference.temperature=1.0", "++inference.top_p=0.9",
    ]  # fmt: skip


def check_nemo_skills_output(out: Path, ns_input: Path) -> None:
    """One row per input row, same ids, each with a non-empty ``generation``."""
    want = [row["id"] for row in _requests(ns_input)]
    rows = _requests(out) if out.is_file() else []
    empty = sum(1 for row in rows if not row.get("generation"))
    if sorted(str(row.get("id")) for row in rows) != sorted(want) or empty:
        raise RuntimeError(f"nemo_skills wrote {len(rows)} rows for {len(want)} contexts "
                           f"({empty} without a generation) to {out}")  # fmt: skip


@functools.cache
def _expected_messages(requests: Path) -> frozenset[str]:
    return frozenset(json.dumps(row["messages"], sort_keys=True) for row in _requests(requests))


def run_one(
    name: str, python: str, paths: dict[str, Path], server: FakeServer, in_flight: int, args: Any
) -> dict:
    """One whole process of ``name``; checks it sent one request per context, the first with the
    same messages as ``requests.jsonl`` holds for some context, and (NeMo-Skills) its rows."""
    work = Path(tempfile.mkdtemp(prefix="bench-peers-", dir=args.work))
    env, cwd = None, REPO
    try:
        if name.startswith("ours"):
            corpus = paths["documents"] if name == "ours_documents" else paths["contexts"]
            cmd = ours_cmd(corpus, server.url, in_flight, work / "run", args.contexts)
        elif name == "nemo_skills":
            out = work / "ns" / "output.jsonl"
            cmd = nemo_skills_cmd(python, paths, server.url, in_flight, out)
            env, cwd = {"PYTHONPATH": str(args.nemo_skills_dir.resolve())}, work
        else:
            cmd = [python, str(HERE), "--peer", name, "--requests-file", str(paths["requests"]),
                   "--url", server.url, "--in-flight", str(in_flight),
                   "--out", str(work / "out.jsonl")]  # fmt: skip
        result = _measure(cmd, server, env, cwd)
        if result["requests"] != args.contexts:  # one per context: no retries, no n > 1
            raise RuntimeError(f"{name} sent {result['requests']} requests for {args.contexts}")
        first = json.dumps(result.pop("first_messages"), sort_keys=True)
        if first not in _expected_messages(paths["requests"]):
            raise RuntimeError(f"{name} sent messages no context's request holds: {first[:300]}")
        if name == "nemo_skills":
            check_nemo_skills_output(out, paths["ns_input"])
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def step_costs(requests: Path, n: int = 2000) -> dict[str, float]:
    """Microseconds per request of each step our loop thread does besides the network: the
    request body (payload + JSON encode), the answer (JSON decode + parse), the commit (record
    + append to the shard file), the progress bar (enabled, to /dev/null) and the accounting."""
    sys.path.insert(0, str(REPO))
    from mind_nemo.core.jsonl import JsonlAppender
    from mind_nemo.core.records import Conversation
    from mind_nemo.servers.client import OpenAICompatibleClient, parse_completion
    from mind_nemo.synthesize.accounting import SessionStats
    from mind_nemo.synthesize.progress import GenerationProgress

    rows = _requests(requests)[:n]
    client = OpenAICompatibleClient("http://127.0.0.1:1/v1", "bench")
    sampling = {"temperature": 1.0, "top_p": 0.9, "max_tokens": MAX_TOKENS}
    stats = SessionStats()
    stats.started = time.monotonic()
    costs: dict[str, float] = {}

    def timed(name: str, step: Any) -> None:
        start = time.perf_counter()
        for row in rows:
            step(row)
        costs[name] = (time.perf_counter() - start) * 1e6 / len(rows)

    timed("request JSON encode", lambda r: json.dumps(client.payload(r["messages"], sampling)))
    timed("answer JSON decode", lambda r: parse_completion(json.loads(_CHAT_BODY), "chat"))
    with tempfile.TemporaryDirectory() as tmp, JsonlAppender(Path(tmp) / "c.jsonl") as out:

        def commit(row: dict[str, Any]) -> None:
            conversation = Conversation(ANSWER, STYLE, row["id"], 0, model="bench",
                                        sampling=sampling, created=time.time())  # fmt: skip
            out.append(conversation.to_json())

        timed("commit (record + append)", commit)
    with open(os.devnull, "w") as devnull:
        real_stderr, sys.stderr = sys.stderr, devnull
        try:
            bar = GenerationProgress(stats, len(rows), enabled=True)
            timed("progress bar", lambda r: bar.update())
            bar.close()
        finally:
            sys.stderr = real_stderr
    timed("accounting", lambda r: stats.record_success(STYLE, 600, 0, 64))
    return costs


LABELS = {
    "ours_documents": "ours (documents)",
    "ours_contexts": "ours (contexts)",
    "openai_loop": "AsyncOpenAI loop",
    "datatrove": "datatrove InferenceRunner",
    "nemo_skills": "NeMo-Skills generate",
}


def _median(values: list[Any]) -> Any:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def compile_sources(*folders: Path) -> None:
    """Write the bytecode of every module under ``folders`` (see the module doc)."""
    import compileall

    for folder in folders:
        if not compileall.compile_dir(folder, quiet=1):
            raise RuntimeError(f"could not compile {folder}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contexts", type=int, default=2006)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--settings", default="64:0,512:0,64:0.05,512:0.05",
                        help="in_flight:latency_s pairs")  # fmt: skip
    parser.add_argument("--datatrove-python", default=None)
    parser.add_argument("--nemo-skills-python", default=None)
    parser.add_argument("--nemo-skills-dir", default=None, type=Path,
                        help="NeMo-Skills checkout (put on PYTHONPATH); needed with "
                        "--nemo-skills-python")  # fmt: skip
    parser.add_argument("--only", default=None, help="comma-separated contenders")
    parser.add_argument("--work", default=None, help="folder for temporary files")
    parser.add_argument("--json", default=None, help="write all measurements here")
    parser.add_argument("--steps-only", action="store_true", help="only the per-step costs")
    # internal modes
    parser.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--latency", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--peer", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--requests-file", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--url", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--in-flight", type=int, default=64, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        asyncio.run(_serve(args.serve, args.latency))
        return
    if args.peer is not None:
        PEERS[args.peer](Path(args.requests_file), args.url, args.in_flight, Path(args.out))
        return

    contenders = {"ours_documents": sys.executable, "ours_contexts": sys.executable,
                  "openai_loop": sys.executable}  # fmt: skip
    for name, python, flag in (
        ("datatrove", args.datatrove_python, "--datatrove-python"),
        ("nemo_skills", args.nemo_skills_python, "--nemo-skills-python"),
    ):
        if python:
            contenders[name] = python
        else:
            print(f"{LABELS[name]}: skipped (give {flag} PATH to its venv's python)")
    ns_dir = args.nemo_skills_dir
    if args.nemo_skills_python and ns_dir is None:
        parser.error("--nemo-skills-python needs --nemo-skills-dir, the NeMo-Skills checkout")
    if ns_dir is not None and not (ns_dir / "nemo_skills" / "inference" / "generate.py").is_file():
        parser.error(f"--nemo-skills-dir {ns_dir}: no nemo_skills/inference/generate.py there")
    if args.only:
        contenders = {k: v for k, v in contenders.items() if k in args.only.split(",")}
    settings = [(int(a), float(b)) for a, b in (s.split(":") for s in args.settings.split(","))]
    compile_sources(REPO / "mind_nemo", *([ns_dir / "nemo_skills"] if ns_dir else []))
    folder = Path(tempfile.mkdtemp(prefix="bench-peers-data-", dir=args.work))
    paths = prepare(folder, args.contexts, REPO / "mind_nemo" / "data" / "sample_owm.jsonl")
    costs = step_costs(paths["requests"])
    print("our loop's per-request steps besides the network (µs/request): "
          + ", ".join(f"{k} {v:.1f}" for k, v in costs.items()))  # fmt: skip
    if args.steps_only:
        shutil.rmtree(folder, ignore_errors=True)
        return
    print(f"{args.contexts} contexts; {args.rounds} interleaved rounds; "
          f"load average at start {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")  # fmt: skip
    results: dict[tuple[str, int, float], list[dict]] = {}
    servers = {latency: FakeServer(latency) for latency in {lat for _, lat in settings}}
    try:
        for round_no in range(args.rounds):
            for in_flight, latency in settings:
                for name, python in contenders.items():
                    result = run_one(name, python, paths, servers[latency], in_flight, args)
                    results.setdefault((name, in_flight, latency), []).append(result)
                    print(f"round {round_no + 1} {LABELS[name]:26} {in_flight:4} in flight "
                          f"{latency * 1000:3.0f} ms: {result['rps']:7.0f} req/s "
                          f"{result['wall_s']:5.2f} s {result['cpu_ms_per_request']:5.2f} ms/req "
                          f"{result['peak_rss_mb']:5.0f} MB", flush=True)  # fmt: skip
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    print(f"\nmedians of {args.rounds} rounds, {args.contexts} requests each; load average now "
          f"{os.getloadavg()[0]:.1f}")  # fmt: skip
    header = ("| in flight, latency | contender | req/s during generation | wall s | CPU ms/req "
              "| peak RSS MB | server CPU ms/req | answer to next request ms |")  # fmt: skip
    print(header)
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    table = []
    for (name, in_flight, latency), runs in results.items():
        med = {k: _median([r[k] for r in runs]) for k in runs[0]}
        table.append({"contender": name, "in_flight": in_flight, "latency_s": latency, **med})
    for row in sorted(table, key=lambda r: (r["in_flight"], r["latency_s"])):
        label = LABELS[row["contender"]]
        print(f"| {row['in_flight']}, {row['latency_s'] * 1000:.0f} ms | {label} "
              f"| {row['rps']:.0f} | {row['wall_s']:.2f} | {row['cpu_ms_per_request']:.2f} "
              f"| {row['peak_rss_mb']:.0f} | {row['server_cpu_ms_per_request']:.2f} "
              f"| {_ms(row['turnaround_ms'])} |")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
