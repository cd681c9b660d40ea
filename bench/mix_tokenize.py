"""Benchmark: tokens/s into Megatron .bin/.idx, mind_nemo.mix against the usual tools.

Every row tokenizes the same JSONL text with the same tokenizer and worker count, as a user
would run it (a fresh process, startup included), and writes .bin/.idx:

* ``mind_nemo.mix``: ``python -m mind_nemo.mix mix=single``.
* Megatron-LM ``tools/preprocess_data.py`` (``--megatron-lm DIR`` or ``$MEGATRON_LM``: a
  checkout matching the installed megatron-core, e.g. tag ``core_v0.16.1``; the row is skipped
  with a message when absent). Its extra imports (``six``, ``triton``) can live in a separate
  folder passed with ``--megatron-extra-path``.
* datatrove's ``MegatronDocumentTokenizer`` (``--datatrove-python``: an interpreter where
  ``import datatrove`` works; skipped when absent).
* the ceiling: the raw Hugging Face tokenizer batch-encoding the texts already in memory (no
  I/O, no files), with as many threads as workers, with ``encode_batch`` and with the faster
  ``encode_batch_fast`` (no offsets).

The input defaults to the packaged samples plus text and Python files of the standard library
(deterministic, ~``--mb`` MB); pass ``--input`` for your own JSONL. The best of ``--repeat`` runs
counts (the machine may be shared). Prints a table and writes ``OUT/results.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def build_input(path: Path, megabytes: float) -> None:
    """Packaged samples + standard-library text files, one document per file."""
    budget = int(megabytes * 1e6)
    files = [
        REPO / "mind_nemo/data/sample_owm.jsonl",
        REPO / "mind_nemo/data/general_web_sample.jsonl",
    ]
    written = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as out:
        for sample in files:
            for line in sample.read_text().splitlines():
                out.write(json.dumps({"text": json.loads(line)["text"]}) + "\n")
                written += len(line)
        stdlib = Path(sysconfig.get_paths()["stdlib"])
        candidates = sorted(
            p for ext in ("*.py", "*.txt", "*.rst", "*.md") for p in stdlib.rglob(ext)
        )
        while written < budget:  # cycle if the standard library is smaller than asked
            for p in candidates:
                try:
                    text = p.read_text(encoding="utf-8")
                except (UnicodeDecodeError, OSError):
                    continue
                if text.strip():
                    line = json.dumps({"text": text})
                    out.write(line + "\n")
                    written += len(line)
                if written >= budget:
                    break


def split_input(path: Path, folder: Path, parts: int) -> None:
    """The same rows spread over ``parts`` files (datatrove parallelises by file)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    for i in range(parts):
        (folder / f"part-{i:04d}.jsonl").write_text("".join(lines[i::parts]), encoding="utf-8")


def timed(cmd: list[str], env: dict[str, str] | None = None, cwd: Path = REPO) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True,
                          text=True)  # fmt: skip
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return wall, proc.stdout


def read_tokens(prefix: str) -> tuple[int, int, str]:
    """Documents, tokens and .bin sha256 of an indexed dataset (read with megatron-core)."""
    from mind_nemo.mix.writer import file_sha256, megatron_indexed_dataset

    dataset = megatron_indexed_dataset().IndexedDataset(prefix)
    return len(dataset), int(dataset.sequence_lengths.sum()), file_sha256(Path(prefix + ".bin"))


CEILING = """
import json, os, sys, time
from tokenizers import Tokenizer
tok = Tokenizer.from_file(sys.argv[1])
texts = [json.loads(l)["text"] for l in open(sys.argv[2], encoding="utf-8")]
out = {}
for name in ("encode_batch", "encode_batch_fast"):
    fn = getattr(tok, name)
    start = time.perf_counter()
    n = sum(len(e.ids) for e in fn(texts, add_special_tokens=False))
    out[name] = [time.perf_counter() - start, n + len(texts)]
print(json.dumps(out))
"""

DATATROVE = """
import sys
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.tokens import MegatronDocumentTokenizer
if __name__ == "__main__":  # datatrove's workers re-import this file
    inp, out, tok, eos, workers, logs = sys.argv[1:7]
    LocalPipelineExecutor(
        pipeline=[JsonlReader(inp), MegatronDocumentTokenizer(out, tokenizer_name_or_path=tok,
                                                              eos_token=eos)],
        tasks=int(workers), workers=int(workers), logging_dir=logs,
    ).run()
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input", type=Path, help="JSONL with a text field (default: built)")
    parser.add_argument("--mb", type=float, default=40, help="size of the built input in MB")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--tokenizer", default="embedded", help="HF tokenizer name or directory")
    parser.add_argument("--megatron-lm", default=os.environ.get("MEGATRON_LM"))
    parser.add_argument("--megatron-extra-path", default=os.environ.get("MEGATRON_EXTRA_PATH"))
    parser.add_argument("--datatrove-python", default=os.environ.get("DATATROVE_PYTHON"))
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("/tmp/mind_nemo_bench_mix"))
    args = parser.parse_args()

    out: Path = args.out
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    corpus = args.input or out / "input" / "corpus.jsonl"
    if args.input is None:
        build_input(corpus, args.mb)
    split_input(corpus, out / "input" / "parts", args.workers)
    input_mb = corpus.stat().st_size / 1e6

    from mind_nemo.embedded_model import load_tokenizer

    hf = load_tokenizer(args.tokenizer)
    tok_dir = out / "tokenizer"
    hf.save_pretrained(tok_dir)
    eos = hf.eos_token
    py, w = sys.executable, str(args.workers)
    results: dict[str, Any] = {}

    def best(name: str, run: Any, optional: bool = True) -> None:
        walls = []
        for _ in range(args.repeat):
            try:
                wall, info = run()
            except RuntimeError as err:
                if not optional:
                    raise
                print(f"  skipped {name}: it failed: {str(err).strip().splitlines()[-1]}")
                return
            walls.append(wall)
        results[name] = {"wall_s": min(walls), "walls": walls, **info}
        print(f"  {name}: {min(walls):.2f}s (runs: {', '.join(f'{x:.2f}' for x in walls)})",
              flush=True)  # fmt: skip

    print(f"input {corpus} ({input_mb:.1f} MB), tokenizer {args.tokenizer}, workers {w}")

    def ours() -> tuple[float, dict[str, Any]]:
        run_dir = out / "ours"
        shutil.rmtree(run_dir, ignore_errors=True)
        wall, _ = timed([py, "-m", "mind_nemo.mix", "mix=single", f"sources.data.path={corpus}",
                         f"tokenizer.name={tok_dir}", f"workers={w}", f"output_dir={run_dir}",
                         "progress=false"])  # fmt: skip
        docs, tokens, sha = read_tokens(str(run_dir / "datasets" / "data_text_document"))
        return wall, {"documents": docs, "tokens": tokens, "bin_sha256": sha}

    best("mind_nemo.mix", ours, optional=False)

    if args.megatron_lm and (Path(args.megatron_lm) / "tools/preprocess_data.py").is_file():

        def megatron() -> tuple[float, dict[str, Any]]:
            prefix = out / "megatron" / "data"
            shutil.rmtree(prefix.parent, ignore_errors=True)
            prefix.parent.mkdir()
            extra = [args.megatron_lm] + (
                [args.megatron_extra_path] if args.megatron_extra_path else []
            )
            wall, _ = timed(
                [py, f"{args.megatron_lm}/tools/preprocess_data.py", "--input", str(corpus),
                 "--output-prefix", str(prefix), "--tokenizer-type", "HuggingFaceTokenizer",
                 "--tokenizer-model", str(tok_dir), "--append-eod", "--workers", w,
                 "--log-interval", "1000000"],
                env={"PYTHONPATH": os.pathsep.join(extra)},
            )  # fmt: skip
            docs, tokens, sha = read_tokens(f"{prefix}_text_document")
            return wall, {"documents": docs, "tokens": tokens, "bin_sha256": sha}

        best("Megatron-LM preprocess_data.py", megatron)
    else:
        print("  skipped Megatron-LM preprocess_data.py: pass --megatron-lm DIR (a checkout of "
              "github.com/NVIDIA/Megatron-LM at the tag of the installed megatron-core)")  # fmt: skip

    if args.datatrove_python and Path(args.datatrove_python).exists():

        def datatrove() -> tuple[float, dict[str, Any]]:
            target = out / "datatrove"
            shutil.rmtree(target, ignore_errors=True)
            script = out / "datatrove_run.py"
            script.write_text(textwrap.dedent(DATATROVE))
            wall, _ = timed([args.datatrove_python, str(script), str(out / "input" / "parts"),
                             str(target / "data"), str(tok_dir / "tokenizer.json"), eos, w,
                             str(target / "logs")])  # fmt: skip
            prefixes = sorted(str(p)[:-4] for p in (target / "data").glob("*.idx"))
            counts = [read_tokens(p) for p in prefixes]
            return wall, {"documents": sum(c[0] for c in counts),
                          "tokens": sum(c[1] for c in counts), "files": len(prefixes)}  # fmt: skip

        best("datatrove MegatronDocumentTokenizer", datatrove)
    else:
        print("  skipped datatrove: pass --datatrove-python PATH (an interpreter with datatrove "
              "installed, e.g. a separate venv)")  # fmt: skip

    script = out / "ceiling.py"
    script.write_text(CEILING)
    env = {"RAYON_NUM_THREADS": w, "TOKENIZERS_PARALLELISM": "true"}
    ceilings: dict[str, list[float]] = {}
    for _ in range(args.repeat):
        _, stdout = timed([py, str(script), str(tok_dir / "tokenizer.json"), str(corpus)], env=env)
        for name, (seconds, tokens) in json.loads(stdout).items():
            if name not in ceilings or seconds < ceilings[name][0]:
                ceilings[name] = [seconds, tokens]
    for name, (seconds, tokens) in ceilings.items():
        results[f"raw tokenizer {name} (no I/O)"] = {"wall_s": seconds, "tokens": tokens}
    report(results, input_mb, args, out)


def report(results: dict[str, Any], input_mb: float, args: argparse.Namespace, out: Path) -> None:
    base = results.get("Megatron-LM preprocess_data.py")
    ceiling = max((v for k, v in results.items() if k.startswith("raw tokenizer")),
                  key=lambda v: v["tokens"] / v["wall_s"])  # fmt: skip
    rate = {k: v["tokens"] / v["wall_s"] for k, v in results.items()}
    ceiling_rate = ceiling["tokens"] / ceiling["wall_s"]
    header = f"| system | wall s | tokens | tokens/s | vs preprocess_data.py | vs ceiling |"
    lines = [header, "|---|---:|---:|---:|---:|---:|"]
    for name, v in results.items():
        vs_base = f"{rate[name] / (base['tokens'] / base['wall_s']):.2f}x" if base else "-"
        lines.append(f"| {name} | {v['wall_s']:.2f} | {v['tokens']:,} | {rate[name]:,.0f} | "
                     f"{vs_base} | {rate[name] / ceiling_rate:.2f}x |")  # fmt: skip
    print()
    print(f"input {input_mb:.1f} MB JSONL, {args.workers} workers, tokenizer {args.tokenizer}, "
          f"best of {args.repeat}; ceiling = fastest raw batch encode")  # fmt: skip
    print("\n".join(lines))
    ours = results["mind_nemo.mix"]
    if base:
        same = ours["bin_sha256"] == base["bin_sha256"]
        print(f"\n.bin identical to preprocess_data.py's: {'yes' if same else 'NO'}")
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
