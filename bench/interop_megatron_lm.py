"""Run Megatron-LM's own argument handling and data path on the line ``mind_nemo.mix`` prints.

Megatron-LM (``megatron/training``, ``pretrain_gpt.py``) is not on PyPI, so the tests cannot
import it; this script takes a checkout and does what ``pretrain_gpt.py`` does with our
arguments, up to the first thing that needs a GPU:

1. ``megatron.training.arguments.parse_args`` on ``sys.argv`` = the printed Megatron-LM line
   plus the model and batch flags a user adds (a 2-layer toy model), then ``validate_args``;
2. ``megatron.training.global_vars.set_args`` and ``build_tokenizer`` (``--tokenizer-type`` /
   ``--tokenizer-model`` as printed), checked against the mix's end-of-document id;
3. ``pretrain_gpt.core_gpt_dataset_config_from_args`` (blend read from ``--data-args-path``) and
   ``BlendedMegatronDatasetBuilder`` with ``training.get_train_valid_test_num_samples``, on one
   CPU gloo rank, in a forked child killed after a time limit (a split part with 0 documents
   would loop forever).

Usage::

    python bench/interop_megatron_lm.py /path/to/Megatron-LM [--mix RUN] [--timeout 300]

Without ``--mix`` it first makes the quickstart mix (``python -m mind_nemo.mix``) in a temporary
folder. Without a checkout it prints how to get one and exits 0. One import is stubbed:
``megatron.core.transformer.custom_layers.batch_invariant_kernels`` (imported by
``megatron.training.initialize`` for ``--batch-invariant-mode``) needs ``triton``, a GPU-only
package; nothing here calls it. A source tree also lacks megatron-core's compiled dataset
helpers (``helpers_cpp``, built by ``make -C megatron/core/datasets``); if the checkout has none,
the installed megatron-core wheel's copy is loaded in its place (same C++ source at a matching
tag; the report says which was used).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import multiprocessing
import os
import shlex
import subprocess
import sys
import tempfile
import time
import types
import warnings
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
#: What a user adds to our printed line for a (toy) GPT model; nothing data-related.
MODEL_ARGS = [
    "--num-layers", "2", "--hidden-size", "64", "--num-attention-heads", "4",
    "--micro-batch-size", "1", "--global-batch-size", "8", "--lr", "1e-4",
    "--eval-iters", "10", "--eval-interval", "1000",
]  # fmt: skip


def printed_line(mix_dir: Path | None, work: Path) -> tuple[Path, str]:
    """The Megatron-LM line of a mix: run the quickstart mix and take what it printed, or read
    ``blend.json``'s ``megatron_lm.command`` (the same string) of an existing run."""
    if mix_dir is not None:
        blend = json.loads((mix_dir / "blend.json").read_text())
        return mix_dir, blend["megatron_lm"]["command"]
    run = work / "mix"
    argv = [sys.executable, "-m", "mind_nemo.mix", f"output_dir={run}", "progress=false"]
    print("$", " ".join(argv[1:]), flush=True)
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"the mix failed:\n{done.stderr[-2000:]}")
    line = next(x for x in done.stdout.splitlines() if x.startswith("Megatron-LM:"))
    return run, line.split(":", 1)[1].strip()


def import_megatron_lm(checkout: Path) -> str:
    """Put the checkout first on ``sys.path`` (its ``megatron.core`` too), with the one stub and,
    if the tree was never built, the installed wheel's compiled dataset helpers."""
    import importlib.machinery
    import importlib.util

    # found on disk, not imported: importing it would import the installed megatron.core
    built = [
        p for d in sys.path for p in Path(d or ".").glob("megatron/core/datasets/helpers_cpp*.so")
    ]
    sys.path.insert(0, str(checkout))
    name = "megatron.core.transformer.custom_layers.batch_invariant_kernels"
    stub = types.ModuleType(name)
    stub.enable_batch_invariant_mode = lambda *a, **k: None  # type: ignore[attr-defined]
    sys.modules[name] = stub
    warnings.simplefilter("ignore")
    helpers = "megatron.core.datasets.helpers_cpp"
    if list((checkout / "megatron/core/datasets").glob("helpers_cpp*.so")):
        return "the checkout's own (built)"
    if not built:
        return "missing: build it with make -C megatron/core/datasets"
    origin = str(built[0])
    loader = importlib.machinery.ExtensionFileLoader(helpers, origin)
    spec = importlib.util.spec_from_file_location(helpers, origin, loader=loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    sys.modules[helpers] = module
    return f"the installed megatron-core wheel's {origin}"


def megatron_lm_args(ours: list[str]) -> Any:
    """``parse_args`` + ``validate_args`` + ``update_train_iters``, as ``pretrain()`` runs them."""
    from megatron.training import global_vars
    from megatron.training.arguments import parse_args, validate_args
    from megatron.training.training import update_train_iters

    seq = ours[ours.index("--seq-length") + 1] if "--seq-length" in ours else "4096"
    sys.argv = ["pretrain_gpt.py", *ours, *MODEL_ARGS, "--max-position-embeddings", seq]
    with contextlib.redirect_stdout(io.StringIO()):  # it prints all ~600 arguments
        args = parse_args()
        validate_args(args)
    global_vars.set_args(args)
    update_train_iters(args)
    return args


def build_datasets(args: Any, timeout: float) -> dict[str, Any]:
    """``pretrain_gpt.core_gpt_dataset_config_from_args`` + ``BlendedMegatronDatasetBuilder``
    with Megatron-LM's own sample counts, on one gloo rank, stopped after ``timeout`` s."""
    import pretrain_gpt
    from megatron.training.training import get_train_valid_test_num_samples

    try:
        config = pretrain_gpt.core_gpt_dataset_config_from_args(args)
    except AssertionError as err:
        return {"config": f"AssertionError: {err}"}
    sizes = list(get_train_valid_test_num_samples())
    report: dict[str, Any] = {"split_matrix": config.split_matrix, "num_samples": sizes}

    # The builder runs in worker threads, which no signal stops: build in a forked child
    # (megatron already imported, arguments set) and kill it when the time is up.
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_build_in_child, args=(config, sizes, queue))
    started = time.monotonic()
    child.start()
    child.join(timeout)
    if child.is_alive():
        child.kill()
        child.join()
        report["build"] = f"did not finish in {timeout:.0f} s (killed)"
        return report
    report["build"] = f"exit {child.exitcode} after {time.monotonic() - started:.2f} s"
    if not queue.empty():
        report["datasets"] = queue.get()
    return report


def _build_in_child(config: Any, sizes: list[int], queue: Any) -> None:
    import torch.distributed as dist
    from megatron.core.datasets.blended_megatron_dataset_builder import (
        BlendedMegatronDatasetBuilder,
    )
    from megatron.core.datasets.gpt_dataset import GPTDataset

    cache = tempfile.mkdtemp(prefix="megatron-cache-")
    dist.init_process_group("gloo", init_method=f"file://{cache}/pg", rank=0, world_size=1)
    try:
        built = BlendedMegatronDatasetBuilder(GPTDataset, sizes, lambda: True, config).build()
    finally:
        dist.destroy_process_group()
    queue.put({
        part: None if ds is None else {"length": len(ds), "documents": {
            Path(p.dataset_path).name: len(p.indices) for p in getattr(ds, "datasets", [ds])}}
        for part, ds in zip(("train", "valid", "test"), built, strict=True)
    })  # fmt: skip


def as_printed(line: str, blend: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Our printed line, as given."""
    from megatron.training import global_vars
    from megatron.training.tokenizer import build_tokenizer

    print("$ pretrain_gpt.py", line, "<model flags>", flush=True)
    args = megatron_lm_args(shlex.split(line))
    report: dict[str, Any] = {"validate_args": "ok"}
    keys = ("data_args_path", "split", "seq_length", "train_samples", "train_iters")
    report["args"] = {k: getattr(args, k) for k in keys}
    tokenizer = build_tokenizer(args)
    global_vars._GLOBAL_TOKENIZER = tokenizer
    report["tokenizer"] = {
        "class": type(tokenizer).__name__,
        "eod": tokenizer.eod,
        "vocab_size": tokenizer.vocab_size,
        "eod_matches_mix": tokenizer.eod == blend["tokenizer"]["eod"],
    }
    report.update(build_datasets(args, timeout))
    names = {Path(p).name: n for n, p in blend["prefixes"].items()}
    report["documents_match_plan"] = "datasets" in report and all(
        blend["split"]["documents"][names[name]][part.replace("valid", "validation")] == n
        for part, ds in report["datasets"].items()
        if ds is not None
        for name, n in ds["documents"].items()
    )
    return report


def without_our_split(line: str, data_args: str, timeout: float) -> dict[str, Any]:
    """The two ways in the original issue: ``--data-args-path`` without ``--split``, and
    ``--data-path $(cat data_args.txt)`` (Megatron-LM's legacy default split)."""
    words = shlex.split(line)
    at = words.index("--split")
    rest = words[:at] + words[at + 2 :]
    report: dict[str, Any] = {}
    args = megatron_lm_args(rest)
    report["--data-args-path, no --split"] = {"split": args.split, **build_datasets(args, timeout)}
    at = rest.index("--data-args-path")
    bare = [*rest[:at], "--data-path", *data_args.split(), *rest[at + 2 :]]
    args = megatron_lm_args(bare)
    report["--data-path $(cat data_args.txt), no --split"] = {
        "split": args.split,
        **{k: v for k, v in build_datasets(args, timeout).items() if k != "datasets"},
    }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", nargs="?", help="a Megatron-LM checkout (source tree)")
    parser.add_argument("--mix", type=Path, help="an existing mix run (default: make one)")
    parser.add_argument("--timeout", type=float, default=300.0, help="per dataset build (s)")
    parser.add_argument(
        "--without-our-split",
        type=float,
        metavar="SECONDS",
        help="also run the line without --split (the original failure), builds stopped after "
        "SECONDS",
    )
    opts = parser.parse_args()
    if not opts.checkout or not (Path(opts.checkout) / "megatron" / "training").is_dir():
        print(
            "skipped: give a Megatron-LM checkout, e.g. git clone --branch core_v0.16.1 "
            "https://github.com/NVIDIA/Megatron-LM /tmp/megatron-lm && python "
            "bench/interop_megatron_lm.py /tmp/megatron-lm"
        )
        return
    checkout = Path(opts.checkout).resolve()
    with tempfile.TemporaryDirectory(prefix="interop-megatron-") as tmp:
        mix_dir, line = printed_line(opts.mix, Path(tmp))
        print(f"mix: {mix_dir}\nprinted: Megatron-LM:  {line}", flush=True)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        helpers = import_megatron_lm(checkout)
        import megatron.core

        if not str(Path(megatron.core.__file__).resolve()).startswith(str(checkout)):
            raise SystemExit(f"megatron.core came from {megatron.core.__file__}, not {checkout}")
        blend = json.loads((mix_dir / "blend.json").read_text())
        report: dict[str, Any] = {"checkout": str(checkout), "helpers_cpp": helpers}
        report["as printed"] = as_printed(line, blend, opts.timeout)
        if opts.without_our_split:
            data_args = (mix_dir / "data_args.txt").read_text()
            report.update(without_our_split(line, data_args, opts.without_our_split))
        print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
