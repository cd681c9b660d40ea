"""The GPU-hours projection uses the per-GPU rate you set, not the demo's CPU rate, and labels
the rate this run measured as what it is."""

from __future__ import annotations

import pytest

from mind_nemo.core.errors import UserError
from mind_nemo.synthesize.accounting import describe_projection, project_full_run
from mind_nemo.synthesize.config import ProjectionConfig


def project(rate: float, measured: float) -> dict:
    projection = project_full_run(
        gpu_tokens_per_s=rate,
        mean_completion_tokens=500,
        context_tokens=500,
        target_corpus_tokens=14.7e9,
        styles=7,
        cluster_gpus=512,
        measured_tokens_per_s=measured,
        measured_on="server=local (embedded, 1 device(s))",
    )
    assert projection is not None
    return projection


def test_gpu_hours_come_from_the_configured_rate_not_the_measured_one():
    slow_cpu, fast_cpu = project(400, 21.0), project(400, 2100.0)
    # 14.7B / 500 contexts x 7 styles x 500 tokens = 102.9B output tokens; at 400 tok/s/GPU:
    assert slow_cpu["projected_output_tokens"] == 102_900_000_000
    assert slow_cpu["gpu_hours"] == pytest.approx(102.9e9 / 400 / 3600, abs=0.1)
    assert slow_cpu["gpu_hours"] == fast_cpu["gpu_hours"]  # the CPU's rate changes nothing
    assert project(800, 21.0)["gpu_hours"] == pytest.approx(slow_cpu["gpu_hours"] / 2, abs=0.1)
    assert slow_cpu["measured_output_tokens_per_s"] == 21.0


def test_summary_names_the_setting_and_labels_the_measured_rate():
    first, second = describe_projection(project(400, 21.0))
    assert "at 400 tok/s per GPU (setting projection.gpu_tokens_per_s)" in first
    assert "71,458 GPU-hours" in first
    assert "measured here: 21.0 output tok/s on server=local" in second


def test_the_default_rate_is_documented_and_checked():
    assert ProjectionConfig().gpu_tokens_per_s == 400
    with pytest.raises(UserError, match="gpu_tokens_per_s"):
        ProjectionConfig(gpu_tokens_per_s=0)
    assert project_full_run(
        gpu_tokens_per_s=400, mean_completion_tokens=0, context_tokens=500,
        target_corpus_tokens=1e9, styles=7, cluster_gpus=1, measured_tokens_per_s=0,
        measured_on="-",
    ) is None  # fmt: skip


def test_progress_bar_off_is_no_tqdm_and_on_counts_every_answer(capsys):
    """``progress=false`` makes no tqdm at all (tqdm starts a monitor thread even when
    disabled); ``progress=true`` shows the answers counted against the total."""
    import threading

    from mind_nemo.synthesize.accounting import SessionStats
    from mind_nemo.synthesize.progress import GenerationProgress

    before = {t.name for t in threading.enumerate()}
    off = GenerationProgress(SessionStats(), 4, enabled=False)
    off.update()
    off.close()
    assert off.bar is None
    assert "tqdm_monitor" not in {t.name for t in threading.enumerate()} - before
    stats = SessionStats()
    stats.started = 0.0
    on = GenerationProgress(stats, 4, enabled=True)
    for _ in range(3):
        on.update()
    on.close()
    assert "3/4" in capsys.readouterr().err
