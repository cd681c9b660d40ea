"""Dedup at scale: conversations/s and peak RSS per process, scalable vs in-memory vs datatrove.

The bench writes N synthetic conversations (seeded; about 120 words each from a large random
vocabulary, so distinct ones share no 5-gram) with planted duplicates: ``--exact`` of them are
case/whitespace-changed copies of an earlier row and ``--near`` are copies with 1-3 words
edited, within and across shards. They are laid out as a filter run's pass-1 staging, then
every dedup step runs in its own subprocess, pinned to one CPU, and reports the CPU seconds of
the step itself (imports excluded; the machine may be shared, so CPU time, not wall time, gives
conversations/s per core) and its peak RSS (``VmHWM``):

- ``sign``: exact fingerprints and MinHash signatures (what ``step=shard`` adds to pass 1);
- scalable path: ``split``, ``bucket`` (all hash ranges), ``cluster``, ``apply``;
- in-memory path: ``finalize``'s dedup and rewrite (LSH index in one process);
- datatrove's MinHash pipeline (``MinhashDedupSignature/Buckets/Cluster/Filter``) with the same
  shingles, bands and rows per band, when ``--datatrove-python`` names a Python that has it
  (install it in its own venv); skipped with a message otherwise.

It checks that the scalable and in-memory paths removed the same rows, and projects the
node-hours for the released 231.6M conversations at the measured rate.

    .venv/bin/python bench/bench_dedup.py --conversations 100000 \\
        --datatrove-python /tmp/dt-venv/bin/python
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

RELEASED = 231_600_000
STEPS = ("sign", "split", "bucket", "cluster", "apply", "memory")


def shard_names(shards: int) -> list[str]:
    from mind_nemo.core.run_folder import shard_name

    return [shard_name(i, shards) for i in range(shards)]


def generate(root: Path, n: int, shards: int, exact: float, near: float, seed: int) -> None:
    """Staged rows per shard (filter layout) and the same texts as datatrove JSONL input."""
    from mind_nemo.filter.layout import OutputLayout

    rng = random.Random(seed)
    vocab = [f"w{rng.getrandbits(40):x}" for _ in range(50_000)]
    layout = OutputLayout(root / "out")
    names = shard_names(shards)
    per = -(-n // shards)
    texts: list[str] = []
    (root / "dt-input").mkdir(parents=True, exist_ok=True)
    for s, name in enumerate(names):
        kept, rejects = layout.staged_kept(name), layout.staged_rejects(name)
        kept.parent.mkdir(parents=True, exist_ok=True)
        rejects.parent.mkdir(parents=True, exist_ok=True)
        rejects.write_text("")
        with open(kept, "w") as out, open(root / "dt-input" / f"{name}.jsonl", "w") as dt:
            for k in range(min(per, n - s * per)):
                roll = rng.random()
                if texts and roll < exact:
                    text = "  " + rng.choice(texts).upper()
                elif texts and roll < exact + near:
                    words = rng.choice(texts).split()
                    for _ in range(rng.randint(1, 3)):
                        words[rng.randrange(len(words))] = rng.choice(vocab)
                    text = " ".join(words)
                else:
                    text = " ".join(rng.choices(vocab, k=rng.randint(100, 140)))
                texts.append(text)
                row = {
                    "text": text,
                    "conversational_style": "debate",
                    "document_id": f"doc-{s}-{k}",
                    "context_index": 0,
                    "sample": 0,
                }
                out.write(json.dumps(row) + "\n")
                dt.write(json.dumps({"id": f"{s}-{k}", "text": text}) + "\n")


def dedup_parts(root: Path, shards: int) -> Any:
    from mind_nemo.filter.config import DedupConfig, DedupRunConfig
    from mind_nemo.filter.dedup.steps import ScalableDedup
    from mind_nemo.filter.layout import OutputLayout

    run = DedupRunConfig(mode="scalable", ranges=64)
    return ScalableDedup(
        OutputLayout(root / "out"), shard_names(shards), DedupConfig(), run, "bench", "uint32"
    )


def step(name: str, root: Path, shards: int) -> dict[str, Any]:
    """One step, in this (sub)process."""
    from mind_nemo.core.jsonl import iter_jsonl

    dedup = dedup_parts(root, shards)
    layout = dedup.layout
    if name == "sign":
        from mind_nemo.filter.rules.dedup import SignatureWriter, Signer, fingerprint

        signer = Signer(dedup.settings)
        for shard in dedup.shards:
            writer = SignatureWriter(layout.fingerprints(shard), layout.signatures(shard))
            for row in iter_jsonl(layout.staged_kept(shard)):
                writer.add(fingerprint(row["text"]), signer.signature(row["text"]))
            writer.close()
    elif name == "split":
        for shard in dedup.shards:
            dedup.split(shard, "bench")
    elif name == "bucket":
        inputs, _ = dedup.inputs()
        for r in range(dedup.ranges):
            dedup.bucket(r, inputs)
    elif name == "cluster":
        return {"counts": {k: dedup.cluster()[k] for k in ("exact", "near", "pairs")}}
    elif name == "apply":
        inputs, _ = dedup.inputs()
        for shard in dedup.shards:
            dedup.apply(shard, inputs)
        return {"removed": removed(layout, dedup.shards)}
    elif name == "memory":
        from mind_nemo.filter.config import FilterStageConfig
        from mind_nemo.filter.finalize import decide_duplicates, rewrite
        from mind_nemo.filter.rules.dedup import Signer
        from mind_nemo.filter.tally import Tally

        for shard in dedup.shards:  # the apply step already wrote finals: start clean
            layout.conversations(shard).unlink(missing_ok=True)
        cfg = FilterStageConfig(run_dir="bench", output_dir="bench")
        signer = Signer(cfg.filter.dedup)
        drops, originals = decide_duplicates(layout, dedup.shards, cfg, signer)
        rewrite(layout, dedup.shards, drops, originals, Tally())
        return {"removed": removed(layout, dedup.shards)}
    return {}


def removed(layout: Any, shards: list[str]) -> list[str]:
    from mind_nemo.core.jsonl import iter_jsonl

    return sorted(
        r["document_id"]
        for s in shards
        for r in iter_jsonl(layout.rejects(s))
        if "reject_reason" in r
    )


def peak_rss_mb() -> float:
    """This process's own peak RSS (``VmHWM``: reset by exec, unlike ``ru_maxrss``, which keeps
    the forked parent's size)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(argv: list[str], python: str = sys.executable) -> dict[str, Any]:
    """Run a child pinned to one CPU; its JSON result plus wall seconds and peak RSS."""
    cpu = sorted(os.sched_getaffinity(0))[0]
    started = time.monotonic()
    done = subprocess.run(
        ["taskset", "-c", str(cpu), python, *argv], capture_output=True, text=True, check=False
    )
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"{argv[:3]} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_s"] = seconds
    return result


DATATROVE = textwrap.dedent(
    """
    import json, sys, time
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup import (MinhashDedupBuckets, MinhashDedupCluster,
        MinhashDedupFilter, MinhashDedupSignature)
    from datatrove.pipeline.dedup.minhash import MinhashConfig
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    stage, root, tasks = sys.argv[1], sys.argv[2], int(sys.argv[3])
    # datatrove's default 64-bit xxhash (it passes str, so it needs xxhash<4)
    cfg = MinhashConfig(n_grams=5, num_buckets=9, hashes_per_bucket=13, seed=1)
    inp = JsonlReader(f"{root}/dt-input")
    if stage == "signature":
        steps = [inp, MinhashDedupSignature(output_folder=f"{root}/dt/sigs", config=cfg)]
    elif stage == "buckets":
        steps = [MinhashDedupBuckets(input_folder=f"{root}/dt/sigs",
                                     output_folder=f"{root}/dt/buckets", config=cfg)]
        tasks = cfg.num_buckets
    elif stage == "cluster":
        steps = [MinhashDedupCluster(input_folder=f"{root}/dt/buckets",
                                     output_folder=f"{root}/dt/remove_ids", config=cfg)]
        tasks = 1
    else:
        steps = [inp, MinhashDedupFilter(input_folder=f"{root}/dt/remove_ids",
                 exclusion_writer=JsonlWriter(f"{root}/dt/removed")),
                 JsonlWriter(f"{root}/dt/kept")]
    cpu, wall = time.process_time(), time.monotonic()
    LocalPipelineExecutor(pipeline=steps, tasks=tasks, workers=1,
                          logging_dir=f"{root}/dt/logs/{stage}").run()
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    removed = 0
    if stage == "filter":
        import glob, gzip
        for path in glob.glob(f"{root}/dt/removed/*"):
            with gzip.open(path, "rt") as f:
                removed += sum(1 for _ in f)
    hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
    rss = int(hwm.split()[1]) / 1024
    print(json.dumps({"rss_mb": rss, "removed": removed, "cpu_s": cpu, "step_s": wall}))
    """
)


def bench(n: int, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    started = time.monotonic()
    generate(root, n, args.shards, args.exact, args.near, args.seed)
    print(f"[{n}] generated in {time.monotonic() - started:.1f}s", file=sys.stderr)
    here = str(Path(__file__).resolve())
    results: dict[str, Any] = {}
    for name in STEPS:
        if name == "memory" and args.no_memory:
            continue
        results[name] = run_child([here, "--step", name, "--root", str(root), *shard_arg(args)])
        print(f"[{n}] {name}: {results[name]['cpu_s']:.1f} CPU s", file=sys.stderr)
    same = None if args.no_memory else results["apply"]["removed"] == results["memory"]["removed"]
    out: dict[str, Any] = {"n": n, "steps": results, "same_removed": same}
    if n > args.datatrove_max:
        print(
            f"[{n}] datatrove: skipped above --datatrove-max {args.datatrove_max}", file=sys.stderr
        )
        out["datatrove"] = None
    elif args.datatrove_python and Path(args.datatrove_python).exists():
        dt: dict[str, Any] = {}
        script = root / "datatrove_stage.py"
        script.write_text(DATATROVE)
        for stage in ("signature", "buckets", "cluster", "filter"):
            argv = [str(script), stage, str(root), str(args.shards)]
            dt[stage] = run_child(argv, python=args.datatrove_python)
            print(f"[{n}] datatrove {stage}: {dt[stage]['cpu_s']:.1f} CPU s", file=sys.stderr)
        out["datatrove"] = dt
    else:
        out["datatrove"] = None
    return out


def shard_arg(args: argparse.Namespace) -> list[str]:
    return ["--shards", str(args.shards)]


def report(runs: list[dict[str, Any]], node_cores: int) -> None:
    head = (
        f"{'conversations':>13} {'path':<10} {'step':<9} {'CPU s':>8} {'wall s':>8} "
        f"{'conv/s/core':>11} {'RSS MB':>8}"
    )
    print(head)
    for r in runs:
        n = r["n"]
        rows = [("ours", k, v) for k, v in r["steps"].items()]
        rows += [("datatrove", k, v) for k, v in (r["datatrove"] or {}).items()]
        for path, name, v in rows:
            label = "memory" if name == "memory" else path
            print(
                f"{n:>13} {label:<10} {name:<9} {v['cpu_s']:>8.1f} {v['step_s']:>8.1f} "
                f"{n / max(v['cpu_s'], 1e-9):>11.0f} {v['rss_mb']:>8.0f}"
            )
    for r in runs:
        n, s = r["n"], r["steps"]
        scalable = sum(s[k]["cpu_s"] for k in ("sign", "split", "bucket", "cluster", "apply"))
        memory = s["sign"]["cpu_s"] + s["memory"]["cpu_s"] if "memory" in s else None
        peak = max(s[k]["rss_mb"] for k in ("split", "bucket", "cluster", "apply"))
        print(f"\n{n} conversations: planted duplicates removed {s['cluster']['counts']}")
        print(f"  scalable == in-memory removed rows: {r['same_removed']}")
        print(f"  scalable path: {n / scalable:.0f} conv/s per core, peak RSS {peak:.0f} MB")
        if memory is not None:
            print(f"  in-memory path: {n / memory:.0f} conv/s per core, "
                  f"peak RSS {s['memory']['rss_mb']:.0f} MB")  # fmt: skip
        if r["datatrove"]:
            dt = r["datatrove"]
            total = sum(v["cpu_s"] for v in dt.values())
            print(
                f"  datatrove MinHash: {n / total:.0f} conv/s per core, peak RSS "
                f"{max(v['rss_mb'] for v in dt.values()):.0f} MB, removed "
                f"{dt['filter']['removed']}"
            )
        else:
            print("  datatrove: skipped (pass --datatrove-python PATH to a venv that has it)")
        parallel = scalable - s["cluster"]["cpu_s"]
        core_h = RELEASED / (n / parallel) / 3600
        serial_h = RELEASED / (n / s["cluster"]["cpu_s"]) / 3600
        print(
            f"  projected for {RELEASED / 1e6:.1f}M conversations: {core_h:.0f} core-hours in "
            f"array steps = {core_h / node_cores:.1f} node-hours on {node_cores}-core nodes, "
            f"plus {serial_h:.1f} h for the one cluster task"
        )
    if len(runs) > 1:
        peaks = [max(r["steps"][k]["rss_mb"] for k in ("split", "bucket", "cluster", "apply"))
                 for r in runs]  # fmt: skip
        print(f"\npeak RSS ratio {runs[-1]['n']} / {runs[0]['n']}: {peaks[-1] / peaks[0]:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conversations", type=int, nargs="+", default=[100_000])
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--exact", type=float, default=0.1)
    parser.add_argument("--near", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--node-cores", type=int, default=64)
    parser.add_argument("--no-memory", action="store_true", help="skip the in-memory path")
    parser.add_argument("--datatrove-python", default=None)
    parser.add_argument("--datatrove-max", type=int, default=10**9, help="skip it for bigger runs")
    parser.add_argument("--workdir", default=None, help="default: a temporary folder")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--step", choices=STEPS, help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        import mind_nemo.filter.dedup.steps  # noqa: F401  (imports are not the step's time)

        cpu, wall = time.process_time(), time.monotonic()
        result = step(args.step, Path(args.root), args.shards)
        result["cpu_s"] = time.process_time() - cpu
        result["step_s"] = time.monotonic() - wall
        result["rss_mb"] = peak_rss_mb()
        print(json.dumps(result))
        return
    if not args.datatrove_python:
        print("datatrove: skipped (no --datatrove-python given)", file=sys.stderr)
    base = Path(args.workdir or tempfile.mkdtemp(prefix="bench-dedup-"))
    runs = []
    for n in args.conversations:
        root = base / f"n{n}"
        shutil.rmtree(root, ignore_errors=True)
        runs.append(bench(n, args, root))
        shutil.rmtree(root, ignore_errors=True)
    report(runs, args.node_cores)
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=2, default=str))


if __name__ == "__main__":
    main()
