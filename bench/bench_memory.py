"""Memory: peak RSS of a ``synthesize`` run on 1M stub-served documents vs 1k.

The stage streams the corpus, keeps at most ``max_concurrent_requests`` requests in flight and
appends results as they arrive, so its peak RSS should not depend on corpus size. Both runs use
the same instant stub server and one style; peak RSS is the child's ``ru_maxrss`` from
``os.wait4``. Goal: ratio <= 1.2. The 1M run takes a while on two cores (it really makes a
million requests); ``--sizes`` picks other sizes.

    .venv/bin/python bench/bench_memory.py --sizes 1000,1000000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mind_nemo.servers.stub import StubProcess


def write_corpus(path: Path, n: int) -> None:
    with open(path, "w") as f:
        for i in range(n):
            text = f"Compute {i} + {i + 1}. The sum is {2 * i + 1}, an odd number."
            f.write(json.dumps({"id": f"d{i}", "text": text}) + "\n")


def run_once(url: str, corpus: Path, out: Path) -> tuple[int, float, dict]:
    cmd = [sys.executable, "-m", "mind_nemo.synthesize", "+style=rephrase", "corpus=files",
           f"corpus.path={corpus}", "corpus.id_field=id", "server=openai",
           f"server.base_url={url}", "server.model=stub", "server.tokenizer=embedded",
           "server.api_key_env=null", f"output_dir={out}", "progress=false",
           "engine.max_concurrent_requests=128"]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"synthesize failed with status {status}")
    manifest = json.loads((out / "manifest.json").read_text())
    return usage.ru_maxrss, time.perf_counter() - start, manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,1000000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    stub = StubProcess("--words", "20")
    url = stub.url
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for n in sizes:
                corpus = Path(tmp) / f"corpus-{n}.jsonl"
                write_corpus(corpus, n)
                rss_kb, wall, manifest = run_once(url, corpus, Path(tmp) / f"run-{n}")
                rows.append((n, rss_kb / 1024, wall, manifest["conversations"]))
                print(f"{n:>9} docs: peak RSS {rss_kb / 1024:8.1f} MiB, {wall:7.1f}s, "
                      f"{manifest['conversations']} conversations", flush=True)  # fmt: skip
    finally:
        stub.stop()
    base = rows[0]
    print(f"\n{'documents':>10} {'conversations':>14} {'peak RSS MiB':>13} {'vs smallest':>12}")
    for n, rss, _, convs in rows:
        print(f"{n:>10} {convs:>14} {rss:13.1f} {rss / base[1]:11.3f}x")


if __name__ == "__main__":
    main()
