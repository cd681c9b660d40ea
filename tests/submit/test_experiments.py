"""Every experiment renders: configs compose, each stage's overrides compose against that stage's
own config, and every sbatch script passes ``bash -n``. No SLURM needed (dry runs); the local
executor runs real stages against the stub server.
"""

from __future__ import annotations

import os
import shutil
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


def script_of(job: Job) -> str:
    """The bash bodies of the job's steps, as NeMo-Run runs them."""
    return "\n".join(step.script for step in job.steps)


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
        check = subprocess.run(["bash", "-n"], input=script_of(job), text=True,
                               capture_output=True)  # fmt: skip
        assert check.returncode == 0, check.stderr
        assert f"cd {REPO}" in script_of(job)  # container-less jobs start where the submitter ran
    if name in PAPER_ROWS:
        reported = PAPER_OWM4B[PAPER_ROWS[name]]
        assert tuple(cfg.paper[k] for k in PAPER_COLUMN_ORDER) == reported
    mix = " ".join(argv_of(jobs["mix"]))
    assert "mix=mind_owm4b_longest" in mix and "sources.general.path=/data/fineweb-edu" in mix
    assert "total_tokens=50e9" in mix and "tokenizer.name=/models/mind-7b/tokenizer.json" in mix
    pretrain = script_of(jobs["pretrain"])
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
    assert synth.array == f"0-{tasks - 1}" and synth.signal == "USR1@300" and synth.retries == 3
    assert synth.resources.gpus_per_node == 8
    server, client = synth.steps  # the server is a step of its own, in the trtllm image
    assert server.role == "trtllm" and "\nexec trtllm-serve meta-llama/" in server.script
    assert client.role == "mind_nemo" and "-m mind_nemo.submit.step --wait-for=" in client.script
    style = name.split("_", 1)[1]
    if style in CONVERSATION_STYLES:
        assert f"+sources.{style}.styles=[{style}]" in mix
    if name.startswith("owm4b") and style not in ("rephrase",):
        # the conversation rows share one all-styles run, serialised by job name
        assert "+style=all" in argv and synth.name == "synth-owm4b-all" and synth.singleton


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
    assert all(j.resources.gpus_per_node == 0 and len(j.steps) == 1 for j in jobs.values())
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


def test_dry_run_prints_every_script(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mind_nemo.submit", "experiment=owm4b_longest", "dry_run=true",
         *PATHS, f"cluster.job_dir={tmp_path}"],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("# ===== ") == 6 and "#SBATCH --nodes=16" in result.stdout
    assert result.stdout.count("Generated by NeMo Run") == 6
    assert "dry run: nothing submitted (6 job(s) of experiment owm4b_longest)" in result.stdout


def test_server_across_nodes_is_started_by_the_job():
    _, jobs = plan(
        "experiment=owm14b_two_students", *PATHS,
        "synthesize.extra_overrides=['+style=two_students','server.model=nvidia/Nemotron-4-340B-Instruct',"
        "'server.num_nodes=2']",
    )  # fmt: skip
    synth = jobs["synthesize"]
    assert synth.resources.nodes == 2 and synth.resources.gpus_per_node == 8
    server, client = synth.steps
    assert server.srun_args == ["--overlap", "--nodes=2", "--ntasks-per-node=8"]
    assert "-m mind_nemo.submit.serve --port=8000 --" in server.script
    assert "-m mind_nemo.submit.step --wait-for=http://127.0.0.1:8000/v1 --timeout=3600" in (
        client.script
    )
    assert "server.type=openai server.base_url=http://127.0.0.1:8000/v1" in client.script
    assert subprocess.run(["bash", "-n"], input=script_of(synth), text=True).returncode == 0
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


SITE = ["cluster=example_site", "cluster.ssh_tunnel=null"]


def test_example_site_dry_run_prints_pyxis_scripts(tmp_path):
    """The example site config: every stage in the mind_nemo image, the server in its own."""
    result = subprocess.run(
        [sys.executable, "-m", "mind_nemo.submit", "experiment=owm4b_debate", "dry_run=true",
         *PATHS, *SITE, f"cluster.job_dir={tmp_path}"],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert out.count("Generated by NeMo Run") == 6
    assert out.count("--container-image /lustre/fsw/my_account/images/mind_nemo.sqsh") == 6
    assert "--container-image nvcr.io/nvidia/tensorrt-llm/release:1.0.0" in out  # server step
    assert "--container-mounts /lustre/fsw/my_account/mind:/lustre/fsw/my_account/mind," in out
    assert "#SBATCH --account=my_account" in out and "#SBATCH --partition=batch" in out
    assert "#SBATCH --array=0-63" in out and "#SBATCH --signal=USR1@300" in out
    assert "exec trtllm-serve meta-llama/Meta-Llama-3-70B-Instruct" in out
    assert "exec python -m mind_nemo.submit.step --wait-for=http://127.0.0.1:8000/v1" in out
    assert "export HF_HOME=/models/hf-cache" in out
    assert f"cd {REPO}" not in out  # in containers, nothing of this checkout is assumed
    # The printed scripts are the files kept for sbatch, each valid bash.
    scripts = sorted(tmp_path.rglob("*_sbatch.sh"))
    assert len(scripts) == 6
    for script in scripts:
        text = script.read_text()
        assert text in out
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0


def test_a_users_cluster_file_is_read_by_path(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text("executor: slurm\naccount: acct7\ncontainers: {mind_nemo: img.sqsh}\n")
    cfg, jobs = plan("experiment=owm4b_raw", *PATHS, f"cluster_file={site}")
    assert cfg.cluster.account == "acct7" and cfg.cluster.image("mind_nemo") == "img.sqsh"
    assert argv_of(jobs["mix"])[0] == "python"  # the image's python, not this venv's
    site.write_text("acount: acct7\n")
    with pytest.raises(UserError, match="acount"):
        plan("experiment=owm4b_raw", *PATHS, f"cluster_file={site}")


@pytest.mark.skipif(shutil.which("docker") is None, reason="docker is not installed here")
def test_docker_executor_runs_every_stage_in_our_image(tmp_path):
    from mind_nemo.submit.executors import docker_executor

    cfg, jobs = plan(
        "experiment=quickstart", "paths.runs=/tmp/qs", "executor=docker",
        "+cluster.containers.mind_nemo=mind:latest", "cluster.mounts=['/a:/a']",
    )  # fmt: skip
    executor = docker_executor(cfg.cluster, jobs["merge"], str(tmp_path))
    assert executor.container_image == "mind:latest" and executor.volumes == ["/a:/a"]
    assert jobs["merge"].steps[0].script.splitlines()[-1].startswith("exec python -m")


def test_docker_executor_without_docker_is_one_line(monkeypatch, tmp_path):
    from mind_nemo.submit.cluster import ClusterConfig
    from mind_nemo.submit.executors import docker_executor

    monkeypatch.setenv("PATH", str(tmp_path))
    _, jobs = plan("experiment=quickstart", "paths.runs=/tmp/qs", "stages=[merge]")
    cluster = ClusterConfig(executor="docker", containers={"mind_nemo": "mind:latest"})
    with pytest.raises(UserError, match="docker is not installed"):
        docker_executor(cluster, jobs["merge"], str(tmp_path))


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


@pytest.mark.slow
def test_local_executor_stops_at_the_first_failed_stage(tmp_path):
    """merge of a run that was never synthesized fails; filter must not start after it."""
    result = subprocess.run(
        [sys.executable, "-m", "mind_nemo.submit", "experiment=quickstart", "executor=local",
         f"paths.runs={tmp_path}", "stages=[merge,filter]"],
        cwd=REPO, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "error: stage merge ended FAILED" in result.stderr
    assert not (tmp_path / "synthesize" / "quickstart-all-filtered").exists()
