"""User mistakes end in one line on stderr and exit status 2, before any training starts."""

from __future__ import annotations

import pytest

from tests.helpers import run_stage

pytest_plugins = ("tests.pretrain.helpers",)  # fixtures: mix_dir


def _one_line_error(*overrides: str) -> str:
    result = run_stage("pretrain", *overrides, check=False, timeout=180)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    return lines[0]


def test_unknown_recipe(tmp_path):
    line = _one_line_error("pretrain=gpt5", f"output_dir={tmp_path}")
    assert "gpt5" in line and "tiny_cpu" in line  # names the choices


def test_wrong_base_checkpoint_path_never_falls_back_to_random(mix_dir, tmp_path):
    line = _one_line_error(
        "pretrain=tiny_cpu", f"mix_dir={mix_dir}", f"output_dir={tmp_path / 'o'}",
        f"base_checkpoint={tmp_path / 'nope'}",
    )  # fmt: skip
    assert "nope" in line and "no such file" in line
    assert not (tmp_path / "o" / "checkpoints").exists()


def test_a_folder_that_is_no_checkpoint(mix_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    line = _one_line_error(
        "pretrain=tiny_cpu", f"mix_dir={mix_dir}", f"output_dir={tmp_path / 'o'}",
        f"base_checkpoint={tmp_path / 'empty'}",
    )  # fmt: skip
    assert "neither a Hugging Face model" in line


def test_missing_blend(tmp_path):
    line = _one_line_error("pretrain=tiny_cpu", f"mix_dir={tmp_path}", f"output_dir={tmp_path}/o")
    assert "blend.json" in line and "mind_nemo.mix" in line


@pytest.mark.parametrize("recipe", ["mind_7b"])
def test_gpu_recipes_require_a_base_and_gpus(recipe, mix_dir, tmp_path):
    line = _one_line_error(f"pretrain={recipe}", f"mix_dir={mix_dir}", f"output_dir={tmp_path}")
    assert "base_checkpoint" in line
    line = _one_line_error(
        f"pretrain={recipe}", f"mix_dir={mix_dir}", f"output_dir={tmp_path}",
        "base_checkpoint=null",
    )  # fmt: skip
    assert "needs GPUs" in line or "TP=2" in line
