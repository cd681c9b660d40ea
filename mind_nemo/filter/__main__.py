"""``python -m mind_nemo.filter run_dir=RUN``: a synthesize run in, a filtered run out.

Every conversation goes through the filter chain (length, truncation, structure, leakage,
degeneration, faithfulness; optionally an LLM judge), duplicates are removed across shards, and
the paper's training variants (LONGEST, ALL, CONCAT, RAW) are written for the mix stage. Each
rejected row is kept with its reason; ``manifest.json`` counts everything per style. In a job
array run ``step=shard`` per task and then one ``step=finalize``; see
``mind_nemo/filter/README.md`` for the design.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from mind_nemo.core.cli import CONFIG_PATH, run_hydra_main
from mind_nemo.core.config import typed_config
from mind_nemo.core.errors import exit_on_user_error
from mind_nemo.core.tables import format_table
from mind_nemo.filter.config import FilterStageConfig
from mind_nemo.filter.stage import FilterStage


def print_summary(output_dir: str, manifest: dict[str, Any]) -> None:
    rows = []
    for style, t in manifest["by_style"].items():
        top = ", ".join(
            f"{r} {n}" for r, n in sorted(t["reasons"].items(), key=lambda x: -x[1])[:3]
        )
        rows.append([style, t["input"], t["kept"], t["rejected"], t["tokens"], top or "-"])
    print()
    print(format_table(["style", "input", "kept", "rejected", "kept tokens", "top reasons"], rows))
    variants = [[n, v["rows"], v["tokens"]] for n, v in manifest["variants"].items()]
    if variants:
        print()
        print(format_table(["variant", "rows", "tokens"], variants))
    totals = manifest["conversations"]
    share = f" ({totals['kept'] / totals['input']:.0%})" if totals["input"] else ""
    top = ", ".join(f"{r} {n}" for r, n in list(manifest["reasons"].items())[:3])
    print(
        f"\nkept {totals['kept']} of {totals['input']} conversations{share}"
        f"{'; top reasons: ' + top if top else ''} "
        f"({manifest['dedup']['exact']} exact and {manifest['dedup']['near']} near duplicates)"
    )
    loops = sum(
        n
        for t in manifest["by_style"].values()
        for note, n in t.get("notes", {}).items()
        if note.startswith("degenerate:")
    )
    if loops:
        print(
            f"warning: {loops} kept conversations loop (repeated n-grams or lines); they are "
            "kept because filter.degeneration.enabled=false (as in filter=paper)"
        )
    print(f"filtered run:   {output_dir}  (report: python -m mind_nemo.report {output_dir})")


@exit_on_user_error
def run_filter(raw: DictConfig) -> dict[str, Any] | None:
    cfg: FilterStageConfig = typed_config(raw, FilterStageConfig)
    stage = FilterStage(cfg, raw)
    manifest = stage.run()
    if manifest is None:
        print(
            f"step=shard done for shard_id={stage.shard_id} of {stage.num_shards}; "
            f"run step=finalize once every shard is done ({Path(cfg.output_dir)})"
        )
    else:
        print_summary(cfg.output_dir, manifest)
    return manifest


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="filter")
def main(cfg: DictConfig) -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    run_filter(cfg)


if __name__ == "__main__":
    run_hydra_main("filter", main)
