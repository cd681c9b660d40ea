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
    log = (tmp_path / "runs" / "slurm-requeue" / "logs").glob(f"*-{array}_0.out")
    text = next(log).read_text()
    assert "SIGTERM: stopping synthesize" in text  # the job script's trap ran
    assert "terminated:" in text  # synthesize flushed and exited 143
    assert "restart 1" in text  # the same task ran again
    check_complete(run_dir, 30)
    # The second session asked only for what the first had not committed.
    manifest = json.loads((run_dir / "manifests" / "shard-00000-of-00002.json").read_text())
    shard_total = len(read_rows(run_dir / "contexts" / "shard-00000-of-00002.jsonl")) * 7
    assert manifest["session"]["requests"] <= shard_total - before_requeue


def test_chain_is_submitted_with_afterok_dependencies(tmp_path, stub_server):
    stub = stub_server()
    corpus = write_corpus(tmp_path / "corpus.jsonl", 4, paragraphs=1)
    chain = submit(
        tmp_path, "slurm-chain", stub_overrides(stub, corpus, 4), "slurm.hold=true",
    )  # fmt: skip
    ids = [job["job_id"] for job in chain]
    try:
        assert [j["stage"] for j in chain] == [
            "synthesize", "merge", "filter", "mix", "pretrain", "evaluate",
        ]  # fmt: skip
        for previous, job in itertools.pairwise(chain):
            record = job_records(job["job_id"])[0]
            assert record["Dependency"].startswith(f"afterok:{previous['job_id']}"), record
            assert record["Reason"] == "JobHeldUser"
        # Shared run folders (synthesize, merge, filter) are serialised by name.
        assert "singleton" in job_records(ids[0])[0]["Dependency"]
        assert "singleton" in job_records(ids[2])[0]["Dependency"]
        for job in chain:
            text = Path(job["script"]).read_text()
            assert subprocess.run(["bash", "-n"], input=text, text=True).returncode == 0
            assert text.startswith("#!/bin/bash")
    finally:
        subprocess.run(["scancel", *ids], check=False)
