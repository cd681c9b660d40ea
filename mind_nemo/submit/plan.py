"""An experiment as a list of jobs: each stage's command, its sbatch script, its local commands.

``build_plan`` turns a :class:`SubmitConfig` into :class:`Job` objects in chain order. Every
stage's overrides are composed against that stage's own Hydra config first, so a typo in an
experiment file fails here, in the dry run, not hours later on the cluster. The run folders come
from ``dirs`` (absolute, so jobs and logs do not depend on where they start).

Job names matter: stages whose run folder several experiments share (the synthesize array, merge
and filter of an all-styles run) are named after that folder and submitted with
``--dependency=singleton``, so two chains never write one folder at the same time; the second
finds the work committed and finishes in seconds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import importlib.resources
import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mind_nemo.core.config import typed_config
from mind_nemo.core.errors import UserError
from mind_nemo.core.package_files import config_folder
from mind_nemo.servers.config import ServerConfig
from mind_nemo.submit.config import STAGES, StageSpec, SubmitConfig
from mind_nemo.submit.render import check_bash, directives, render
from mind_nemo.submit.serve import tasks_per_node

#: Launched GPU servers: their kind decides how a synthesize task gets its server.
GPU_SERVERS = ("vllm", "sglang", "trtllm")
#: Modules whose import registers each stage's config schema in Hydra's ConfigStore.
SCHEMA_MODULES = {
    "synthesize": "mind_nemo.synthesize.config",
    "merge": "mind_nemo.synthesize.config",
    "filter": "mind_nemo.filter.config",
    "mix": "mind_nemo.mix.config",
    "pretrain": "mind_nemo.pretrain.config",
    "evaluate": "mind_nemo.evaluate.config",
}


@dataclass
class Job:
    """One stage as SLURM and the local executor see it."""

    stage: str
    name: str
    script: str
    #: Commands the local executor runs, one after another (one per shard for synthesize).
    local: list[list[str]]
    singleton: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def script_name(self) -> str:
        return f"{STAGES.index(self.stage)}-{self.stage}.sbatch"


def selected_stages(cfg: SubmitConfig) -> list[str]:
    """Enabled stages in chain order, narrowed to ``stages`` when the user lists some."""
    wanted = cfg.stages or list(STAGES)
    return [s for s in STAGES if s in wanted and getattr(cfg, s).enabled]


def stage_args(cfg: SubmitConfig, stage: str) -> list[str]:
    """The overrides of one stage: run folders from ``dirs`` first, the experiment's after."""
    d = cfg.dirs
    spec: StageSpec = getattr(cfg, stage)
    derived = {
        "synthesize": [f"output_dir={d.synthesize}", f"num_shards={cfg.synthesize.tasks}",
                       "progress=false"],
        "merge": [f"run_dir={d.synthesize}"],
        "filter": [f"run_dir={d.synthesize}", f"output_dir={d.filter}", "progress=false"],
        "mix": [f"output_dir={d.mix}", "progress=false"],
        "pretrain": [f"mix_dir={d.mix}", f"output_dir={d.pretrain}"],
        "evaluate": [f"model.path={d.pretrain}/hf", f"output_dir={d.evaluate}"],
    }[stage]  # fmt: skip
    return derived + list(spec.overrides) + list(spec.extra_overrides)


def _compose(stage: str, overrides: list[str]) -> Any | None:
    """The stage's composed config (None when the stage's config is not installed yet)."""
    from hydra import compose

    if not config_folder().joinpath(f"{stage}.yaml").is_file():
        return None
    with contextlib.suppress(ModuleNotFoundError):
        importlib.import_module(SCHEMA_MODULES[stage])
    from mind_nemo.core.cli import config_problem, one_line

    try:
        cfg = compose(config_name=stage, overrides=overrides)
    except Exception as err:  # Hydra raises several unrelated types for a bad override
        raise UserError(f"{stage} overrides of this experiment: {one_line(str(err))}") from None
    if problem := config_problem(cfg):  # an unknown `+key` or a value out of range
        raise UserError(f"{stage} overrides of this experiment: {problem}")
    return cfg


def _synthesize_server(cfg: SubmitConfig) -> ServerConfig:
    from mind_nemo.synthesize.config import SynthesizeConfig

    raw = _compose("synthesize", [*stage_args(cfg, "synthesize"), "shard_id=0"])
    assert raw is not None
    return typed_config(raw, SynthesizeConfig).server


def load_config(raw: DictConfig) -> SubmitConfig:
    """The typed config, with ``paths.runs`` made absolute first so that every run folder
    derived from it (and every override that interpolates one) is absolute too."""
    missing = [key for key in raw.paths if OmegaConf.is_missing(raw.paths, key)]
    if missing:
        settings = " ".join(f"paths.{key}=..." for key in missing)
        raise UserError(f"experiment {raw.get('name')} needs its data paths: set {settings}")
    workdir = raw.slurm.workdir or os.getcwd()
    runs = raw.paths.get("runs")
    if isinstance(runs, str) and not os.path.isabs(runs):
        raw.paths.runs = os.path.normpath(os.path.join(os.path.abspath(workdir), runs))
    return typed_config(raw, SubmitConfig)


def _absolute(cfg: SubmitConfig, workdir: str) -> None:
    for key in ("root", "synthesize", "filter", "mix", "pretrain", "evaluate", "scripts", "logs"):
        value = getattr(cfg.dirs, key)
        setattr(cfg.dirs, key, os.path.normpath(os.path.join(workdir, value)))


def build_plan(cfg: SubmitConfig) -> list[Job]:
    """Jobs for the selected stages, checked: overrides compose, scripts pass ``bash -n``."""
    workdir = os.path.abspath(cfg.slurm.workdir or os.getcwd())
    python = cfg.slurm.python or sys.executable
    _absolute(cfg, workdir)
    common = {
        "experiment": cfg.name,
        "workdir": workdir,
        "log_dir": cfg.dirs.logs,
        "setup": list(cfg.slurm.setup),
        "env": dict(cfg.slurm.env),
    }
    jobs = []
    for stage in selected_stages(cfg):
        builder = _synthesize_job if stage == "synthesize" else _step_job
        job = builder(cfg, stage, python, common)
        check_bash(job.script, job.script_name)
        jobs.append(job)
    return jobs


def _module(stage: str) -> list[str]:
    return ["-m", f"mind_nemo.{stage}"]


def _synthesize_job(cfg: SubmitConfig, stage: str, python: str, common: dict) -> Job:
    spec = cfg.synthesize
    server = _synthesize_server(cfg)
    args = stage_args(cfg, stage)
    res = dataclasses.replace(spec.resources)
    multinode = server.type in GPU_SERVERS and server.num_nodes > 1
    if server.type in GPU_SERVERS:
        res.nodes = server.num_nodes
        res.gpus_per_node = res.gpus_per_node or (
            server.gpus_per_node if multinode else server.tensor_parallel_size
        )
    launch = None
    if multinode:
        # The job starts the server on every node; synthesize talks to it as an endpoint.
        url = f"http://127.0.0.1:{spec.server_port}/v1"
        launch = {
            "description": f"{server.type} across {server.num_nodes} nodes (TP "
            f"{server.tensor_parallel_size}), one rank launcher per "
            f"{'GPU' if tasks_per_node(server) > 1 else 'node'}",
            "launch": ["srun", "--overlap", f"--nodes={server.num_nodes}",
                       f"--ntasks-per-node={tasks_per_node(server)}", python,
                       "-m", "mind_nemo.submit.serve", f"--port={spec.server_port}", "--",
                       *args],
            "log": f"{cfg.dirs.logs}/server-${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}.log",
            "wait": [python, "-m", "mind_nemo.submit.health", url,
                     f"--timeout={server.startup_timeout_s:.0f}"],
        }  # fmt: skip
        args = [*args, "server.type=openai", f"server.base_url={url}", "server.api_key_env=null"]
    array = f"--array=0-{spec.tasks - 1}" + (f"%{spec.max_parallel}" if spec.max_parallel else "")
    flags = [array, "--requeue", "--open-mode=append", f"--signal=B:USR1@{cfg.slurm.signal_lead_s}"]
    name = f"mind-synth-{Path(cfg.dirs.synthesize).name}"
    argv = [python, *_module(stage), *args]
    script = render(
        "synthesize_array.sbatch.j2",
        title=f"Synthesize {spec.tasks} shard(s) into {cfg.dirs.synthesize}",
        job_name=name,
        log_id="%A_%a",
        directives=directives(res, cfg.slurm, flags),
        tasks=spec.tasks,
        signal_lead_s=cfg.slurm.signal_lead_s,
        server=launch,
        argv=argv,
        done_check=[python, "-m", "mind_nemo.submit.shard_done", cfg.dirs.synthesize],
        **common,
    )
    if launch is not None:
        local = []
        notes = ["a server spanning nodes runs only under SLURM (executor=slurm)"]
    else:
        local = [[*argv, f"shard_id={i}"] for i in range(spec.tasks)]
        notes = []
    return Job(stage, name, script, local, singleton=True, notes=notes)


def _step_job(cfg: SubmitConfig, stage: str, python: str, common: dict) -> Job:
    spec: StageSpec = getattr(cfg, stage)
    args = stage_args(cfg, stage)
    notes = []
    if _compose(stage, args) is None:
        notes.append(f"hydra_configs/{stage}.yaml is not installed: overrides not checked")
    shared = {"merge": cfg.dirs.synthesize, "filter": cfg.dirs.filter}.get(stage)
    name = f"mind-{stage}-{Path(shared).name if shared else cfg.name}"
    argv = [python, *_module(stage), *args]
    context = {
        "title": f"{stage} for experiment {cfg.name}",
        "job_name": name,
        "log_id": "%j",
        **common,
    }
    if stage == "pretrain" and spec.resources.gpus_per_node > 0:
        script = _pretrain_script(cfg, args, python, name, common)
    else:  # every other stage, and pretraining on CPU: one process
        script = render(
            "step.sbatch.j2", directives=directives(spec.resources, cfg.slurm), argv=argv, **context
        )
    return Job(stage, name, script, [argv], singleton=shared is not None, notes=notes)


def _pretrain_script(
    cfg: SubmitConfig, args: list[str], python: str, name: str, common: dict
) -> str:
    """The pretrain stage's own multi-node script (``mind_nemo.pretrain.launch``: convert, one
    torchrun per node, export), given this experiment's resources, setup and log folder."""
    from mind_nemo.pretrain.config import PretrainConfig, settle_base_checkpoint
    from mind_nemo.pretrain.launch import render_sbatch

    raw = _compose("pretrain", args)
    assert raw is not None
    settle_base_checkpoint(raw)  # as the pretrain stage does before typing its config
    pcfg: PretrainConfig = typed_config(raw, PretrainConfig)
    res = cfg.pretrain.resources
    launch = pcfg.launch
    launch.type, launch.nodes, launch.gpus_per_node = "slurm", res.nodes, res.gpus_per_node
    launch.partition = res.partition or cfg.slurm.partition
    launch.account = res.account or cfg.slurm.account
    launch.time = res.time or launch.time
    launch.python, launch.job_name = python, name
    exports = [f"export {k}={shlex.quote(v)}" for k, v in common["env"].items()]
    launch.setup = [f"cd {shlex.quote(common['workdir'])}", *common["setup"], *exports]
    # Everything else the experiment asks for; the last --output wins, so logs join the others.
    flags = directives(res, cfg.slurm)
    skip = ("--partition=", "--account=", "--time=", "--nodes=", "--ntasks-per-node=",
            "--gpus-per-node=")  # fmt: skip
    launch.extra_sbatch = [f for f in flags if not f.startswith(skip)]
    launch.extra_sbatch.append(f"--output={cfg.dirs.logs}/%x-%j.out")
    return render_sbatch(pcfg, args)
