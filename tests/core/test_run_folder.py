"""The run-folder contract: shard completeness, done markers, temp names, folder checks, locks.

Every consumer of "is this shard finished" (merge, the filter, the SLURM shard check) goes
through :mod:`mind_nemo.core.run_folder`; the last test checks that they agree on a shard whose
contexts changed after it completed, which the three old copies of the check did not.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mind_nemo.core import run_folder as rf
from mind_nemo.core.errors import UserError
from mind_nemo.core.run_folder import (
    RunFolder,
    check_folder_argument,
    check_folder_path,
    publish_folder,
    read_done,
    shard_complete,
    shard_name,
    shard_problem,
    staging_folder,
    take_lock,
    temp_path,
    write_atomic,
    write_marker,
)
from tests.helpers import REPO

SHARD = shard_name(0, 1)


def make_shard(root: Path, status: str = "complete", shard: str = SHARD) -> RunFolder:
    """A synthesize shard as the stage leaves it: two data files and a manifest vouching."""
    folder = RunFolder(root)
    for path, rows in ((folder.conversations(shard), 3), (folder.contexts(shard), 1)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps({"n": i}) + "\n" for i in range(rows)))
    files = [folder.conversations(shard), folder.contexts(shard)]
    write_marker(folder.shard_manifest(shard), {"shard": shard}, files=files, root=root,
                 status=status)  # fmt: skip
    return folder


def test_complete_incomplete_missing_and_tampered_shards(tmp_path):
    assert shard_problem(tmp_path, SHARD) == "has not run"
    folder = make_shard(tmp_path, status="incomplete")
    assert shard_problem(tmp_path, SHARD) == "is incomplete"
    make_shard(tmp_path)
    assert shard_problem(tmp_path, SHARD) is None and shard_complete(tmp_path, SHARD)
    # The manifest records the checksum and size of both files, relative to the run folder.
    manifest = json.loads(folder.shard_manifest(SHARD).read_text())
    expected = {f"conversations/{SHARD}.jsonl", f"contexts/{SHARD}.jsonl"}
    assert set(manifest[rf.CHECKSUMS]) == expected
    with open(folder.conversations(SHARD), "a") as f:
        f.write("{}\n")
    assert "checksum mismatch" in shard_problem(tmp_path, SHARD)
    make_shard(tmp_path)
    # Same size, other bytes: only the checksum tells.
    text = folder.contexts(SHARD).read_text()
    folder.contexts(SHARD).write_text(text.replace("0", "9"))
    problem = shard_problem(tmp_path, SHARD)
    assert problem is not None and f"contexts/{SHARD}.jsonl" in problem
    assert shard_problem(tmp_path, SHARD, verify="size") is None  # the cheap check misses it


def test_a_manifest_without_checksums_is_not_complete(tmp_path):
    folder = make_shard(tmp_path)
    manifest = json.loads(folder.shard_manifest(SHARD).read_text())
    del manifest[rf.CHECKSUMS]
    folder.shard_manifest(SHARD).write_text(json.dumps(manifest))
    assert "records no checksums" in shard_problem(tmp_path, SHARD)
    folder.shard_manifest(SHARD).write_text("{not json")
    assert "unreadable" in shard_problem(tmp_path, SHARD)


def test_markers_check_expectations_and_use_known_digests(tmp_path):
    data = tmp_path / "d.bin"
    data.write_bytes(b"abc")
    marker = tmp_path / "d.json"
    write_marker(marker, {"identity": {"inputs": ("a", 1)}}, files=[data])
    # Tuples compare as the lists they read back as.
    assert read_done(marker, expect={"identity": {"inputs": ("a", 1)}}) is not None
    assert read_done(marker, expect={"identity": {"inputs": ("b", 1)}}) is None
    # A digest the caller already computed is used instead of reading the file again.
    assert read_done(marker, digests={data: "0" * 64}) is None
    data.write_bytes(b"abd")
    assert read_done(marker) is None
    assert read_done(marker, verify="size") is not None
    data.write_bytes(b"abcd")
    assert read_done(marker, verify="size") is None
    data.unlink()
    assert read_done(marker, verify="status") is not None  # status only: files not looked at


def test_temp_names_and_atomic_writes(tmp_path):
    target = tmp_path / "manifests" / "x.json"
    assert temp_path(target) == tmp_path / "manifests" / ".x.json.tmp"
    one, two = temp_path(target, unique=True), temp_path(target, unique=True)
    assert one != two and one.name.startswith(f".x.json.{os.getpid()}-")
    assert one.name.endswith(".tmp") and one.parent == target.parent
    write_atomic(target, "1")
    write_atomic(target, "2")
    assert target.read_text() == "2" and [p.name for p in target.parent.iterdir()] == ["x.json"]


def test_publish_folder_replaces_every_old_part(tmp_path):
    final = tmp_path / "export"
    (final / "a").mkdir(parents=True)
    for i in range(3):
        (final / "a" / f"part-{i:05d}.parquet").write_text("old")
    staged = staging_folder(final)
    (staged / "a").mkdir(parents=True)
    (staged / "a" / "part-00000.parquet").write_text("new")
    publish_folder(staged, final)
    assert [p.name for p in (final / "a").iterdir()] == ["part-00000.parquet"]
    assert (final / "a" / "part-00000.parquet").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_a_run_folder_under_a_file_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match="is a file, not a folder") as caught:
        check_folder_path(blocker)
    assert "\n" not in str(caught.value)
    with pytest.raises(UserError, match=f"lies under {blocker}"):
        check_folder_path(blocker / "a" / "b")
    with pytest.raises(UserError, match="output_dir="):
        check_folder_argument(["+style=x", f"output_dir={blocker}/run"])
    check_folder_path(tmp_path / "new" / "run")  # not there yet: fine
    check_folder_argument(["+style=x"])  # no output_dir given: nothing to check


HOLDER = """
import sys, time
from pathlib import Path
from mind_nemo.core.run_folder import take_lock
lock = take_lock(Path(sys.argv[1]), sys.argv[2])
print("locked", flush=True)
time.sleep(120)
"""


def test_a_lock_held_by_a_live_process_is_refused_and_freed_by_sigkill(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path), SHARD],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(UserError) as caught:
            take_lock(tmp_path, SHARD, what=f"{SHARD} of {tmp_path}")
        line = str(caught.value)
        assert "\n" not in line
        assert f"{SHARD} of {tmp_path} is already being written by pid {holder.pid}" in line
        assert f"on host {socket.gethostname()} since 20" in line
        assert str(RunFolder(tmp_path).lock(SHARD)) in line
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The kernel released it with the process: no stale lock, no cleanup.
    with take_lock(tmp_path, SHARD) as lock:
        assert lock.held
        written = json.loads(RunFolder(tmp_path).lock(SHARD).read_text())
        assert written["pid"] == os.getpid() and written["host"] == socket.gethostname()
        with pytest.raises(UserError, match="already being written"):
            take_lock(tmp_path, SHARD)  # a second open file in this process conflicts too
    assert not lock.held
    take_lock(tmp_path, SHARD).close()


def test_a_filesystem_without_flock_refuses_naming_the_override(tmp_path, monkeypatch):
    def no_flock(fd: int, operation: int) -> None:
        raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS))

    monkeypatch.setattr(fcntl, "flock", no_flock)
    with pytest.raises(UserError) as caught:
        take_lock(tmp_path, SHARD, setting="lock=false")
    line = str(caught.value)
    assert "\n" not in line and "does not support flock" in line
    assert "lock=false" in line and f"{rf.LOCK_ENV}=off" in line
    # Turned off (the stage's setting, or the environment for every stage): nothing is taken.
    assert not take_lock(tmp_path, SHARD, enabled=False).held
    monkeypatch.setenv(rf.LOCK_ENV, "off")
    assert not take_lock(tmp_path, SHARD).held


def test_merge_filter_and_slurm_check_agree_on_changed_contexts(tmp_path):
    from mind_nemo.filter.source import open_source_run
    from mind_nemo.submit.shard_done import shard_complete as slurm_shard_complete
    from mind_nemo.synthesize.merge import check_shards

    folder = make_shard(tmp_path)
    folder.identity.write_text(json.dumps({"num_shards": 1}))
    assert slurm_shard_complete(tmp_path, 0, 1)
    check_shards(tmp_path)
    with open(folder.contexts(SHARD), "a") as f:
        f.write("{}\n")
    assert not slurm_shard_complete(tmp_path, 0, 1)
    with pytest.raises(UserError, match="checksum mismatch"):
        check_shards(tmp_path)
    source = open_source_run(tmp_path)
    with pytest.raises(UserError, match="checksum mismatch"):
        source.check_inputs({SHARD: rf.file_sha256(folder.conversations(SHARD))})
