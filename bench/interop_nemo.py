"""Build NeMo 2's ``PreTrainingDataModule`` from ``blend.json`` as the README says.

NeMo is not a dependency of mind_nemo (it pins ``transformers<5``, ``huggingface_hub<1`` and
pulls NeMo-Run, Lightning and dozens more), so the tests cannot import it. This script takes a
NeMo source tree and, optionally, a folder of NeMo's own dependencies installed with
``pip install --target DIR --no-deps ...`` (put first on ``sys.path``, so the project's
environment is left alone), and then runs exactly the README's snippet::

    blend = json.load(open("RUN/blend.json"))["nemo"]
    tokenizer = get_nmt_tokenizer(**blend["tokenizer"])
    data = PreTrainingDataModule(paths=blend["paths"], split=blend["split"],
                                 seq_length=blend["seq_length"], tokenizer=tokenizer, ...)
    data.build(trainer_max_steps=..., trainer_val_check_interval=...,
               trainer_limit_val_batches=..., trainer_limit_test_batches=...)

``build`` runs in a forked child that is killed after ``--timeout`` seconds (megatron-core loops
forever on a split part with 0 documents); ``--with-nemo-default-split`` also builds with
NeMo's default ``split="900,50,50"`` to show what the printed split avoids.

Usage::

    python bench/interop_nemo.py /path/to/NeMo [--deps DIR] [--mix RUN]

Without a checkout it prints how to get one and exits 0; if NeMo cannot be imported it prints
the import error (the first missing package) and exits 1.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
#: Trainer settings handed to ``build`` (NeMo reads them from the Lightning trainer).
GLOBAL_BATCH, VAL_CHECK_INTERVAL, LIMIT_VAL, LIMIT_TEST = 8, 1000, 10, 10


def make_mix(work: Path) -> Path:
    run = work / "mix"
    argv = [sys.executable, "-m", "mind_nemo.mix", f"output_dir={run}", "progress=false"]
    print("$", " ".join(argv[1:]), flush=True)
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"the mix failed:\n{done.stderr[-2000:]}")
    return run


def import_nemo(checkout: Path, deps: Path | None) -> tuple[Any, Any]:
    """NeMo's ``PreTrainingDataModule`` and ``get_nmt_tokenizer`` from the checkout."""
    for path in (deps, checkout):
        if path is not None:
            sys.path.insert(0, str(path))
    import transformers

    if int(transformers.__version__.split(".")[0]) >= 5:  # NeMo imports a name v5 removed
        import huggingface_hub.constants

        transformers.TRANSFORMERS_CACHE = huggingface_hub.constants.HF_HUB_CACHE
    from nemo.collections.llm.gpt.data.pre_training import PreTrainingDataModule
    from nemo.collections.nlp.modules.common.tokenizer_utils import get_nmt_tokenizer

    return PreTrainingDataModule, get_nmt_tokenizer


def build_in_child(data: Any, max_steps: int, queue: Any) -> None:
    data.build(
        trainer_max_steps=max_steps,
        trainer_val_check_interval=VAL_CHECK_INTERVAL,
        trainer_limit_val_batches=LIMIT_VAL,
        trainer_limit_test_batches=LIMIT_TEST,
    )
    parts = (data._train_ds, data._validation_ds, data._test_ds)
    queue.put({
        name: None if ds is None else {"length": len(ds), "documents": {
            Path(p.dataset_path).name: len(p.indices) for p in getattr(ds, "datasets", [ds])}}
        for name, ds in zip(("train", "validation", "test"), parts, strict=True)
    })  # fmt: skip


def build(data: Any, max_steps: int, timeout: float) -> dict[str, Any]:
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=build_in_child, args=(data, max_steps, queue))
    started = time.monotonic()
    child.start()
    child.join(timeout)
    if child.is_alive():
        child.kill()
        child.join()
        return {"build": f"did not finish in {timeout:.0f} s (killed)"}
    report: dict[str, Any] = {
        "build": f"exit {child.exitcode} in {time.monotonic() - started:.2f} s"
    }
    if not queue.empty():
        report["datasets"] = queue.get()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", nargs="?", help="a NeMo checkout (source tree)")
    parser.add_argument("--deps", type=Path, help="folder of NeMo's pip dependencies (--target)")
    parser.add_argument("--mix", type=Path, help="an existing mix run (default: make one)")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--with-nemo-default-split", type=float, metavar="SECONDS")
    opts = parser.parse_args()
    if not opts.checkout or not (Path(opts.checkout) / "nemo" / "collections").is_dir():
        print(
            "skipped: give a NeMo checkout, e.g. git clone https://github.com/NVIDIA/NeMo "
            "/tmp/nemo && python bench/interop_nemo.py /tmp/nemo [--deps DIR]"
        )
        return
    with tempfile.TemporaryDirectory(prefix="interop-nemo-") as tmp:
        mix_dir = opts.mix or make_mix(Path(tmp))
        nemo = json.loads((mix_dir / "blend.json").read_text())
        blend, planned = nemo["nemo"], nemo["split"]["documents"]
        print(f"mix: {mix_dir}\nblend.json nemo: {json.dumps(blend)[:400]}...", flush=True)
        try:
            PreTrainingDataModule, get_nmt_tokenizer = import_nemo(
                Path(opts.checkout).resolve(), opts.deps
            )
        except Exception:  # report whatever stops NeMo importing here
            print("NeMo does not import here:")
            print("".join(traceback.format_exc().splitlines(keepends=True)[-6:]))
            sys.exit(1)
        import nemo as nemo_package

        tokenizer = get_nmt_tokenizer(**blend["tokenizer"])
        train_samples = nemo["train_samples"]
        max_steps = max(1, math.ceil(train_samples / GLOBAL_BATCH))
        report: dict[str, Any] = {
            "nemo": str(Path(nemo_package.__file__).parent),
            "tokenizer": {"class": type(tokenizer).__name__, "eod": tokenizer.eod,
                          "eod_matches_mix": tokenizer.eod == nemo["tokenizer"]["eod"]},
            "trainer": {"max_steps": max_steps, "val_check_interval": VAL_CHECK_INTERVAL,
                        "limit_val_batches": LIMIT_VAL, "limit_test_batches": LIMIT_TEST},
        }  # fmt: skip
        for label, split in (("as printed", blend["split"]), ("nemo default", None)):
            if split is None and not opts.with_nemo_default_split:
                continue
            kwargs = {"split": split} if split is not None else {}
            data = PreTrainingDataModule(
                paths=blend["paths"],
                seq_length=blend["seq_length"],
                tokenizer=tokenizer,
                micro_batch_size=1,
                global_batch_size=GLOBAL_BATCH,
                num_workers=0,
                **kwargs,
            )
            limit = opts.timeout if split is not None else opts.with_nemo_default_split
            result = {"split": data.split, **build(data, max_steps, limit)}
            if "datasets" in result:
                names = {Path(p).name: n for n, p in nemo["prefixes"].items()}
                result["documents_match_plan"] = all(
                    planned[names[name]][part] == n
                    for part, ds in result["datasets"].items()
                    if ds is not None
                    for name, n in ds["documents"].items()
                )
            report[label] = result
        print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
