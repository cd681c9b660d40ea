"""Typed config of an experiment (one paper row, every stage).

An experiment file under ``hydra_configs/experiment/`` fills :class:`SubmitConfig`: the stages'
own overrides (passed verbatim to ``python -m mind_nemo.<stage>``), the resources each job
asks for, and the data paths a user must set. Run folders are derived in ``dirs`` so stages find
each other's output without the user repeating paths. A typo in any key or a value out of its
range fails at start-up with one line (Hydra structured configs, each setting's range declared
with :func:`~mind_nemo.core.config.setting`), before a script is rendered or a job submitted.

A paper row's reported scores are read from :mod:`mind_nemo.evaluate.paper`, the one place the
paper's numbers live: an experiment file says ``paper: ${mind_nemo.paper_scores:ROW}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, OmegaConf

from mind_nemo.core.config import Checked, bad_value, check_settings, register_schema, setting
from mind_nemo.core.errors import UserError
from mind_nemo.evaluate.paper import row_scores
from mind_nemo.submit.cluster import EXECUTORS, ClusterConfig

_SBATCH_FLAG = re.compile(r"^--[a-z][a-z-]*(=\S+)?$")
#: Pipeline stages in chain order; each is ``python -m mind_nemo.<stage>``.
STAGES: tuple[str, ...] = ("synthesize", "merge", "filter", "mix", "pretrain", "evaluate")


@dataclass
class Resources(Checked):
    """What one SLURM job (or each task of an array) asks for; ``null`` leaves SLURM's default."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    #: Wall-clock limit (``HH:MM:SS`` or ``D-HH:MM:SS``).
    time: str | None = "04:00:00"
    nodes: int = setting(1, ge=1)
    ntasks_per_node: int = setting(1, ge=1)
    gpus_per_node: int = setting(0, ge=0)
    cpus_per_task: int = setting(1, ge=1)
    #: Memory per node, e.g. ``64G``; ``null``: SLURM's default.
    mem: str | None = None
    exclusive: bool = False
    #: Further sbatch flags, one per item, e.g. ``--constraint=h100``.
    extra: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        for flag in self.extra:
            if not _SBATCH_FLAG.match(flag):
                raise UserError(
                    f"sbatch flag {flag!r} must look like --name or --name=value without spaces"
                )


@dataclass
class StageSpec:
    """One stage of an experiment: on or off, its overrides, and its job's resources."""

    enabled: bool = True
    #: Overrides for ``python -m mind_nemo.<stage>``; the run folders (``output_dir``,
    #: ``run_dir``, ...) are added by the submitter from ``dirs``.
    overrides: list[str] = field(default_factory=list)
    #: Appended after ``overrides``: a paper row sets these, so the overrides of the base file
    #: it builds on stay shared (Hydra replaces lists, it does not append to them).
    extra_overrides: list[str] = field(default_factory=list)
    resources: Resources = field(default_factory=Resources)


@dataclass
class SynthesizeSpec(StageSpec):
    """The generation job array: ``tasks`` shards, each against its own or a shared server."""

    #: Array tasks = shards of the corpus (by document-id hash).
    tasks: int = setting(1, ge=1)
    #: At most this many tasks run at once (``%N`` in ``--array``); ``null``: no cap.
    max_parallel: int | None = setting(None, ge=1)
    #: Port of a server that spans nodes (launched by the job, not by synthesize).
    server_port: int = setting(8000, ge=1, le=65535)

    def __post_init__(self) -> None:
        check_settings(self)


@dataclass
class FilterSpec(StageSpec):
    """The filter stage: one process (``tasks: 1``, the default), or a chain of job arrays.

    ``tasks`` > 1 submits the filter's bounded-memory dedup steps, each ``afterok`` on the one
    before: ``step=shard`` (array of ``tasks``), ``step=bucket`` (array of at most
    ``dedup.ranges``), ``step=cluster`` (one task), ``step=apply`` (array), ``step=finalize``
    (one task), all with ``dedup.mode=scalable``; an experiment that pins ``dedup.mode=memory``
    gets ``step=shard`` and ``step=finalize`` only (one process deduplicates in memory)."""

    #: Array tasks of the filter's sharded steps; 1: one ``step=all`` process, as before.
    tasks: int = setting(1, ge=1)
    #: At most this many tasks of each array run at once (``%N`` in ``--array``).
    max_parallel: int | None = setting(None, ge=1)

    def __post_init__(self) -> None:
        check_settings(self)


@dataclass
class MixSpec(StageSpec):
    """The mix stage: one process (``tasks: 1``, the default), or a job array then one job.

    ``tasks`` > 1 submits ``step=shard`` as an array of ``tasks`` (task I tokenizes shard I of
    every source), then ``step=finalize`` (merges the shards, writes the blend) ``afterok`` on
    the whole array; the merged files are byte-identical to one process's."""

    #: Array tasks = shards of every source; 1: one ``step=all`` process, as before.
    tasks: int = setting(1, ge=1)
    #: At most this many tasks of the array run at once (``%N`` in ``--array``).
    max_parallel: int | None = setting(None, ge=1)

    def __post_init__(self) -> None:
        check_settings(self)


@dataclass
class Dirs:
    """Run folders of every stage, derived from ``paths.runs`` and the experiment's name."""

    root: str = MISSING
    synthesize: str = MISSING
    filter: str = MISSING
    mix: str = MISSING
    pretrain: str = MISSING
    evaluate: str = MISSING
    #: Rendered sbatch scripts and job logs.
    scripts: str = MISSING
    logs: str = MISSING


@dataclass
class SubmitConfig:
    """``python -m mind_nemo.submit experiment=NAME``: render and run or submit every stage."""

    name: str = MISSING
    description: str = ""
    #: The conversational style of a single-style row; the shared row file
    #: (``experiment/base/owm4b_style.yaml``) builds its name, sources and scores from it.
    style: str | None = None
    #: The paper's reported scores for this row (GSM8K, MATH, MMLU-STEM, MMLU, GR, Avg), read
    #: from :mod:`mind_nemo.evaluate.paper` with ``${mind_nemo.paper_scores:ROW}``.
    paper: dict[str, float] = field(default_factory=dict)
    #: Data locations the user sets (corpus, general web, base checkpoint, runs root, ...).
    paths: dict[str, Any] = field(default_factory=dict)
    dirs: Dirs = field(default_factory=Dirs)
    synthesize: SynthesizeSpec = field(default_factory=SynthesizeSpec)
    merge: StageSpec = field(default_factory=StageSpec)
    filter: FilterSpec = field(default_factory=FilterSpec)
    mix: MixSpec = field(default_factory=MixSpec)
    pretrain: StageSpec = field(default_factory=StageSpec)
    evaluate: StageSpec = field(default_factory=StageSpec)
    #: Where the jobs run (``cluster=NAME`` or ``cluster=/path/site.yaml``).
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    #: Set from ``cluster=/path/site.yaml`` by the command line: a user's own cluster file.
    cluster_file: str | None = None
    #: ``slurm`` (one job per stage, chained with afterok), ``local`` (stages one after another
    #: here), ``docker``; ``null``: the cluster's executor.
    executor: str | None = setting(None, choices=EXECUTORS)
    #: Render (and print) every script and command; submit or run nothing.
    dry_run: bool = False
    #: Only these stages (in chain order); empty: every enabled stage.
    stages: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_settings(self)
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown:
            why = f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}"
            raise bad_value("stages", list(self.stages), why)


register_schema("submit_schema", SubmitConfig)
if not OmegaConf.has_resolver("mind_nemo.paper_scores"):
    OmegaConf.register_new_resolver("mind_nemo.paper_scores", row_scores)
