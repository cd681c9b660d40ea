"""Every config in hydra_configs/ composes and instantiates; bad overrides are one clear line."""

from __future__ import annotations

import importlib
import itertools

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from mind_nemo.core.package_files import CONFIG_MODULE
from mind_nemo.submit.plan import SCHEMA_MODULES
from mind_nemo.synthesize.config import SynthesizeConfig
from tests.helpers import REPO, run_stage

CONFIGS = REPO / "hydra_configs"


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


def compose_cfg(name: str, overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
        return compose(config_name=name, overrides=overrides)


@pytest.mark.parametrize(
    ("style", "server", "corpus"),
    list(
        itertools.product(group_options("style"), group_options("server"), group_options("corpus"))
    ),
)
def test_every_synthesize_combination_instantiates(style, server, corpus):
    overrides = [f"+style={style}", f"server={server}", f"corpus={corpus}"]
    # ??? fields are the user's to fill; give them values as a user would.
    if server == "openai":
        overrides += ["server.model=m", "server.base_url=http://h/v1"]
    if corpus == "files":
        overrides += ["corpus.path=/data/*.jsonl"]
    cfg = compose_cfg("synthesize", overrides)
    obj = OmegaConf.to_object(cfg)
    assert isinstance(obj, SynthesizeConfig)
    assert obj.style.name == style
    assert obj.style.styles  # every style config lists what it generates
    assert obj.server.type == server
    assert obj.output_dir == f"runs/synthesize/{style}"


def test_all_style_is_the_seven_of_the_paper():
    from mind_nemo.core.styles import CONVERSATION_STYLES

    cfg = OmegaConf.to_object(compose_cfg("synthesize", ["+style=all"]))
    assert tuple(cfg.style.styles) == CONVERSATION_STYLES


def test_paper_sampling_defaults():
    cfg = OmegaConf.to_object(compose_cfg("synthesize", ["+style=debate"]))
    assert (cfg.sampling.temperature, cfg.sampling.top_p) == (1.0, 0.9)
    assert cfg.sampling.max_total_tokens == 4096
    assert cfg.chunking.context_tokens == 500


def register_stage(stage: str) -> None:
    """Import the config module of the stage behind a primary config (registers its schema)."""
    importlib.import_module(SCHEMA_MODULES.get(stage, f"mind_nemo.{stage.split('.')[0]}.config"))


@pytest.mark.parametrize("stage", sorted(p.stem for p in CONFIGS.glob("*.yaml")))
def test_every_primary_config_composes(stage):
    register_stage(stage)
    cfg = compose_cfg(stage, [])
    assert cfg is not None


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["+style=nope"], "Could not find 'style/nope'; available: all, debate"),
        (["+style=debate", "sampling.temperature=hot"], "could not be converted to Float"),
        (["+style=debate", "no_such_key=1"], "Key 'no_such_key' not in 'SynthesizeConfig'"),
        (["+style=debate", "corpus.path=/nonexistent/x.jsonl"], "corpus path not found"),
        (["+style=debate", "limit=-1"], "limit must be >= 0"),
        (["+style=debate", "shard_id=3", "num_shards=2"], "out of range"),
        (["+style=debate", "server=openai", "server.model=m"], "server.base_url"),
        ([], "choose a style"),
    ],
)
def test_user_mistakes_are_one_line_and_exit_2(overrides, expected, tmp_path):
    result = run_stage(
        "synthesize", *overrides, f"output_dir={tmp_path}/run", check=False, timeout=120
    )
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert expected in lines[0]
    assert "Traceback" not in result.stderr


def test_help_explains_main_overrides():
    result = run_stage("synthesize", "--help", timeout=120)
    for needle in ("+style=NAME", "corpus=files", "server=local|openai", "limit=N", "retry_failed"):
        assert needle in result.stdout
