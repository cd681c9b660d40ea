"""``python -m mind_nemo.mix [mix=NAME] [overrides]``: sources -> Megatron .bin/.idx + blend.

Tokenizes every enabled source of the chosen ``mix/`` config in parallel worker processes into
one indexed dataset per source, then sizes the blend by tokens (the paper's 2:1 math to general)
and writes ``blend.json``/``data_args.txt`` for Megatron-LM and NeMo plus ``manifest.json``.
Rerunning the same command reuses every finished source. In a SLURM array each task tokenizes
its shard (``step=shard``); one more run with ``step=finalize`` merges the parts and plans.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import hydra
from omegaconf import DictConfig

from mind_nemo.core.cli import CONFIG_PATH, run_hydra_main
from mind_nemo.core.config import typed_config
from mind_nemo.core.errors import exit_on_user_error
from mind_nemo.core.tables import format_table
from mind_nemo.mix.config import MixConfig
from mind_nemo.mix.run import MixRun


def print_summary(run: MixRun, manifest: dict[str, Any]) -> None:
    print()
    print(f"run folder:   {run.run_dir}")
    tok = manifest.get("tokenizer") or run.tokenizer.describe()
    print(
        f"tokenizer:    {tok['type']} {tok['name']} (vocab {tok['vocab_size']}, eod {tok['eod']})"
    )
    if manifest["status"] == "shard_complete":
        rows = [
            [n, r.get("documents", 0), r.get("tokens", 0), run.session.get(n, "reused")]
            for n, r in manifest["sources"].items()
        ]
        print(format_table(["source", "documents", "tokens", "this session"], rows))
        print(
            f"shard {run.shard_id} of {run.num_shards} done; when every shard is done, run the "
            "same command with step=finalize"
        )
        return
    rows = [
        [
            n,
            s["group"],
            s["documents"],
            s["tokens"],
            f"{s['share']:.1%}",
            f"{s['target_tokens']:,.0f}",
            round(s["epochs"], 3),
            s["this_session"],
        ]
        for n, s in manifest["sources"].items()
    ]
    headers = ["source", "group", "documents", "tokens", "share", "target tokens", "epochs", "now"]
    print(format_table(headers, rows))
    print(
        f"total:        {manifest['total_tokens']:,.0f} tokens = "
        f"{manifest['train_samples']:,} samples of {manifest['seq_length']}"
    )
    blend = manifest["blend"]
    split = blend["split"]
    if split["resized_because"]:
        print(f"split:        {split['split']} ({split['resized_because']})")
    by_length = ", ".join(f"{n}: {s:,}" for n, s in blend["train_samples_by_seq_length"].items())
    print(f"train samples by --seq-length: {by_length}")
    print(f"Megatron-LM:  {blend['megatron_lm']['command']}")
    print(
        f"NeMo:         PreTrainingDataModule(paths=nemo.paths, split=nemo.split, "
        f"seq_length=nemo.seq_length) of {run.run_dir / 'blend.json'}"
    )
    if blend["tokenizer"] and blend["tokenizer"]["note"]:
        print(f"tokenizer:    {blend['tokenizer']['note']}")


@exit_on_user_error
def run_mix(raw_cfg: DictConfig) -> dict[str, Any]:
    cfg: MixConfig = typed_config(raw_cfg, MixConfig)
    run = MixRun(cfg, raw_cfg)
    manifest = run.run()
    print_summary(run, manifest)
    return manifest


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="mix")
def main(cfg: DictConfig) -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.getLogger("megatron").setLevel(logging.WARNING)  # its import logs GPU-library notes
    run_mix(cfg)


if __name__ == "__main__":
    run_hydra_main("mix", main)
