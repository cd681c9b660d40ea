"""Typed configs of ``python -m mind_nemo.evaluate`` and its ``compare`` entry.

Two layers: :class:`EvaluateConfig` (Hydra, command line) says *what model* and *how big a run*;
a suite (:class:`SuiteConfig`, a YAML file under ``hydra_configs/evaluate/``) says *which
benchmarks, with how many shots, and how the paper's five columns are read from lm-eval's
results*. Suites are loaded by name by :mod:`mind_nemo.evaluate.suites` rather than as a Hydra
group, so ``suite=paper`` on the command line stays a plain value that also accepts a path to a
user's own suite file. Every setting's range is declared with it
(:func:`~mind_nemo.core.config.setting`) and checked when the dataclass is built, for a suite
file as for the command line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING

from mind_nemo.core.config import Checked, bad_value, register_schema, setting
from mind_nemo.servers.config import ServerConfig

#: The paper's table columns, in its order, with their printed labels.
COLUMNS: dict[str, str] = {
    "gsm8k": "GSM8K",
    "math": "MATH",
    "mmlu_stem": "MMLU-STEM",
    "mmlu": "MMLU",
    "general_reasoning": "GR",
}
#: Columns averaged into "Avg" (the paper leaves MMLU-STEM out: it is part of MMLU).
AVG_COLUMNS: tuple[str, ...] = ("gsm8k", "math", "mmlu", "general_reasoning")
#: How a column combines its metrics; the model's dtypes; how lm-eval talks to a server.
AGGREGATES: tuple[str, ...] = ("mean", "weighted")
DTYPES: tuple[str, ...] = ("float32", "bfloat16", "float16", "auto")
SERVER_APIS: tuple[str, ...] = ("completions", "chat")


@dataclass
class TaskRunConfig(Checked):
    """How one lm-eval task or group of a suite is run."""

    #: Few-shot examples (``null``: the task's own default in lm-eval).
    num_fewshot: int | None = setting(None, ge=0)
    #: Samples per question for a majority vote (generation tasks only; ``null``: not votable,
    #: 1: greedy decoding). The top-level ``majority_vote=K`` overrides every non-null value.
    majority_vote: int | None = setting(None, ge=1)
    #: Sampling temperature used when voting over more than one sample.
    vote_temperature: float = setting(0.6, ge=0)


@dataclass
class ColumnConfig(Checked):
    """One column of the paper's table, read from lm-eval results."""

    #: lm-eval result key (task or group) -> metric key as lm-eval reports it, e.g.
    #: ``{gsm8k_cot: "exact_match,strict-match"}`` or ``{mmlu: "acc,none"}``.
    metrics: dict[str, str] = field(default_factory=dict)
    #: ``mean`` of the keys (General Reasoning: the paper's mean of 10 tasks) or ``weighted`` by
    #: question count (MMLU and MATH pool their subjects).
    aggregate: str = setting("mean", choices=AGGREGATES)


@dataclass
class SuiteConfig:
    """A benchmark suite: what to run and how the five paper columns are computed."""

    name: str = MISSING
    #: Folder of local data set copies, one per Hub name (``<data_dir>/cais/mmlu``...);
    #: ``fixtures`` is the small set shipped in the package; ``null`` loads from the Hub.
    data_dir: str | None = None
    #: lm-eval task or group name -> how it is run.
    run: dict[str, TaskRunConfig] = field(default_factory=dict)
    #: Column id (gsm8k, math, mmlu_stem, mmlu, general_reasoning) -> how it is read.
    columns: dict[str, ColumnConfig] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.columns) - set(COLUMNS))
        if unknown:
            why = f"unknown column(s) {unknown}; columns are {list(COLUMNS)}"
            raise bad_value("columns", sorted(self.columns), why)


@dataclass
class ModelConfig(Checked):
    """A Hugging Face checkpoint evaluated in-process by lm-eval's ``hf`` model."""

    #: A model directory (the pretrain stage's ``<run>/hf``), a Hub name, or ``embedded``.
    path: str | None = None
    #: ``float32`` (CPU), ``bfloat16``/``float16`` (GPU) or ``auto``.
    dtype: str = setting("float32", choices=DTYPES)
    device: str = "cpu"
    batch_size: int = setting(8, ge=1)
    #: Longest prompt + answer in tokens (``null``: the model's own limit).
    max_length: int | None = setting(None, ge=1)
    #: CPU threads for torch (``null``: torch's default, one per core). On a shared machine 1
    #: measured ~10x faster than 2 that other processes keep preempting.
    threads: int | None = setting(None, ge=1)


@dataclass
class EvaluateConfig(Checked):
    """``python -m mind_nemo.evaluate``: one model, one suite -> results.json."""

    model: ModelConfig = field(default_factory=ModelConfig)
    #: Evaluate through an OpenAI-compatible server instead (``server=local|openai|vllm|...``).
    server: ServerConfig | None = None
    #: ``paper``, ``fixtures``, or a path to a suite YAML file.
    suite: str = "paper"
    #: Overrides the suite's ``data_dir`` (``fixtures``, a folder of local copies, or ``hub``).
    data_dir: str | None = None
    #: Only these tasks of the suite, or extra lm-eval task names (empty: the whole suite).
    tasks: list[str] = field(default_factory=list)
    #: Questions per task (``null``: all). For smoke tests; the paper used every question.
    limit: int | None = setting(None, ge=1)
    #: Cap on generated tokens per answer (``null``: each task's own setting).
    max_gen_toks: int | None = setting(None, ge=1)
    #: Majority vote size for every votable task of the suite (``null``: the suite's value).
    majority_vote: int | None = setting(None, ge=1)
    #: Server runs: ``completions`` (raw few-shot prompts, as the paper scored base models) or
    #: ``chat`` (the chat template; generation tasks only).
    api: str = setting("completions", choices=SERVER_APIS)
    #: Server runs: requests in flight at once.
    num_concurrent: int = setting(4, ge=1)
    #: Server runs whose server returns no prompt log-probabilities: run only the generation
    #: tasks (GSM8K, MATH) instead of failing.
    skip_unsupported: bool = False
    #: Label of this run in comparison tables (``null``: the output folder's name).
    name: str | None = None
    #: Write every prompt and answer as lm-eval does, to
    #: ``lm_eval/<model>/samples_<task>_<date>.jsonl``.
    log_samples: bool = True
    seed: int = setting(1234, ge=0)
    output_dir: str = MISSING


@dataclass
class CompareConfig:
    """``python -m mind_nemo.evaluate.compare``: runs -> table.md, table.json, chart.png."""

    #: Evaluate run folders (or their results.json files), in table order.
    runs: list[str] = field(default_factory=list)
    #: Show the MIND paper's reported OWM-4B scores (``evaluate/paper.py``) beside ours.
    paper_rows: bool = True
    output_dir: str = MISSING


register_schema("evaluate_schema", EvaluateConfig)
register_schema("evaluate_compare_schema", CompareConfig)
