"""An experiment as a list of jobs: each stage's steps (commands and the image each runs in).

``build_plan`` turns a :class:`SubmitConfig` into :class:`Job` objects in chain order; it knows
nothing of NeMo-Run (:mod:`mind_nemo.submit.executors` maps jobs onto its executors). Every
stage's overrides are composed against that stage's own Hydra config first, so a typo in an
experiment file fails here, in the dry run, not hours later on the cluster. The run folders come
from ``dirs`` (absolute, so jobs and logs do not depend on where they start).

Job names matter: stages whose run folder several experiments share (the synthesize array, merge
and filter of an all-styles run) are named after that folder and submitted with
``--dependency=singleton``, so two chains never write one folder at the same time; the second
finds the work committed and finishes in seconds.

A stage whose work splits into independent pieces is an array job (``Job.array``: task I does
piece I, ``$SLURM_ARRAY_TASK_ID``). A builder in ``BUILDERS`` returns one job or several, in
order; the plan is their concatenation and the launcher makes every job ``afterok`` on the one
before it, so a stage of several steps (the filter with ``filter.tasks`` > 1: shard, bucket,
cluster, apply, finalize; the mix with ``mix.tasks`` > 1: shard, finalize) gets its chain from
the same place as the stages do, and both build their jobs with one helper (``_chain_jobs``).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mind_nemo.core.config import typed_config
from mind_nemo.core.errors import UserError
from mind_nemo.core.package_files import config_folder
from mind_nemo.servers.config import ServerConfig
from mind_nemo.submit.config import STAGES, Resources, StageSpec, SubmitConfig
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
#: Container role of our own stages (a launched server runs in the role named after its type).
OURS = "mind_nemo"


@dataclass
class Step:
    """One ``srun`` step of a job: a bash script body, run in the image of ``role``."""

    script: str
    role: str = OURS
    #: srun flags of this step (which nodes and tasks of the allocation it takes).
    srun_args: list[str] = field(default_factory=list)


@dataclass
class Job:
    """One stage as the executors see it."""

    stage: str
    name: str
    steps: list[Step]
    resources: Resources
    #: Commands the local executor runs, one after another (one per shard for synthesize).
    local: list[list[str]]
    singleton: bool = False
    #: The step of a stage that runs as several jobs (``shard``, ``bucket``, ... of the filter).
    part: str | None = None
    #: ``--array`` of an array job (task I does piece I); ``None``: one job.
    array: str | None = None
    #: ``--signal`` (the time-limit warning) and how often NeMo-Run may requeue the job.
    signal: str | None = None
    retries: int = 0
    #: Lines the job's batch shell runs before its steps (on the node, outside any container).
    setup: list[str] = field(default_factory=list)
    #: ``KEY=VALUE`` exported by the batch shell to every step.
    env: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def task_name(self) -> str:
        base = f"{STAGES.index(self.stage)}-{self.stage}"
        return f"{base}-{self.part}" if self.part else base


@dataclass
class Context:
    """What every builder needs: the config, the interpreter and folder the steps run with."""

    cfg: SubmitConfig
    python: str
    workdir: str
    containers: bool

    def command(self, argv: list[str], *, exec_: bool = True) -> str:
        """A step's bash body: cd to the checkout (container-less jobs), then ``argv``."""
        lines = ["set -euo pipefail"]
        if not self.containers:
            lines.append(f"cd {shlex.quote(self.workdir)}")
        lines.append(("exec " if exec_ else "") + shell(argv))
        return "\n".join(lines) + "\n"


def shell(argv: list[str]) -> str:
    """Quote for bash, leaving ``${VAR}`` references (``shard_id=${SLURM_ARRAY_TASK_ID}``)."""
    return " ".join(a if "${" in a and "'" not in a else shlex.quote(a) for a in argv)


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
    derived from it (and every override that interpolates one) is absolute too; a user's
    cluster file (``cluster=/path/site.yaml``) replaces the cluster group's choice."""
    missing = [key for key in raw.paths if OmegaConf.is_missing(raw.paths, key)]
    if missing:
        settings = " ".join(f"paths.{key}=..." for key in missing)
        raise UserError(f"experiment {raw.get('name')} needs its data paths: set {settings}")
    if raw.get("cluster_file"):
        from mind_nemo.submit.cluster import read_cluster_file

        raw.cluster = read_cluster_file(str(raw.cluster_file))
    workdir = raw.cluster.workdir or os.getcwd()
    runs = raw.paths.get("runs")
    if isinstance(runs, str) and not os.path.isabs(runs):
        raw.paths.runs = os.path.normpath(os.path.join(os.path.abspath(workdir), runs))
    return typed_config(raw, SubmitConfig)


def _absolute(cfg: SubmitConfig, workdir: str) -> None:
    for key in ("root", "synthesize", "filter", "mix", "pretrain", "evaluate", "scripts", "logs"):
        value = getattr(cfg.dirs, key)
        setattr(cfg.dirs, key, os.path.normpath(os.path.join(workdir, value)))


def executor_of(cfg: SubmitConfig) -> str:
    return cfg.executor or cfg.cluster.executor


def build_plan(cfg: SubmitConfig) -> list[Job]:
    """Jobs for the selected stages, checked: every stage's overrides compose."""
    workdir = os.path.abspath(cfg.cluster.workdir or os.getcwd())
    _absolute(cfg, workdir)
    containers = executor_of(cfg) != "local" and cfg.cluster.image(OURS) is not None
    python = "python" if containers else (cfg.cluster.python or sys.executable)
    ctx = Context(cfg, python, workdir, containers)
    jobs: list[Job] = []
    for stage in selected_stages(cfg):
        made = BUILDERS.get(stage, _step_job)(ctx, stage)
        jobs.extend(made if isinstance(made, list) else [made])
    return jobs


def array_spec(tasks: int, max_parallel: int | None) -> str:
    """``--array`` of ``tasks`` tasks numbered from 0, at most ``max_parallel`` at once."""
    return f"0-{tasks - 1}" + (f"%{max_parallel}" if max_parallel else "")


def _module(ctx: Context, stage: str) -> list[str]:
    return [ctx.python, "-m", f"mind_nemo.{stage}", *stage_args(ctx.cfg, stage)]


def _synthesize_job(ctx: Context, stage: str) -> Job:
    """The job array: task I does shard I, skipping at once when that shard is complete; a
    launched GPU server is its own step (its own image) beside the client step (ours)."""
    cfg, spec = ctx.cfg, ctx.cfg.synthesize
    server = _synthesize_server(cfg)
    argv = _module(ctx, stage)
    res = Resources(**{**spec.resources.__dict__})
    done = [ctx.python, "-m", "mind_nemo.submit.shard_done", cfg.dirs.synthesize]
    client = [ctx.python, "-m", "mind_nemo.submit.step", "--"]
    local = [[*argv, f"shard_id={i}"] for i in range(spec.tasks)]
    notes: list[str] = []
    steps: list[Step] = []
    if server.type in GPU_SERVERS:
        # The server is a step of its own, in its own image; synthesize talks to it as an
        # endpoint after the health wait (which gives up after server.startup_timeout_s).
        res.nodes = server.num_nodes
        res.gpus_per_node = res.gpus_per_node or (
            server.gpus_per_node if server.num_nodes > 1 else server.tensor_parallel_size
        )
        url = f"http://127.0.0.1:{spec.server_port}/v1"
        steps.append(_server_step(ctx, server, argv[3:]))
        client = [*client[:-1], f"--wait-for={url}", f"--timeout={server.startup_timeout_s:.0f}",
                  "--"]  # fmt: skip
        argv = [*argv, "server.type=openai", f"server.base_url={url}", "server.api_key_env=null"]
        if server.num_nodes > 1:
            local = []
            notes.append("a server spanning nodes runs only under SLURM (executor=slurm)")
    steps.append(Step(ctx.command([*client, *argv, "shard_id=${SLURM_ARRAY_TASK_ID}"]),
                      srun_args=["--overlap", "--nodes=1", "--ntasks=1"]))  # fmt: skip
    # A finished shard (a requeue after it completed, another experiment sharing this run)
    # costs seconds: the batch shell checks it before any step, so no server starts for it.
    check = _on_node(ctx, [*done, "${SLURM_ARRAY_TASK_ID}", str(spec.tasks)])
    setup = [f"if {check}; then",
             f'  echo "[mind_nemo] shard ${{SLURM_ARRAY_TASK_ID}} of {spec.tasks} is complete"',
             "  exit 0", "fi"]  # fmt: skip
    array = array_spec(spec.tasks, spec.max_parallel)
    return Job(
        stage, f"synth-{Path(cfg.dirs.synthesize).name}", steps, res, local, singleton=True,
        array=array, signal=f"USR1@{cfg.cluster.signal_lead_s}",
        retries=cfg.cluster.requeue_limit, setup=setup, notes=notes,
    )  # fmt: skip


def _on_node(ctx: Context, argv: list[str]) -> str:
    """A command the batch shell runs on the node: in our image when there is one."""
    if not ctx.containers:
        return f"(cd {shlex.quote(ctx.workdir)} && {shell(argv)})"
    image = ctx.cfg.cluster.image(OURS)
    assert image is not None
    mounts = ",".join(ctx.cfg.cluster.mounts)
    flags = ["srun", "--overlap", "--nodes=1", "--ntasks=1", f"--container-image={image}"]
    if mounts:
        flags.append(f"--container-mounts={mounts}")
    return shell([*flags, *argv])


def _server_step(ctx: Context, server: ServerConfig, overrides: list[str]) -> Step:
    """The GPU server as its own step, in the image named after its type."""
    from mind_nemo.servers.commands import server_command

    port = ctx.cfg.synthesize.server_port
    nodes = server.num_nodes
    if nodes > 1:
        # One rank launcher per node (or GPU): it needs mind_nemo in the server's image.
        argv = ["python", "-m", "mind_nemo.submit.serve", f"--port={port}", "--", *overrides]
    else:
        argv = server_command(server, server.model, port)
    srun = ["--overlap", f"--nodes={nodes}", f"--ntasks-per-node={tasks_per_node(server)}"]
    return Step(ctx.command(argv), role=server.type, srun_args=srun)


def _identity(ctx: Context, stage: str) -> tuple[str, bool]:
    """A stage's job name and whether it is a singleton: a stage writing a folder that several
    experiments share (merge, filter) is named after that folder and waits for the others."""
    shared = {"merge": ctx.cfg.dirs.synthesize, "filter": ctx.cfg.dirs.filter}.get(stage)
    return f"{stage}-{Path(shared).name if shared else ctx.cfg.name}", shared is not None


def _step_job(ctx: Context, stage: str) -> Job:
    spec: StageSpec = getattr(ctx.cfg, stage)
    notes = []
    if _compose(stage, stage_args(ctx.cfg, stage)) is None:
        notes.append(f"hydra_configs/{stage}.yaml is not installed: overrides not checked")
    name, singleton = _identity(ctx, stage)
    argv = _module(ctx, stage)
    return Job(stage, name, [Step(ctx.command(argv))], spec.resources, [argv],
               singleton=singleton, notes=notes)  # fmt: skip


@dataclass
class ChainStep:
    """One job of a stage split into steps: ``step=NAME`` over ``tasks`` array tasks, each told
    ``num_shards`` (default: ``tasks``) and its own ``shard_id``."""

    step: str
    tasks: int
    num_shards: int | None = None


def _split_config(ctx: Context, stage: str, setting: str) -> Any:
    """The stage's composed config, refused when the experiment pins what ``setting`` sets."""
    raw = _compose(stage, stage_args(ctx.cfg, stage))
    assert raw is not None  # filter.yaml and mix.yaml ship with the package
    if raw.step != "auto" or raw.num_shards is not None or raw.shard_id is not None:
        raise UserError(
            f"{setting} sets the {stage}'s step, num_shards and shard_id; drop them from the "
            f"experiment's {stage} overrides"
        )
    return raw


def _chain_jobs(
    ctx: Context, stage: str, argv: list[str], steps: list[ChainStep], max_parallel: int | None
) -> list[Job]:
    """One job per step, in order (the launcher makes each ``afterok`` on the one before), named
    ``<stage job name>-<step>``; a step of several tasks is an array (task I: ``shard_id=I``)."""
    spec: StageSpec = getattr(ctx.cfg, stage)
    base, singleton = _identity(ctx, stage)
    jobs = []
    for part in steps:
        fixed = [*argv, f"step={part.step}", f"num_shards={part.num_shards or part.tasks}"]
        local = [[*fixed, f"shard_id={i}"] for i in range(part.tasks)]
        script, array = ctx.command(local[0]), None
        if part.tasks > 1:
            script = ctx.command([*fixed, "shard_id=${SLURM_ARRAY_TASK_ID}"])
            array = array_spec(part.tasks, max_parallel)
        jobs.append(Job(stage, f"{base}-{part.step}", [Step(script)], spec.resources, local,
                        singleton=singleton, part=part.step, array=array))  # fmt: skip
    return jobs


def _filter_jobs(ctx: Context, stage: str) -> Job | list[Job]:
    """``filter.tasks`` > 1: the filter's steps as a chain of jobs, arrays where the work splits
    (task I takes source shards J with J % tasks == I, or hash ranges R % tasks == I). Every job
    is a singleton named after the filtered folder and its step, so a second chain sharing the
    folder trails the first step by step and finds each step's work committed."""
    spec = ctx.cfg.filter
    if spec.tasks == 1:
        return _step_job(ctx, stage)
    raw = _split_config(ctx, stage, "filter.tasks")
    argv = _module(ctx, stage)
    if raw.dedup.mode == "auto":  # bounded memory is the point of splitting the filter
        argv.append("dedup.mode=scalable")
    steps = [ChainStep("shard", spec.tasks), ChainStep("finalize", 1)]
    if raw.dedup.mode != "memory":
        ranges = int(raw.dedup.ranges)
        steps[1:1] = [ChainStep("bucket", min(spec.tasks, ranges)), ChainStep("cluster", 1),
                      ChainStep("apply", spec.tasks)]  # fmt: skip
    return _chain_jobs(ctx, stage, argv, steps, spec.max_parallel)


def _mix_jobs(ctx: Context, stage: str) -> Job | list[Job]:
    """``mix.tasks`` > 1: an array whose task I tokenizes shard I of every source
    (``step=shard``), then one ``step=finalize`` job that merges the shards and writes the blend
    once every task has succeeded. A failed task reruns alone; finished shards are reused."""
    spec = ctx.cfg.mix
    if spec.tasks == 1:
        return _step_job(ctx, stage)
    _split_config(ctx, stage, "mix.tasks")
    steps = [ChainStep("shard", spec.tasks), ChainStep("finalize", 1, num_shards=spec.tasks)]
    return _chain_jobs(ctx, stage, _module(ctx, stage), steps, spec.max_parallel)


def _pretrain_job(ctx: Context, stage: str) -> Job:
    """On GPUs: one step across the nodes, one torchrun per node (c10d rendezvous on the first
    node, which also converts the base before and exports to HF after); on CPU one process."""
    res = ctx.cfg.pretrain.resources
    if res.gpus_per_node == 0:
        return _step_job(ctx, stage)
    from mind_nemo.pretrain.config import PretrainConfig, settle_base_checkpoint
    from mind_nemo.pretrain.launch import stage_command, torchrun_command

    args = stage_args(ctx.cfg, stage)
    raw = _compose("pretrain", args)
    assert raw is not None
    settle_base_checkpoint(raw)  # as the pretrain stage does before typing its config
    pcfg: PretrainConfig = typed_config(raw, PretrainConfig)
    launch = pcfg.launch
    launch.python, launch.nodes, launch.gpus_per_node = ctx.python, res.nodes, res.gpus_per_node
    first = '[[ "${SLURM_NODEID:-0}" == 0 ]]'
    run = torchrun_command(pcfg, args, "${MASTER_ADDR}:" + str(launch.rdzv_port))
    run.insert(7, "--rdzv-conf=join_timeout=7200")  # the other nodes wait out the conversion
    lines = ["set -euo pipefail"]
    if not ctx.containers:
        lines.append(f"cd {shlex.quote(ctx.workdir)}")
    lines += [f"if {first}; then {shell(stage_command(pcfg, args, 'convert'))}; fi",
              shell(run),
              f"if {first}; then {shell(stage_command(pcfg, args, 'export'))}; fi"]  # fmt: skip
    step = Step("\n".join(lines) + "\n", srun_args=[f"--nodes={res.nodes}", "--ntasks-per-node=1"])
    local = [[*stage_command(pcfg, args, "auto")]]
    # NeMo-Run sets head_node_ip in the batch shell; exported, every node's step sees it.
    return Job(stage, f"{stage}-{ctx.cfg.name}", [step], res, local,
               env={"MASTER_ADDR": "${head_node_ip}"})  # fmt: skip


#: Stages built otherwise than as one job of one step; a builder may return several jobs.
BUILDERS: dict[str, Callable[[Context, str], Job | list[Job]]] = {
    "synthesize": _synthesize_job,
    "filter": _filter_jobs,
    "mix": _mix_jobs,
    "pretrain": _pretrain_job,
}
