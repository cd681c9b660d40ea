"""``python -m mind_nemo.evaluate.compare runs=[DIR_A,DIR_B] output_dir=DIR``.

Reads any number of evaluate run folders and writes the paper's table for them, with the
paper's reported rows as reference: ``table.md``, ``table.json`` and ``chart.png``; the table is
printed too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from mind_nemo.core.cli import CONFIG_PATH, run_hydra_main
from mind_nemo.core.config import typed_config
from mind_nemo.core.errors import exit_on_user_error
from mind_nemo.core.jsonl import write_atomic, write_json_atomic
from mind_nemo.evaluate.config import CompareConfig


@exit_on_user_error
def run_compare(raw_cfg: DictConfig) -> dict[str, Any]:
    from mind_nemo.evaluate.chart import draw_chart
    from mind_nemo.evaluate.table import build_table, to_markdown

    cfg: CompareConfig = typed_config(raw_cfg, CompareConfig)
    table = build_table(list(cfg.runs), with_paper=cfg.paper_rows)
    out = Path(cfg.output_dir)
    markdown = to_markdown(table)
    write_atomic(out / "table.md", markdown)
    write_json_atomic(out / "table.json", table)
    draw_chart(table, out / "chart.png")
    print(markdown)
    print(f"wrote {out / 'table.md'}, {out / 'table.json'}, {out / 'chart.png'}")
    return table


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="evaluate.compare")
def main(cfg: DictConfig) -> None:
    run_compare(cfg)


if __name__ == "__main__":
    run_hydra_main("evaluate.compare", main)
