"""The run-folder contract: where every stage's files live, when work counts as done, who writes.

Every stage writes one run folder and reads the previous stage's. This module is the only place
that spells the names inside them, decides when a shard is complete, writes and reads done
markers, names temporary files, and locks a shard against a second writer; stages, ``merge``,
the report and the SLURM shard check all ask it, so they cannot disagree.

Layout (``<shard>`` is :func:`shard_name`, ``shard-NNNNN-of-MMMMM``)::

    synthesize   config.yaml  run_identity.json  manifest.json  locks/<shard>.lock
                 conversations/<shard>.jsonl  contexts/<shard>.jsonl  failures/<shard>.jsonl
                 manifests/<shard>.json  (merge:) export/<style>/part-NNNNN.parquet
    filter       config.yaml  filter_identity.json  manifest.json  locks/
                 conversations/<shard>.jsonl  rejects/<shard>.jsonl  manifests/<shard>.json
                 work/{kept,rejects,dedup}/<shard>.*  variants/<name>/part-NNNNN.jsonl
    mix          config.yaml  blend.json  data_args.txt  manifest.json  locks/
                 datasets/<source>_text_document.{bin,idx,json}
                 shards/<source>/<shard>_text_document.{bin,idx,json}

**Done markers.** One design for everything that says "this is finished": a JSON record written
atomically *after* the files it vouches for are in place, holding ``status`` and ``checksums``
(SHA-256 and size of each of those files, relative to the run folder). :func:`read_done` returns
the record only when the status is ``complete``, the fields the caller expects (input checksum,
settings, identity) are equal, and every vouched-for file still has its checksum (or, for
multi-gigabyte outputs, its size: ``verify="size"``). A synthesize shard manifest, a filter
pass-1 marker, a mix dataset marker and a filter run's ``manifest.json`` are all such markers.
A synthesize shard is *complete* (:func:`shard_problem`) when its manifest is a valid marker.

**Temporary files.** A file is written under :func:`temp_path` beside its final name and renamed
into place (:func:`publish`, :func:`write_atomic`), so readers see the old file or the new one;
a folder of parts is built beside its final name and swapped in (:func:`publish_folder`).

**One writer per shard.** A stage takes :func:`take_lock` on ``locks/<name>.lock`` before it
writes: an exclusive ``flock`` that the kernel releases when the process ends, however it ends
(``kill -9`` included), so there is no stale lock to clean up. The holder writes its host, pid
and start time into the file; a second writer exits at once (status 2) with one line naming it.
Two copies of one SLURM task (a requeue while the first still runs) can therefore never append
the same keys twice.

**Shared filesystems.** ``flock`` works across machines on NFSv4 (Linux sends it to the server
as a whole-file POSIX lock), on NFSv3 only when ``lockd``/``rpc.statd`` run on client and server,
and on Lustre only when mounted with ``-o flock`` (``localflock`` makes it node-local: two nodes
could both "hold" it). Without support the call fails (``ENOLCK``, ``ENOSYS``, ``EOPNOTSUPP``):
the stage then refuses with one line naming the setting that turns locking off (``lock=false``
for synthesize; ``MIND_NEMO_LOCK=off`` in the environment for every stage), which is safe only
when the user makes sure a shard is never run twice at once.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import secrets
import shutil
import socket
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mind_nemo.core.errors import UserError

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- names

#: Folders with one file per shard.
CONVERSATIONS = "conversations"
CONTEXTS = "contexts"
#: Synthesize resume: per document, how many contexts it gave (skip finished ones untokenised).
DOCUMENTS = "documents"
FAILURES = "failures"
MANIFESTS = "manifests"
REJECTS = "rejects"
#: Filter: pass-1 staging (``work/kept``, ``work/rejects``, ``work/dedup``) and training sets.
WORK = "work"
KEPT = "kept"
DEDUP = "dedup"
#: Filter, scalable dedup (``work/<name>/``): band-bucket records and row keys per shard, the
#: duplicate pairs of each hash range, the drops per shard, and the apply step's done markers.
DEDUP_BUCKETS = "dedup-buckets"
DEDUP_KEYS = "dedup-keys"
DEDUP_PAIRS = "dedup-pairs"
DEDUP_DROPS = "dedup-drops"
DEDUP_APPLIED = "dedup-applied"
VARIANTS = "variants"
#: Merge: the Parquet export, one folder per style.
EXPORT = "export"
#: The export's dataset card (Hugging Face reads its ``configs:``), and its Parquet files
#: (ours are ``<style>/part-NNNNN.parquet``; a released download names them its own way).
EXPORT_CARD = "README.md"
EXPORT_FILE_GLOB = "*/*.parquet"
#: Mix: one Megatron dataset per source, and per-array-task parts of them.
DATASETS = "datasets"
PARTS = "shards"
LOCKS = "locks"

CONFIG_FILE = "config.yaml"
#: The run-level manifest (unsharded runs, merge, filter, mix).
RUN_MANIFEST = "manifest.json"
#: What must stay the same for two sessions to write one dataset.
IDENTITY_FILE = "run_identity.json"
FILTER_IDENTITY_FILE = "filter_identity.json"
BLEND_FILE = "blend.json"
DATA_ARGS_FILE = "data_args.txt"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
REPORT_PLOTS = "report_plots"
#: The report's self-contained data viewer (contexts beside their conversations).
VIEWER_HTML = "viewer.html"

#: Shard files of a per-shard folder, and the parts of a variant or export folder.
SHARD_GLOB = "shard-*.jsonl"
PART_GLOB = "part-*.jsonl"

COMPLETE = "complete"
#: Where a done marker keeps the checksums of the files it vouches for.
CHECKSUMS = "checksums"
#: Environment switch that turns run-folder locks off for every stage.
LOCK_ENV = "MIND_NEMO_LOCK"


def shard_name(shard_id: int, num_shards: int) -> str:
    """``shard-00003-of-00016``: sortable, and names its siblings' count."""
    return f"shard-{shard_id:05d}-of-{num_shards:05d}"


def range_name(range_id: int, num_ranges: int) -> str:
    """``range-00003-of-00064``: one hash range of the filter's dedup buckets."""
    return f"range-{range_id:05d}-of-{num_ranges:05d}"


@dataclass(frozen=True)
class RunFolder:
    """Paths inside one run folder (any stage's); nothing here touches the disk but listing."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def manifest(self) -> Path:
        return self.root / RUN_MANIFEST

    @property
    def identity(self) -> Path:
        return self.root / IDENTITY_FILE

    @property
    def filter_identity(self) -> Path:
        return self.root / FILTER_IDENTITY_FILE

    @property
    def blend(self) -> Path:
        return self.root / BLEND_FILE

    @property
    def data_args(self) -> Path:
        return self.root / DATA_ARGS_FILE

    @property
    def work(self) -> Path:
        return self.root / WORK

    @property
    def variants(self) -> Path:
        return self.root / VARIANTS

    @property
    def export(self) -> Path:
        return self.root / EXPORT

    @property
    def datasets(self) -> Path:
        return self.root / DATASETS

    def subfolder(self, name: str) -> Path:
        """A folder of the run by its constant (``CONVERSATIONS``, ``REJECTS`` ...)."""
        return self.root / name

    def shard_file(self, folder: str, shard: str, suffix: str = ".jsonl") -> Path:
        return self.root / folder / f"{shard}{suffix}"

    def conversations(self, shard: str) -> Path:
        return self.shard_file(CONVERSATIONS, shard)

    def contexts(self, shard: str) -> Path:
        return self.shard_file(CONTEXTS, shard)

    def documents(self, shard: str) -> Path:
        return self.shard_file(DOCUMENTS, shard)

    def failures(self, shard: str) -> Path:
        return self.shard_file(FAILURES, shard)

    def rejects(self, shard: str) -> Path:
        return self.shard_file(REJECTS, shard)

    def shard_manifest(self, shard: str) -> Path:
        return self.shard_file(MANIFESTS, shard, ".json")

    def staged(self, kind: str, shard: str, suffix: str = ".jsonl") -> Path:
        """Filter pass-1 staging: ``work/<kind>/<shard><suffix>``."""
        return self.work / kind / f"{shard}{suffix}"

    def context_index(self, shard: str) -> Path:
        """The filter's SQLite index of a source shard's contexts."""
        return self.work / f"contexts-{shard}.sqlite"

    def variant(self, name: str) -> Path:
        return self.variants / name

    def parts(self, source: str) -> Path:
        """Mix: where the array tasks put their parts of ``source``."""
        return self.root / PARTS / source

    def lock(self, name: str) -> Path:
        return self.root / LOCKS / f"{name}.lock"

    def shards(self, folder: str = CONVERSATIONS) -> list[str]:
        """Names of the shard files in ``folder`` (``shard-*.jsonl``), sorted."""
        return sorted(p.stem for p in self.shard_files(folder))

    def shard_files(self, folder: str = CONVERSATIONS) -> list[Path]:
        return sorted((self.root / folder).glob(SHARD_GLOB))

    def shard_manifests(self) -> list[Path]:
        return sorted((self.root / MANIFESTS).glob("shard-*.json"))

    def variant_names(self) -> list[str]:
        return sorted(p.name for p in self.variants.glob("*") if p.is_dir())

    def variant_parts(self, name: str, pattern: str = PART_GLOB) -> list[Path]:
        return sorted(self.variant(name).glob(pattern))

    def expected_shards(self) -> list[str] | None:
        """The shards a synthesize run planned (from its identity), or None without one."""
        if not self.identity.is_file():
            return None
        try:
            num_shards = int(json.loads(self.identity.read_text()).get("num_shards") or 1)
        except (ValueError, AttributeError):
            raise UserError(f"{self.identity} is not a valid run identity") from None
        return [shard_name(i, num_shards) for i in range(num_shards)]


def resolve_shard(shard_id: int | None, num_shards: int | None) -> tuple[int, int]:
    """Shard from the config, else from a SLURM job array, else the whole corpus."""
    env = os.environ
    if num_shards is None and "SLURM_ARRAY_TASK_COUNT" in env:
        num_shards = int(env["SLURM_ARRAY_TASK_COUNT"])
    if shard_id is None and "SLURM_ARRAY_TASK_ID" in env:
        shard_id = int(env["SLURM_ARRAY_TASK_ID"]) - int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
    num_shards = num_shards or 1
    shard_id = shard_id or 0
    if num_shards < 1 or not 0 <= shard_id < num_shards:
        raise UserError(f"shard_id={shard_id} is out of range for num_shards={num_shards}")
    return shard_id, num_shards


def check_folder_path(path: Path, key: str = "output_dir") -> None:
    """Refuse a run folder that is, or lies under, a file (one line, before anything is made)."""
    for candidate in (path, *path.parents):
        if candidate.is_dir():
            return
        if candidate.exists() or candidate.is_symlink():
            where = "is" if candidate == path else f"lies under {candidate}, which is"
            raise UserError(f"{key}={path} {where} a file, not a folder; choose another {key}")


def make_folder(path: Path, key: str = "output_dir") -> None:
    """``mkdir -p`` a run folder; a path under a file or without permission is one line."""
    check_folder_path(path, key)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create {key}={path}: {err.strerror}") from None


def check_folder_argument(args: list[str], key: str = "output_dir") -> None:
    """Check ``key=PATH`` among command-line overrides before Hydra creates that folder."""
    for arg in reversed(args):
        name, sep, value = arg.lstrip("+").partition("=")
        if sep and name == key and value not in ("", "null"):
            check_folder_path(Path(os.path.expanduser(value)), key)
            return


# ----------------------------------------------------------------------------- hashing


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes; a file that does not exist hashes like an empty one (a shard
    that has written nothing yet is an empty shard, not an error)."""
    digest = hashlib.sha256()
    if path.exists():
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


# ----------------------------------------------------------------------------- temp files


def temp_path(path: Path, *, unique: bool = False) -> Path:
    """Where ``path`` is written before it is published: hidden, beside it, ``.tmp``.

    The plain name (``.x.jsonl.tmp``) is for files with one writer (a locked shard), whose
    leftovers the next attempt simply overwrites; ``unique`` adds the pid and a random tag for
    files several processes may write at once (``config.yaml``, a run's identity).
    """
    tag = f".{os.getpid()}-{secrets.token_hex(4)}" if unique else ""
    return path.with_name(f".{path.name}{tag}.tmp")


def publish(tmp: Path, path: Path) -> None:
    """Flush ``tmp`` to disk and rename it to ``path`` (readers see the old file or the new)."""
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    path.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, path)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so readers see the old file or the new one, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path, unique=True)
    try:
        with open(tmp, "x", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def staging_folder(final: Path) -> Path:
    """Where a folder of parts is built before :func:`publish_folder` (``variants.partial``)."""
    return final.with_name(f"{final.name}.partial")


def retired_folder(final: Path) -> Path:
    """Where the previous folder waits while the new one is renamed in (``variants.old``)."""
    return final.with_name(f"{final.name}.old")


def publish_folder(staged: Path, final: Path) -> None:
    """Swap ``staged`` in as ``final``; the old folder and its parts go entirely.

    Readers see the old folder, briefly none, or the new one: never old parts beside new ones.
    """
    old = retired_folder(final)
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(staged, final)
    shutil.rmtree(old, ignore_errors=True)


# ----------------------------------------------------------------------------- done markers

Verify = Literal["sha256", "size", "status"]


def _canonical(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists), for comparisons."""
    return json.loads(json.dumps(value, default=str))


def write_marker(
    path: Path,
    record: Mapping[str, Any],
    *,
    files: Iterable[Path] = (),
    root: Path | None = None,
    status: str = COMPLETE,
    digests: Mapping[Path, str] | None = None,
) -> dict[str, Any]:
    """Write a done marker for ``files`` (paths under ``root``, default the marker's folder).

    Call it after the files are in their final place: the marker is what makes them count.
    ``digests`` are checksums the caller already computed (a file is then not read again).
    """
    root = root or path.parent
    known = {os.path.normpath(p): sha for p, sha in (digests or {}).items()}
    checksums = {}
    for file in files:
        sha = known.get(os.path.normpath(file)) or file_sha256(file)
        checksums[file.relative_to(root).as_posix()] = {"sha256": sha, "bytes": _size(file)}
    marker = dict(record)
    marker["status"] = status
    marker[CHECKSUMS] = checksums
    write_json_atomic(path, marker)
    return marker


def marker_problem(
    path: Path,
    *,
    expect: Mapping[str, Any] | None = None,
    root: Path | None = None,
    verify: Verify = "sha256",
    digests: Mapping[Path, str] | None = None,
) -> tuple[dict[str, Any] | None, str | None]:
    """``(record, None)`` for a valid done marker, else ``(record or None, why not)``."""
    if not path.is_file():
        return None, "has not run"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None, f"has an unreadable marker ({path})"
    if not isinstance(record, dict):
        return None, f"has an unreadable marker ({path})"
    if record.get("status") != COMPLETE:
        return record, f"is {record.get('status')}"
    for key, value in (expect or {}).items():
        if record.get(key) != _canonical(value):
            return record, f"was made with another {key}"
    if verify == "status":
        return record, None
    checksums = record.get(CHECKSUMS)
    if not isinstance(checksums, dict):
        return record, "records no checksums (made by an older version: run it again)"
    root = root or path.parent
    known = {os.path.normpath(p): sha for p, sha in (digests or {}).items()}
    for rel, stamp in checksums.items():
        file = root / rel
        if _size(file) != stamp.get("bytes"):
            return record, f"changed after it completed (checksum mismatch: size of {rel})"
        if verify == "sha256":
            sha = known.get(os.path.normpath(file)) or file_sha256(file)
            if sha != stamp.get("sha256"):
                return record, f"changed after it completed (checksum mismatch: {rel})"
    return record, None


def read_done(
    path: Path,
    *,
    expect: Mapping[str, Any] | None = None,
    root: Path | None = None,
    verify: Verify = "sha256",
    digests: Mapping[Path, str] | None = None,
) -> dict[str, Any] | None:
    """The record of a valid done marker (see :func:`marker_problem`), else None: redo it."""
    record, problem = marker_problem(path, expect=expect, root=root, verify=verify, digests=digests)
    return record if problem is None else None


# ----------------------------------------------------------------------------- shard complete


def shard_problem(
    run_dir: Path,
    shard: str,
    *,
    digests: Mapping[Path, str] | None = None,
    verify: Verify = "sha256",
) -> str | None:
    """None when synthesize shard ``shard`` is complete: its manifest says so and its
    conversations and contexts still have the checksums recorded there. Else why not."""
    marker = RunFolder(run_dir).shard_manifest(shard)
    return marker_problem(marker, root=run_dir, verify=verify, digests=digests)[1]


def shard_complete(run_dir: Path, shard: str) -> bool:
    return shard_problem(run_dir, shard) is None


def shard_problems(
    run_dir: Path,
    shards: Iterable[str],
    *,
    digests: Mapping[Path, str] | None = None,
    verify: Verify = "sha256",
) -> list[str]:
    """``"<shard> <why>"`` for every shard of ``shards`` that is not complete."""
    found = []
    for shard in shards:
        problem = shard_problem(run_dir, shard, digests=digests, verify=verify)
        if problem is not None:
            found.append(f"{shard} {problem}")
    return found


def summarize(problems: list[str], limit: int = 5) -> str:
    """The first ``limit`` problems and how many more, on one line."""
    more = f"; and {len(problems) - limit} more" if len(problems) > limit else ""
    return "; ".join(problems[:limit]) + more


# ----------------------------------------------------------------------------- locks

#: errno values meaning "this filesystem cannot flock", not "someone holds it".
_UNSUPPORTED = {errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL}


def locks_enabled(setting: bool = True) -> bool:
    """A stage's ``lock`` setting, unless ``MIND_NEMO_LOCK=off`` turns locks off everywhere."""
    return setting and os.environ.get(LOCK_ENV, "on").lower() not in ("0", "off", "false", "no")


class RunLock:
    """An exclusive ``flock`` on one lock file, held until :meth:`close` or process exit."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self._fd = path, fd

    @property
    def held(self) -> bool:
        return self._fd >= 0

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = -1

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


def _holder(fd: int) -> dict[str, Any]:
    """What the holder wrote into the lock file (it writes right after locking: wait a bit)."""
    deadline = time.monotonic() + 2.0
    while True:
        try:
            data = json.loads(os.pread(fd, 4096, 0) or b"null")
        except ValueError:
            data = None
        if isinstance(data, dict) or time.monotonic() > deadline:
            return data if isinstance(data, dict) else {}
        time.sleep(0.05)


def take_lock(
    run_dir: Path, name: str, *, what: str | None = None, enabled: bool = True, setting: str = ""
) -> RunLock:
    """Lock ``locks/<name>.lock`` in ``run_dir`` for this process, or refuse in one line.

    ``what`` names the work in messages; ``setting`` is the config override that turns locking
    off for this stage (``MIND_NEMO_LOCK=off`` always works). With locking off, nothing is
    taken and a warning says so.
    """
    path = RunFolder(run_dir).lock(name)
    what = what or f"{name} of {run_dir}"
    override = f"{setting} (or {LOCK_ENV}=off)" if setting else f"{LOCK_ENV}=off"
    if not locks_enabled(enabled):
        log.warning("locking is off: nothing stops a second process from writing %s", what)
        return RunLock(path, -1)
    make_folder(path.parent, "run folder")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        since = holder.get("since", "an unknown time")
        raise UserError(
            f"{what} is already being written by pid {holder.get('pid', '?')} on host "
            f"{holder.get('host', '?')} since {since} (lock {path}); a second writer would "
            "duplicate its work: wait for that one to end, or stop it, and rerun"
        ) from None
    except OSError as err:
        os.close(fd)
        if err.errno in _UNSUPPORTED:
            raise UserError(
                f"cannot lock {path}: {err.strerror}; this filesystem does not support flock "
                "(NFSv3 needs lockd, Lustre the 'flock' mount option); if you make sure no two "
                f"processes ever write {what} at once, rerun with {override}"
            ) from None
        raise UserError(f"cannot lock {path}: {err.strerror}") from None
    holder = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "since": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "since_unix": round(time.time(), 3),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
    os.fsync(fd)
    return RunLock(path, fd)


@contextlib.contextmanager
def step_locks(
    run_dir: Path, step: str, shard_id: int, num_shards: int, *, stage: str
) -> Iterator[None]:
    """The locks of one step of a two-pass stage (filter, mix): ``step=shard`` holds its shard,
    ``step=finalize`` the finalize lock, ``step=all`` (one process does both) both of them; the
    filter's dedup steps (``bucket``, ``cluster``, ``apply``) lock their own task."""
    task = shard_name(shard_id, num_shards)
    names = {
        "shard": [task],
        "finalize": ["finalize"],
        "bucket": [f"bucket-{task}"],
        "cluster": ["cluster"],
        "apply": [f"apply-{task}"],
    }
    with contextlib.ExitStack() as stack:
        for name in names.get(step, [shard_name(0, 1), "finalize"]):
            stack.enter_context(take_lock(run_dir, name, what=f"{name} of {stage} run {run_dir}"))
        yield
