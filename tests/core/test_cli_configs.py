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
        (["+style=debate", "limit=-1"], "limit=-1: must be >= 0"),
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


# --- One way to validate: every bad value and every unknown key refused at the door -----------

#: Primary config -> (its schema, overrides a user always gives, the module registering it).
STAGES = {
    "synthesize": ("mind_nemo.synthesize.config:SynthesizeConfig", ["+style=debate"]),
    "filter": ("mind_nemo.filter.config:FilterStageConfig", ["run_dir=/r"]),
    "mix": ("mind_nemo.mix.config:MixConfig", []),
    "pretrain": ("mind_nemo.pretrain.config:PretrainConfig", []),
    "evaluate": ("mind_nemo.evaluate.config:EvaluateConfig", []),
    "submit": ("mind_nemo.submit.config:SubmitConfig", ["experiment=quickstart"]),
    "report": ("mind_nemo.report.config:ReportConfig", ["run_dir=/r"]),
    "merge": ("mind_nemo.synthesize.config:MergeConfig", ["run_dir=/r"]),
    "evaluate.compare": ("mind_nemo.evaluate.config:CompareConfig", []),
    "import_nemo_skills": (
        "mind_nemo.import_nemo_skills.config:ImportConfig",
        ["+style=debate", "input=/i", "output_dir=/o"],
    ),
}


def schema_of(stage: str) -> type:
    module, name = STAGES[stage][0].split(":")
    return getattr(importlib.import_module(module), name)


def refusal(stage: str, overrides: list[str]) -> str | None:
    """What the entry point says about these overrides (None: accepted), checked two ways: before
    Hydra runs (``run_hydra_main``'s check) and by the stage's own ``typed_config``."""
    from mind_nemo.core.cli import checked_overrides, compose_config
    from mind_nemo.core.config import typed_config
    from mind_nemo.core.errors import UserError

    schema = schema_of(stage)
    args, early = checked_overrides(stage, [*STAGES[stage][1], *overrides])
    try:
        typed_config(compose_config(stage, args), schema)
        late = None
    except UserError as err:
        late = str(err)
    except Exception as err:  # a bad override Hydra itself refuses: only the early check sees it
        late = early if early else repr(err)
    assert early == late, (early, late)  # one check, whichever door the command comes through
    return early


@pytest.mark.parametrize(
    ("stage", "overrides", "expected"),
    [
        ("synthesize", ["num_shards=0"], "num_shards=0: must be >= 1"),
        ("synthesize", ["engine.max_concurrent_requests=0"],
         "engine.max_concurrent_requests=0: must be >= 1"),
        ("synthesize", ["engine.max_concurrent_requests=-4"],
         "engine.max_concurrent_requests=-4: must be >= 1"),
        ("synthesize", ["sampling.temperature=-1"], "sampling.temperature=-1.0: must be >= 0"),
        ("synthesize", ["sampling.temperature=inf"],
         "sampling.temperature=inf: must be >= 0 (a finite number)"),
        ("synthesize", ["sampling.top_p=2"], "sampling.top_p=2.0: must be in (0, 1]"),
        ("synthesize", ["engine.request_timeout_s=0"], "engine.request_timeout_s=0.0: must be > 0"),
        ("synthesize", ["engine.server_dead_after_s=0"],
         "engine.server_dead_after_s=0.0: must be > 0"),
        ("synthesize", ["engine.backoff_initial_s=-1"],
         "engine.backoff_initial_s=-1.0: must be >= 0"),
        ("synthesize", ["engine.backoff_max_s=-0.5"], "engine.backoff_max_s=-0.5: must be >= 0"),
        ("synthesize", ["engine.max_retries=-1"], "engine.max_retries=-1: must be >= 0"),
        ("synthesize", ["server=openai", "server.base_url=http://h/v1"],
         "server.model='embedded': type=openai needs the model name the endpoint serves"),
        ("synthesize", ["chunking.overlap_tokens=500"],
         "chunking.overlap_tokens=500: must be < context_tokens=500"),
        ("filter", ["judge.server.port=70000"],
         "judge.server.port=70000: must be between 1 and 65535"),
        ("filter", ["step=later"],
         "step='later': must be one of: auto, all, shard, bucket, cluster, apply, finalize"),
        ("mix", ["tokenizer.type=bpe"], "tokenizer.type='bpe': must be one of: auto, huggingface"),
        ("mix", ["+sources.extra.weight=0"],
         "sources.extra.weight=0.0: must be > 0 (or enabled=false)"),
        ("pretrain", ["pretrain.optimizer.adam_beta2=1"],
         "pretrain.optimizer.adam_beta2=1.0: must be in [0, 1)"),
        ("evaluate", ["model.batch_size=0"], "model.batch_size=0: must be >= 1"),
        ("submit", ["synthesize.tasks=0"], "synthesize.tasks=0: must be >= 1"),
        ("submit", ["executor=kubernetes"], "executor='kubernetes': must be one of: slurm, local"),
        ("report", ["max_points=0"], "max_points=0: must be >= 1"),
    ],
)  # fmt: skip
def test_values_out_of_range_are_one_line_naming_the_full_key(stage, overrides, expected):
    message = refusal(stage, overrides)
    assert message is not None and message.startswith(expected), message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["+retry_fialed=true"],
         "Key 'retry_fialed' not in 'SynthesizeConfig'; did you mean 'retry_failed'?"),
        (["+limt=5"], "Key 'limt' not in 'SynthesizeConfig'; did you mean 'limit'?"),
        (["+num_shard=2"], "Key 'num_shard' not in 'SynthesizeConfig'; did you mean 'num_shards'?"),
        (["+engine.fooo=1"], "Key 'fooo' not in 'EngineConfig' (engine.fooo)"),
        (["++engine.fooo=1"], "Key 'fooo' not in 'EngineConfig' (engine.fooo)"),
        (["++sampling.temprature=1"],
         "Key 'temprature' not in 'SamplingConfig' (sampling.temprature); "
         "did you mean 'temperature'?"),
        (["engine.fooo=1"], "Could not override 'engine.fooo'; Key 'fooo' not in 'EngineConfig'"),
    ],
)  # fmt: skip
def test_unknown_keys_are_refused_with_or_without_plus(overrides, expected):
    message = refusal("synthesize", overrides)
    assert message == expected


def test_plus_still_adds_groups_and_sets_existing_keys():
    from mind_nemo.core.cli import checked_overrides

    args, error = checked_overrides(
        "synthesize", ["+style=debate", "+limit=5", "+retry_failed=true"]
    )
    assert error is None and args == ["+style=debate", "++limit=5", "++retry_failed=true"]
    # Free-form mappings (a mix's sources, an experiment's paths) still take new keys.
    assert refusal("mix", ["+sources.extra.path=/x", "+sources.extra.kind=corpus"]) is None
    assert refusal("submit", ["+paths.extra=/data"]) is None
    # A misspelt key inside a source entry is checked against SourceConfig.
    assert (
        refusal("mix", ["+sources.extra.pth=/x"])
        == "sources.extra: Key 'pth' not in 'SourceConfig'"
    )


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["engine.max_retries=-1"], "error: engine.max_retries=-1: must be >= 0"),
        (["+limt=5"], "error: Key 'limt' not in 'SynthesizeConfig'; did you mean 'limit'?"),
        (["server=openai", "server.base_url=http://127.0.0.1:9/v1"],
         "error: server.model='embedded'"),
    ],
)  # fmt: skip
def test_refused_before_any_work_with_exit_2(overrides, expected, tmp_path):
    out = tmp_path / "run"
    result = run_stage("synthesize", "+style=debate", *overrides, f"output_dir={out}", check=False)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(expected), result.stderr
    assert not out.exists()  # refused before Hydra made the run folder


def test_every_setting_of_every_stage_has_a_range():
    """Every int, float and enum-like str field of every stage schema declares what it allows
    (``setting(...)``), except the few listed here with the reason they are free."""
    import dataclasses
    import types
    import typing

    from mind_nemo.core.config import RULE

    free = {  # names, paths, hosts, formats checked where they are used
        "name", "model", "tokenizer", "base_url", "api_key_env", "host", "output_dir", "run_dir",
        "path", "prompt_file", "text_field", "id_field", "hf_split", "hf_name", "group", "variant",
        "eod", "pattern", "mix_dir", "base_checkpoint", "partition", "account", "qos", "time",
        "mem", "job_name", "python", "workdir", "description", "style", "suite", "data_dir",
        "device", "separator", "split", "root", "synthesize", "filter", "mix", "pretrain",
        "evaluate", "scripts", "logs", "on_bad_file",
        "job_dir", "user", "identity", "job_name_prefix", "cluster_file",  # submit: cluster
        "input", "generation_key", "start_assistant_response_key",  # import_nemo_skills: fields
    }  # fmt: skip
    # Checked when the corpus is opened (core/corpus.py), not yet by CorpusConfig itself.
    free.add("format")
    seen: set[type] = set()
    unchecked = []

    def visit(schema: type, prefix: str) -> None:
        if schema in seen:
            return
        seen.add(schema)
        hints = typing.get_type_hints(schema)
        for f in dataclasses.fields(schema):
            hint = hints[f.name]
            optional = typing.get_origin(hint) in (typing.Union, types.UnionType)
            kinds = set(typing.get_args(hint)) - {type(None)} if optional else {hint}
            for kind in kinds:
                if dataclasses.is_dataclass(kind):
                    visit(kind, f"{prefix}{f.name}.")
            scalar = kinds & {int, float, str}
            if scalar and RULE not in f.metadata and f.name not in free:
                unchecked.append(f"{prefix}{f.name}")

    from mind_nemo.evaluate.config import SuiteConfig

    for stage in STAGES:
        visit(schema_of(stage), f"{stage}:")
    visit(SuiteConfig, "evaluate suite:")
    assert unchecked == []


def _restated(yaml_node, schema_node, prefix: str) -> list[str]:
    """Keys of a YAML file whose value is the dataclass default at the same place."""
    found = []
    for key, value in yaml_node.items():
        if key in ("defaults", "hydra") or key not in schema_node:
            continue
        default = schema_node._get_node(key)
        if isinstance(value, dict) and OmegaConf.get_type(default) not in (dict, None):
            if OmegaConf.is_dict(default) and not default._is_none():
                found += _restated(value, default, f"{prefix}{key}.")
            continue
        if isinstance(value, str) and "${" in value:
            continue
        if OmegaConf.is_config(default):
            default = OmegaConf.to_container(default)
        else:
            default = default._value()
        if value == default and isinstance(value, bool) == isinstance(default, bool):
            found.append(f"{prefix}{key}")
    return found


def test_yaml_files_state_only_what_differs_from_the_dataclass_defaults():
    """A restated default hides which settings a file really chooses, and goes stale silently
    when the default moves; say it in a comment instead."""
    from mind_nemo.evaluate.config import SuiteConfig
    from mind_nemo.filter.config import FilterSettings
    from mind_nemo.pretrain.config import RecipeConfig
    from mind_nemo.servers.config import ServerConfig
    from mind_nemo.submit.cluster import ClusterConfig
    from mind_nemo.synthesize.config import StyleConfig

    by_group = {"style": StyleConfig, "server": ServerConfig, "corpus": "synthesize",
                "filter": FilterSettings, "mix": "mix", "pretrain": RecipeConfig,
                "evaluate": SuiteConfig, "experiment": "submit",
                "cluster": ClusterConfig}  # fmt: skip
    restated = []
    for path in sorted(CONFIGS.rglob("*.yaml")):
        rel = path.relative_to(CONFIGS)
        target = by_group.get(rel.parts[0], rel.stem) if len(rel.parts) > 1 else rel.stem
        schema = schema_of(target) if isinstance(target, str) else target
        raw = OmegaConf.to_container(OmegaConf.load(path))
        restated += [f"{rel}: {k}" for k in _restated(raw, OmegaConf.structured(schema), "")]
    assert restated == []
