"""Memory and time of chunking one huge document, against one whole-document tokenizer call.

A web corpus holds the odd 20 MB page. The chunker tokenises a document longer than
``chunking.PIECE_CHARS`` piece by piece and keeps ~13 bytes per token in arrays, so its peak
memory should grow slowly and its time linearly with the document's size. The named baseline,
``whole-call``, is what the chunker used to start with: one tokenizer call over the whole text
with offsets, turned into a Python list of ``(start, end)`` tuples (the old chunker then built
several more per-token lists, so it peaked higher still). ``--old-module`` also measures any
other copy of ``chunking.py``, e.g. the previous one:
``git show HEAD:mind_nemo/synthesize/chunking.py > /tmp/old_chunking.py``.

Each (size, method) runs in a fresh subprocess; its peak RSS is ``ru_maxrss`` and "before" is
the RSS once the embedded tokenizer is loaded and the document built, so "added" is what the
method itself costs. The document is the packaged sample corpus repeated (math web text).

    .venv/bin/python bench/bench_chunk_memory.py
    .venv/bin/python bench/bench_chunk_memory.py --sizes 1,5 --methods chunker
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import subprocess
import sys
import time
from typing import Any

METHODS = ("chunker", "whole-call")


def _rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _document(size_mb: float) -> str:
    """About ``size_mb`` million characters of the sample corpus, pages separated by blank
    lines."""
    from mind_nemo.core.corpus import CorpusConfig, iter_documents

    pages = [d.text for d in iter_documents(CorpusConfig(path="sample"))]
    target = int(size_mb * 1_000_000)
    parts: list[str] = []
    total = 0
    while total < target:
        for page in pages:
            parts.append(page)
            total += len(page) + 2
            if total >= target:
                break
    return "\n\n".join(parts)[:target]


def _load_chunking(path: str | None) -> Any:
    """The current chunking module, or the one at ``path``."""
    if path is None:
        from mind_nemo.synthesize import chunking

        return chunking
    spec = importlib.util.spec_from_file_location("other_chunking", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["other_chunking"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def child(method: str, size_mb: float, old_module: str | None) -> dict[str, Any]:
    """Measure one method on one document in this (fresh) process."""
    from mind_nemo.core.records import Document
    from mind_nemo.servers.embedded_model import load_tokenizer
    from mind_nemo.synthesize.config import ChunkConfig

    tokenizer = load_tokenizer("embedded")
    tokenizer("warm up", add_special_tokens=False, return_offsets_mapping=True)
    chunking = _load_chunking(old_module if method == "old-module" else None)
    text = _document(size_mb)
    before = _rss_mb()
    start = time.perf_counter()
    if method == "whole-call":
        encoding = tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, verbose=False
        )
        offsets = [(int(a), int(b)) for a, b in encoding["offset_mapping"]]
        tokens, contexts = len(offsets), None
    else:
        result = chunking.split_into_contexts(Document("big", text), tokenizer, ChunkConfig())
        tokens, contexts = result[-1].token_end, len(result)
    seconds = time.perf_counter() - start
    return {
        "chars": len(text),
        "tokens": tokens,
        "contexts": contexts,
        "seconds": seconds,
        "before_mb": before,
        "peak_mb": _rss_mb(),
    }


def run(method: str, size_mb: float, old_module: str | None) -> dict[str, Any]:
    """Run :func:`child` in a fresh interpreter and return what it measured."""
    cmd = [sys.executable, __file__, "--child", method, "--sizes", str(size_mb)]
    if old_module:
        cmd += ["--old-module", old_module]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{method} at {size_mb} MB failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,5,20", help="document sizes in MB, comma-separated")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"of {', '.join(METHODS)}")
    parser.add_argument("--old-module", help="also measure split_into_contexts of this file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = [float(s) for s in args.sizes.split(",")]
    if args.child:
        print(json.dumps(child(args.child, sizes[0], args.old_module)))
        return
    methods = args.methods.split(",") + (["old-module"] if args.old_module else [])
    header = ["size MB", "method", "tokens", "contexts", "time s", "MB/s", "before MB",
              "peak MB", "added MB"]  # fmt: skip
    rows = []
    for size in sizes:
        for method in methods:
            r = run(method, size, args.old_module)
            rows.append([
                f"{r['chars'] / 1e6:g}", method, f"{r['tokens']:,}",
                "-" if r["contexts"] is None else f"{r['contexts']:,}",
                f"{r['seconds']:.1f}", f"{r['chars'] / 1e6 / max(r['seconds'], 1e-9):.2f}",
                f"{r['before_mb']:.0f}", f"{r['peak_mb']:.0f}",
                f"{r['peak_mb'] - r['before_mb']:.0f}",
            ])  # fmt: skip
            print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
    from mind_nemo.core.tables import format_table

    print(format_table(header, rows))


if __name__ == "__main__":
    main()
