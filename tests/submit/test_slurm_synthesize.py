"""The SLURM launchers on a real SLURM: the synthesize job array, merge, requeue, the chain.

Everything goes through the user's command, ``python -m mind_nemo.submit``, against the one-node
cluster of ``launchers/slurm/local_cluster.sh`` (CI starts it). The generation server is the
stub (``python -m mind_nemo.servers.stub``) started by the test as a shared endpoint
(``server=openai``): real HTTP, instant answers, so the SLURM mechanics are what takes time.
Tests skip, with the reason, where SLURM is not installed or no node takes jobs.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mind_nemo.core.styles import CONVERSATION_STYLES
from mind_nemo.synthesize.shard_store import row_key
from tests.helpers import REPO, read_rows, write_corpus
from tests.submit.helpers import queue_empty, slurm_problem, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.integration,
    pytest.mark.skipif(slurm_problem() is not None, reason=str(slurm_problem())),
]


def submit(tmp_path: Path, name: str, synth_overrides: list[str], *extra: str) -> list[dict]:
    """``python -m mind_nemo.submit experiment=quickstart ...``; the chain it recorded."""
    quoted = ",".join(f"'{o}'" for o in synth_overrides)
    result = subprocess.run(
        [
            sys.executable, "-m", "mind_nemo.submit", "experiment=quickstart",
            f"name={name}", f"paths.runs={tmp_path / 'runs'}",
            f"dirs.synthesize={tmp_path / 'runs' / f'{name}-synth'}",
            f"synthesize.overrides=[{quoted}]", "synthesize.resources.cpus_per_task=1",
            "merge.resources.cpus_per_task=1", *extra,
        ],
        cwd=REPO, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    return json.loads((tmp_path / "runs" / name / "chain.json").read_text())["jobs"]


def job_records(job_id: str) -> list[dict[str, str]]:
    """``scontrol show job`` fields, one dict per job (every task of an array)."""
    out = subprocess.run(
        ["scontrol", "show", "job", "--oneliner", job_id], capture_output=True, text=True
    ).stdout
    records = []
    for line in out.splitlines():
        fields = dict(t.split("=", 1) for t in line.split() if "=" in t)
        if fields:
            records.append(fields)
    return records


def stub_overrides(stub, corpus: Path, concurrency: int) -> list[str]:
    return [
        "+style=all", "corpus=files", f"corpus.path={corpus}", "corpus.id_field=id", "limit=null",
        f"engine.max_concurrent_requests={concurrency}", *stub.overrides(),
    ]  # fmt: skip


def planned_keys(run_dir: Path) -> set[tuple]:
    """Every (document, context, style, sample) the shards planned, from their contexts files."""
    keys = set()
    for path in sorted((run_dir / "contexts").glob("shard-*.jsonl")):
        for ctx in read_rows(path):
            for style in CONVERSATION_STYLES:
                keys.add((ctx["document_id"], ctx["index"], style, 0))
    return keys


def merged_keys(run_dir: Path) -> list[tuple]:
    rows = []
    for path in sorted((run_dir / "conversations").glob("shard-*.jsonl")):
        rows += [tuple(row_key(r)) for r in read_rows(path)]
    return rows


def check_complete(run_dir: Path, corpus_docs: int) -> None:
    """Merge published the run: every planned conversation exactly once, every doc planned."""
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    planned = planned_keys(run_dir)
    assert len({k[0] for k in planned}) == corpus_docs
    got = merged_keys(run_dir)
    assert len(got) == len(set(got)), "a conversation was written twice"
    assert set(got) == planned
    assert manifest["conversations"] == len(planned)


def test_array_and_merge_complete(tmp_path, stub_server):
    stub = stub_server("--latency", "0.01,0.05")
    corpus = write_corpus(tmp_path / "corpus.jsonl", 18, paragraphs=1)
    chain = submit(
        tmp_path, "slurm-array", stub_overrides(stub, corpus, 8),
        "synthesize.tasks=3", "stages=[synthesize,merge]",
    )  # fmt: skip
    array, merge = chain[0]["job_id"], chain[1]["job_id"]
    assert chain[1]["after"] == [array]
    wait_for(lambda: queue_empty([array, merge]), "the array and merge to finish")
    tasks = job_records(array)
    assert sorted(t["ArrayTaskId"] for t in tasks) == ["0", "1", "2"]
    assert {t["JobState"] for t in tasks} == {"COMPLETED"}, tasks
    assert job_records(merge)[0]["JobState"] == "COMPLETED"
    run_dir = tmp_path / "runs" / "slurm-array-synth"
    check_complete(run_dir, 18)
    sizes = [len(read_rows(p)) for p in sorted((run_dir / "conversations").glob("*.jsonl"))]
    assert len(sizes) == 3 and all(sizes), sizes  # every task did a share


def test_requeued_task_resumes_with_nothing_lost_or_doubled(tmp_path, stub_server):
    # Slow answers, few at a time: each task runs for a while, so the requeue lands mid-shard.
    stub = stub_server("--latency", "0.3,0.6")
    corpus = write_corpus(tmp_path / "corpus.jsonl", 30, paragraphs=1)
    chain = submit(
        tmp_path, "slurm-requeue", stub_overrides(stub, corpus, 2),
        "synthesize.tasks=2", "stages=[synthesize,merge]",
    )  # fmt: skip
    array, merge = chain[0]["job_id"], chain[1]["job_id"]
    run_dir = tmp_path / "runs" / "slurm-requeue-synth"
    shard0 = run_dir / "conversations" / "shard-00000-of-00002.jsonl"

    def committed() -> int:
        return len(shard0.read_text().splitlines()) if shard0.exists() else 0

    wait_for(lambda: committed() >= 10, "task 0 to commit 10 conversations")
    task0 = f"{array}_0"
    requeue = subprocess.run(["scontrol", "requeue", task0], capture_output=True, text=True)
    assert requeue.returncode == 0, requeue.stderr
    before_requeue = committed()
    # SLURM holds a requeued job back for a while (BeginTime); let it start again at once.
    wait_for(lambda: job_records(task0)[0]["JobState"] == "PENDING", "task 0 to be pending")
    subprocess.run(["scontrol", "update", f"jobid={task0}", "StartTime=now"], check=True)
    wait_for(lambda: queue_empty([array, merge]), "the requeued array and merge to finish")

    record = job_records(task0)[0]
    assert record["JobState"] == "COMPLETED" and record["Restarts"] == "1", record
    assert job_records(merge)[0]["JobState"] == "COMPLETED"
    logs = Path(chain[0]["logs"])  # NeMo-Run's job folder: the batch log and the steps' logs
    text = "\n".join(p.read_text() for p in sorted(logs.glob("*.out")))
    assert "SIGTERM: stopping synthesize" in text  # the client step's handler ran
    assert "terminated:" in text  # synthesize flushed and exited 143
    # The same task ran again: NeMo-Run names each run's step log by SLURM_RESTART_COUNT.
    assert list(logs.glob("log-*_1.out")), sorted(p.name for p in logs.iterdir())
    check_complete(run_dir, 30)
    # The second session asked only for what the first had not committed.
    manifest = json.loads((run_dir / "manifests" / "shard-00000-of-00002.json").read_text())
    shard_total = len(read_rows(run_dir / "contexts" / "shard-00000-of-00002.jsonl")) * 7
    assert manifest["session"]["requests"] <= shard_total - before_requeue


def test_chain_is_submitted_with_afterok_dependencies(tmp_path, stub_server):
    stub = stub_server()
    corpus = write_corpus(tmp_path / "corpus.jsonl", 4, paragraphs=1)
    chain = submit(
        tmp_path, "slurm-chain", stub_overrides(stub, corpus, 4), "cluster.hold=true",
    )  # fmt: skip
    ids = [job["job_id"] for job in chain]
    try:
        assert [j["stage"] for j in chain] == [
            "synthesize", "merge", "filter", "mix", "pretrain", "evaluate",
        ]  # fmt: skip
        for previous, job in itertools.pairwise(chain):
            record = job_records(job["job_id"])[0]
            assert f"afterok:{previous['job_id']}" in record["Dependency"], record
            assert record["Reason"] == "JobHeldUser"
        # Shared run folders (synthesize, merge, filter) are serialised by name.
        assert "singleton" in job_records(ids[0])[0]["Dependency"]
        assert "singleton" in job_records(ids[2])[0]["Dependency"]
        for job in chain:  # the scripts NeMo-Run submitted, kept in each job's folder
            text = Path(job["script"]).read_text()
            assert subprocess.run(["bash", "-n"], input=text, text=True).returncode == 0
            assert text.startswith("#!/bin/bash") and "Generated by NeMo Run" in text
    finally:
        subprocess.run(["scancel", *ids], check=False)


#: Plan the experiment, put the stub in the vLLM server step's place, submit through NeMo-Run
#: (in a child process: NeMo-Run's local tunnel reads stdin, which pytest has captured).
SWAP_AND_SUBMIT = """
import json, sys
from tests.submit.test_experiments import plan
from mind_nemo.submit.launch import submit
port, out, *overrides = sys.argv[1:]
cfg, jobs = plan(*overrides)
job = jobs["synthesize"]
server, client = job.steps
assert server.role == "vllm" and "exec vllm serve stub" in server.script, server.script
job.resources.gpus_per_node = 0  # the one-node cluster has no GPU
stub = [sys.executable, "-m", "mind_nemo.servers.stub", f"--port={port}"]
server.script = "exec " + " ".join(stub) + "\\n"  # the venv finds mind_nemo from any folder
open(out, "w").write(json.dumps(submit(cfg, [job])))
"""


def test_server_step_and_client_step_share_one_allocation(tmp_path):
    """A launched server (server=vllm) is a step of its own beside the client step: NeMo-Run
    starts both in one job, the client waits for /health, and the server is stopped after.
    The stub stands in for vLLM (no GPU here): only the server step's command is swapped."""
    from mind_nemo.servers.launch import free_port
    from mind_nemo.submit.shard_done import shard_complete

    corpus = write_corpus(tmp_path / "corpus.jsonl", 6, paragraphs=1)
    port = free_port()
    synth = ["+style=all", "corpus=files", f"corpus.path={corpus}", "corpus.id_field=id",
             "limit=null", "server=vllm", "server.model=stub", "server.tokenizer=embedded",
             "server.startup_timeout_s=120"]  # fmt: skip
    quoted = ",".join(f"'{o}'" for o in synth)
    out = tmp_path / "chain.json"
    result = subprocess.run(
        [sys.executable, "-c", SWAP_AND_SUBMIT, str(port), str(out),
         "experiment=quickstart", "name=slurm-group", f"paths.runs={tmp_path / 'runs'}",
         f"synthesize.overrides=[{quoted}]", f"synthesize.server_port={port}",
         "synthesize.resources.cpus_per_task=1", "stages=[synthesize]"],
        cwd=REPO, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (record,) = json.loads(out.read_text())
    wait_for(lambda: queue_empty([record["job_id"]]), "the server + client job to finish")
    logs = "\n".join(p.read_text() for p in sorted(Path(record["logs"]).glob("*.out")))
    assert job_records(record["job_id"])[0]["JobState"] == "COMPLETED", logs[-3000:]
    assert f"server http://127.0.0.1:{port}/v1 is healthy" in logs
    run_dir = tmp_path / "runs" / "synthesize" / "quickstart-all"
    assert shard_complete(run_dir, 0, 1), logs[-3000:]
    assert "Killing process" in logs  # the server step was stopped once the client was done


def test_time_limit_warning_stops_the_task_and_nemo_run_requeues_it(tmp_path, stub_server):
    """``--signal=USR1@lead``: the client step stops synthesize and exits 75, and NeMo-Run's
    batch script requeues the task; nothing committed is lost or written twice."""
    stub = stub_server("--latency", "0.3,0.6")
    corpus = write_corpus(tmp_path / "corpus.jsonl", 30, paragraphs=1)
    chain = submit(
        tmp_path, "slurm-timelimit", stub_overrides(stub, corpus, 2), "synthesize.tasks=1",
        "stages=[synthesize]", "synthesize.resources.time=00:02:00", "cluster.signal_lead_s=90",
    )  # fmt: skip
    array = chain[0]["job_id"]
    task0 = f"{array}_0"
    logs = Path(chain[0]["logs"])

    def log_text() -> str:
        return "\n".join(p.read_text() for p in sorted(logs.glob("*.out")))

    try:
        wait_for(lambda: "time limit near" in log_text(), "the time-limit warning", 200)
        wait_for(lambda: job_records(task0)[0].get("Restarts", "0") != "0", "the requeue", 120)
    finally:
        subprocess.run(["scancel", array], check=False)
    text = log_text()
    assert "job exited with code 75" in text, text[-3000:]  # NeMo-Run's script saw our status
    assert 'scontrol requeue "$SLURM_JOB_ID"' in text  # ... and requeued the task
    # SLURM may warn up to a minute early, so the task may have stopped before its first row.
    rows = merged_keys(tmp_path / "runs" / "slurm-timelimit-synth")
    assert len(rows) == len(set(rows)), "a conversation was written twice"
