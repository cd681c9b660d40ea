"""Typed config of ``python -m mind_nemo.report``, registered as ``report_schema`` at import."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING

from mind_nemo.core.config import Checked, register_schema, setting


@dataclass
class ReportConfig(Checked):
    """``python -m mind_nemo.report RUN_DIR``: report.md, report.html and viewer.html of a run."""

    run_dir: str = MISSING
    #: Where report.md/report.html go (null: the run folder).
    output_dir: str | None = None
    #: Rows sampled per distribution for the plots (counts are always exact).
    max_points: int = setting(100_000, ge=1)
    seed: int = setting(0, ge=0)
    #: Contexts the scorecard and the viewer read, with all their conversations: those whose
    #: key hashes lowest, so every report of a run picks the same ones (counts stay exact).
    sample_contexts: int = setting(1500, ge=1)
    #: Write viewer.html (the sampled contexts beside their conversations).
    viewer: bool = True


register_schema("report_schema", ReportConfig)
