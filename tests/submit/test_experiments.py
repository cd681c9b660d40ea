"""Every experiment renders: configs compose, each stage's overrides compose against that stage's
own config, and every sbatch script passes ``bash -n``. No SLURM needed (dry runs); the local
executor runs real stages against the stub server.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

import mind_nemo.submit.config  # noqa: F401  (registers the submit schema)
from mind_nemo.core.errors import UserError
from mind_nemo.core.styles import CONVERSATION_STYLES
from mind_nemo.evaluate.paper import PAPER_COLUMN_ORDER, PAPER_OWM4B
from mind_nemo.servers.config import ServerConfig
from mind_nemo.submit.plan import Job, build_plan, load_config
from mind_nemo.submit.sbatch import submit
from mind_nemo.submit.serve import rank_plan, tasks_per_node
from mind_nemo.submit.shard_done import shard_complete
from tests.helpers import REPO, write_corpus

EXPERIMENTS = sorted(p.stem for p in (REPO / "hydra_configs" / "experiment").glob("*.yaml"))
PATHS = [
    "paths.corpus=/data/open-web-math-4b",
    "paths.general=/data/fineweb-edu",
    "paths.tokenizer=/models/mind-7b/tokenizer.json",
    "paths.base_checkpoint=/ckpt/mind-7b-700b",
    "paths.runs=/lustre/mind",
]
#: Experiment -> its row of the paper's OWM-4B table, whose scores live in evaluate/paper.py only.
PAPER_ROWS = {
    "owm4b_raw": "raw",
    "owm4b_rephrase": "rephrase",
    "owm4b_two_professors": "two professors",
    "owm4b_teacher_student": "teacher-student",
    "owm4b_two_students": "two students",
    "owm4b_layman_knowall": "layman-knowall",
    "owm4b_debate": "debate",
    "owm4b_interview": "interview",
    "owm4b_problem_solving": "problem solving",
    "owm4b_longest": "longest",
    "owm4b_all_conversations": "all conversations",
}


def plan(*overrides: str):
    """Compose ``submit`` with ``overrides`` and plan it, as the dry run does."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module("mind_nemo.hydra_configs", version_base="1.3"):
            cfg = load_config(compose("submit", overrides=list(overrides)))
            return cfg, {job.stage: job for job in build_plan(cfg)}
    finally:
        GlobalHydra.instance().clear()


def argv_of(job: Job) -> list[str]:
    return job.local[0]


def test_one_experiment_per_paper_row():
    rows = {f"owm4b_{s}" for s in CONVERSATION_STYLES} | {
        "owm4b_raw", "owm4b_rephrase", "owm4b_longest", "owm4b_all_conversations",
        "owm4b_concat", "owm4b_raw_conversations_1to1", "owm14b_two_students", "quickstart",
    }  # fmt: skip
    assert set(EXPERIMENTS) == rows


@pytest.mark.parametrize("name", [e for e in EXPERIMENTS if e != "quickstart"])
def test_paper_experiment_renders(name):
    cfg, jobs = plan(f"experiment={name}", *PATHS)
    expected = ["mix", "pretrain", "evaluate"]
    if name != "owm4b_raw":
        expected = ["synthesize", "merge", "filter", *expected]
    assert list(jobs) == expected
    for job in jobs.values():
        check = subprocess.run(["bash", "-n"], input=job.script, text=True, capture_output=True)
        assert check.returncode == 0, check.stderr
        assert f"cd {REPO}" in job.script  # jobs start where the submitter ran
    if name in PAPER_ROWS:
        reported = PAPER_OWM4B[PAPER_ROWS[name]]
        assert tuple(cfg.paper[k] for k in PAPER_COLUMN_ORDER) == reported
    mix = " ".join(argv_of(jobs["mix"]))
    assert "mix=mind_owm4b_longest" in mix and "sources.general.path=/data/fineweb-edu" in mix
    assert "total_tokens=50e9" in mix and "tokenizer.name=/models/mind-7b/tokenizer.json" in mix
    pretrain = jobs["pretrain"].script
    assert "pretrain=mind_7b" in pretrain and "base_checkpoint=/ckpt/mind-7b-700b" in pretrain
    assert f"mix_dir=/lustre/mind/{name}/mix" in pretrain
    evaluate = argv_of(jobs["evaluate"])
    assert "suite=paper" in evaluate and f"model.path=/lustre/mind/{name}/pretrain/hf" in evaluate
    if "synthesize" not in jobs:
        assert "sources.raw.path=/data/open-web-math-4b" in mix
        return
    synth = jobs["synthesize"]
    argv = argv_of(synth)
    assert "server=trtllm" in argv and "server.model=meta-llama/Meta-Llama-3-70B-Instruct" in argv
    assert "corpus.path=/data/open-web-math-4b" in argv and "filter=paper" in argv_of(
        jobs["filter"]
    )
    tasks = 256 if name.startswith("owm14b") else 64
    for flag in (f"--array=0-{tasks - 1}", "--requeue", "--signal=B:USR1@", "--gpus-per-node=8"):
        assert f"#SBATCH {flag}" in synth.script
    style = name.split("_", 1)[1]
    if style in CONVERSATION_STYLES:
        assert f"+sources.{style}.styles=[{style}]" in mix
    if name.startswith("owm4b") and style not in ("rephrase",):
        # the conversation rows share one all-styles run, serialised by job name
        assert "+style=all" in argv and synth.name == "mind-synth-owm4b-all" and synth.singleton


@pytest.mark.parametrize("style", CONVERSATION_STYLES)
def test_single_style_rows_are_the_shared_row_plus_their_style(style):
    """The seven single-style rows differ only in the style: name, sources and the paper's
    scores all come from experiment/base/owm4b_style.yaml and evaluate/paper.py."""
    text = (REPO / "hydra_configs" / "experiment" / f"owm4b_{style}.yaml").read_text()
    settings = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert settings == ["defaults:", "  - base/owm4b_style", f"style: {style}"]
    cfg, jobs = plan(f"experiment=owm4b_{style}", *PATHS)
    assert (cfg.name, cfg.description) == (f"owm4b_{style}", f"OWM-4B, {style} conversations")
    assert cfg.dirs.synthesize == "/lustre/mind/synthesize/owm4b-all"
    mix = argv_of(jobs["mix"])
    for setting in ("kind=conversations", f"styles=[{style}]", "group=math",
                    "path=/lustre/mind/synthesize/owm4b-all-filtered"):  # fmt: skip
        assert f"+sources.{style}.{setting}" in mix


def test_a_typo_or_bad_value_in_a_stage_override_is_refused_in_the_dry_run():
    """``+key`` adds keys past Hydra's struct check; the plan refuses unknown ones anyway, and
    values out of range, for the stages it only composes (merge, filter, mix, evaluate) too."""
    with pytest.raises(UserError, match=r"synthesize overrides.*Key 'limt' not in"):
        plan("experiment=owm4b_debate", *PATHS, "synthesize.extra_overrides=['+limt=5']")
    with pytest.raises(UserError, match=r"filter overrides.*filter.dedup.threshold=2.0: must be"):
        bad = "filter.extra_overrides=['filter.dedup.threshold=2']"
        plan("experiment=owm4b_debate", *PATHS, bad)
    with pytest.raises(UserError, match=r"mix overrides.*Key 'wieght' not in 'SourceConfig'"):
        plan("experiment=owm4b_debate", *PATHS, "mix.extra_overrides=['+sources.x.wieght=2']")


def test_quickstart_renders_for_cpu():
    _, jobs = plan("experiment=quickstart", "paths.runs=/tmp/qs")
    assert list(jobs) == ["synthesize", "merge", "filter", "mix", "pretrain", "evaluate"]
    assert "--gpus-per-node" not in "".join(j.script for j in jobs.values())
    assert "server=" not in " ".join(argv_of(jobs["synthesize"]))  # the embedded local server


def test_missing_data_paths_are_one_line():
    result = subprocess.run(
        [sys.executable, "-m", "mind_nemo.submit", "experiment=owm4b_debate", "dry_run=true"],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "paths.corpus=..." in result.stderr


def test_typo_in_a_stage_override_fails_before_anything_is_submitted():
    with pytest.raises(UserError, match=r"synthesize overrides.*temprature"):
        plan(
            "experiment=owm4b_debate",
            *PATHS,
            "synthesize.extra_overrides=['sampling.temprature=1']",
        )
    with pytest.raises(UserError, match="--constraint=a b"):
        plan("experiment=owm4b_raw", *PATHS, "mix.resources.extra=['--constraint=a b']")


def test_dry_run_prints_every_script():
    result = subprocess.run(
        [sys.executable, "-m", "mind_nemo.submit", "experiment=owm4b_longest", "dry_run=true",
         *PATHS],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("# ===== ") == 6 and "#SBATCH --nodes=16" in result.stdout
    assert "dry run: nothing submitted (6 stage(s) of experiment owm4b_longest)" in result.stdout


def test_server_across_nodes_is_started_by_the_job():
    _, jobs = plan(
        "experiment=owm14b_two_students", *PATHS,
        "synthesize.extra_overrides=['+style=two_students','server.model=nvidia/Nemotron-4-340B-Instruct',"
        "'server.num_nodes=2']",
    )  # fmt: skip
    synth = jobs["synthesize"]
    assert "#SBATCH --nodes=2" in synth.script and "#SBATCH --gpus-per-node=8" in synth.script
    assert "srun --overlap --nodes=2 --ntasks-per-node=8" in synth.script
    assert "-m mind_nemo.submit.serve --port=8000 --" in synth.script
    assert "-m mind_nemo.submit.health http://127.0.0.1:8000/v1 --timeout=3600" in synth.script
    assert "server.type=openai server.base_url=http://127.0.0.1:8000/v1" in synth.script
    assert subprocess.run(["bash", "-n"], input=synth.script, text=True).returncode == 0
    assert synth.local == []  # a multi-node server needs SLURM


@pytest.mark.parametrize("kind", ["trtllm", "sglang", "vllm"])
def test_rank_plans_of_multinode_servers(kind):
    cfg = ServerConfig(type=kind, model="m", tensor_parallel_size=8, num_nodes=2)
    head, worker = (rank_plan(cfg, "/models/m", 8000, rank, "node-a") for rank in (0, 1))
    if kind == "trtllm":
        assert tasks_per_node(cfg) == 8 and head.main == worker.main
        assert head.main[:2] == ["trtllm-llmapi-launch", "trtllm-serve"]
    elif kind == "sglang":
        assert tasks_per_node(cfg) == 1
        assert head.main[-4:] == ["--node-rank", "0", "--dist-init-addr", "node-a:8001"]
        assert worker.main[-4:] == ["--node-rank", "1", "--dist-init-addr", "node-a:8001"]
    else:
        assert head.before == [["ray", "start", "--head", "--port=6379"]]
        assert head.wait_for_ray_nodes == 2 and head.main[:2] == ["vllm", "serve"]
        assert "--pipeline-parallel-size" in head.main
        assert worker.main == ["ray", "start", "--address=node-a:6379", "--block"]
    with pytest.raises(UserError, match="cannot span nodes"):
        rank_plan(ServerConfig(type="local", num_nodes=2), "m", 1, 0, "h")


def test_health_wait_gives_up_when_the_server_process_is_gone():
    from mind_nemo.servers.launch import free_port

    dead = subprocess.Popen(["true"])
    dead.wait()
    result = subprocess.run(
        [sys.executable, "-m", "mind_nemo.submit.health", f"http://127.0.0.1:{free_port()}/v1",
         "--timeout=120", f"--pid={dead.pid}"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 2 and "exited during start-up" in result.stderr


def test_sbatch_missing_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UserError, match="sbatch is not installed"):
        submit(tmp_path / "x.sbatch", after=[], singleton=False, hold=False)


@pytest.mark.slow
@pytest.mark.integration
def test_local_executor_runs_the_stages(tmp_path, stub_server):
    """executor=local: synthesize (two shards, one after another), merge, filter, mix here."""
    stub = stub_server()
    corpus = write_corpus(tmp_path / "corpus.jsonl", 6, paragraphs=1)
    synth = ["+style=all", "corpus=files", f"corpus.path={corpus}", "corpus.id_field=id",
             "limit=null", *stub.overrides()]  # fmt: skip
    quoted = ",".join(f"'{o}'" for o in synth)
    result = subprocess.run(
        [sys.executable, "-m", "mind_nemo.submit", "experiment=quickstart", "executor=local",
         f"paths.runs={tmp_path}", "synthesize.tasks=2", f"synthesize.overrides=[{quoted}]",
         "stages=[synthesize,merge,filter,mix]"],
        cwd=REPO, capture_output=True, text=True, timeout=900,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-3000:]
    run = tmp_path / "synthesize" / "quickstart-all"
    assert all(shard_complete(run, i, 2) for i in range(2)) and not shard_complete(run, 0, 3)
    assert (run / "manifest.json").is_file()
    assert (tmp_path / "quickstart" / "mix" / "blend.json").is_file()
    assert "experiment quickstart: 4 stage(s) done" in result.stdout
