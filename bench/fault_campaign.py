"""Fault campaign: throw damaged corpora, bad configs and racing writers at the real CLI.

Why this exists: the hardening work promises that a user mistake or a damaged input ends a
stage with status 2 and one ``error:`` line (never a traceback, never a quiet ``complete``
with documents missing), that a damaged corpus file is named or, with
``corpus.on_bad_file=skip``, left out whole and counted, that repeated ids are renamed, and that
a second writer of one shard is refused. Unit tests check one example of each; this script runs
many varied ones, from outside, the way a user would (``python -m mind_nemo.<stage> ...`` in a
subprocess, against the stub server), and prints one table of what happened:

1. bad inputs: truncated / byte-flipped ``.jsonl.gz``, ``.jsonl.zst`` and ``.parquet`` files,
   latin-1 and UTF-16 exports, random bytes, empty files, directories with one bad file among
   good ones, repeated ids and rows with odd field shapes. The expected outcome of each file is
   computed here, from how it was built (or, for random byte flips, by decoding the damaged
   bytes independently), and compared with what ``synthesize`` did: exit 0 with exactly the
   good documents in ``contexts/``, or exit 2 with one ``error:`` line naming the file.
2. bad configs: typos (with and without ``+``), out-of-range and non-finite numbers, wrong
   types, unknown config groups, ``server=openai`` without a model or URL and ``output_dir``
   under a file, for synthesize and for filter, mix, merge, report, evaluate and pretrain; each
   must be refused in one line with exit 2 before any work starts.
3. concurrent writers: the same synthesize command started twice on one ``output_dir`` (at
   once, two seconds apart, and once the first is writing); one copy must be refused naming the
   holder, and after a final plain rerun every planned conversation key must exist exactly once.

Run it from the repository root (about 5-10 minutes on two busy cores)::

    .venv/bin/python bench/fault_campaign.py            # all three parts
    .venv/bin/python bench/fault_campaign.py --only inputs,configs --workers 2

Per-case details (command lines, exit codes, stderr tails, expected vs seen) go to a JSON file
under a fresh temporary folder, whose path is printed with the table. The exit status is 1 if
any case gave a traceback, a silent accept, an unrefused second writer, a lost or duplicated
row, or another unexpected outcome (a refusal in several lines or for an unrelated reason, a
hang, another exit status), else 0.
"""

from __future__ import annotations

import argparse
import codecs
import concurrent.futures
import gzip
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml
import zstandard

REPO = Path(__file__).resolve().parents[1]
SHARD = "shard-00000-of-00001"
STYLES: list[str] = yaml.safe_load((REPO / "hydra_configs/style/all.yaml").read_text())["styles"]
#: Stub latency (seconds per request): slow enough that a writer runs while a second starts.
STUB_LATENCY = "0.8,1.0"
#: Contexts a bad-input run may make; every test corpus has fewer (one context per document).
INPUT_LIMIT = 40
INPUT_TIMEOUT_S = 180
CONFIG_TIMEOUT_S = 60
WRITER_TIMEOUT_S = 400
#: Documents of the concurrent-writer corpus (x7 styles, 2 requests in flight: ~30 s a copy).
WRITER_DOCS = 8

#: Outcomes that make the campaign fail.
FAILING = {"traceback", "silent_accept", "other", "fail"}


# --------------------------------------------------------------------------- processes


def stage_env() -> dict[str, str]:
    """The user's environment minus anything that would change sharding or locking."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SLURM_") and k not in ("MIND_NEMO_LOCK", "HYDRA_FULL_ERROR")
    }
    env.update(TQDM_DISABLE="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return env


@dataclass
class Result:
    cmd: list[str]
    returncode: int | None
    stdout: str
    stderr: str
    wall_s: float
    timed_out: bool


def run_cmd(cmd: list[str], cwd: Path, timeout: float) -> Result:
    """Run ``cmd`` in its own session; on timeout kill that whole session."""
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=stage_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    return Result(cmd, proc.returncode, out, err, round(time.monotonic() - start, 2), timed_out)


def stage_cmd(stage: str, args: list[str]) -> list[str]:
    return [sys.executable, "-m", f"mind_nemo.{stage}", *args]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stub:
    """The stub server as a user starts it: ``python -m mind_nemo.servers.stub --port P``."""

    def __init__(self, latency: str, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._log = open(log, "w")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mind_nemo.servers.stub", "--port", str(self.port),
             "--latency", latency],
            stdout=self._log, stderr=subprocess.STDOUT, env=stage_env(),
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"stub exited with {self.proc.returncode}; see {log}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1):
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("stub did not answer /health within 60 s")

    def overrides(self) -> dict[str, str]:
        return {
            "server": "openai",
            "server.base_url": self.url,
            "server.model": "stub",
            "server.tokenizer": "embedded",
            "server.api_key_env": "null",
        }

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def merge_args(base: dict[str, str], args: list[str], drop: tuple[str, ...] = ()) -> list[str]:
    """``base`` as ``key=value`` overrides, minus ``drop`` and any key ``args`` set, + ``args``."""
    given = {a.lstrip("+").split("=", 1)[0] for a in args}
    kept = [
        f"{k}={v}"
        for k, v in base.items()
        if k.lstrip("+") not in given and k.lstrip("+") not in drop
    ]
    return kept + list(args)


def tail(text: str, lines: int = 8) -> list[str]:
    return [line for line in text.splitlines() if line.strip()][-lines:]


def read_jsonl(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Rows of a JSONL output file and the count of lines that do not parse (torn lines)."""
    if not path.is_file():
        return [], 0
    rows, torn = [], 0
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError:
            torn += 1
    return rows, torn


def read_manifest(run: Path) -> dict[str, Any]:
    try:
        return json.loads((run / "manifest.json").read_text())
    except (OSError, ValueError):
        return {}


# --------------------------------------------------------------------------- corpus building


def doc_text(i: int, accents: bool = False) -> str:
    """A short math page (~150 generator tokens: one context); ``accents`` adds non-ASCII."""
    extra = " Caf\u00e9 na\u00efve: 3 \u00d7 4 = 12, x\u00b2 \u00bd 0 \u00b1 1\u00b0."
    extra = extra if accents else ""
    return (
        f"## Problem {i}\n\nLet $x = {i + 2}$. Then $x^2 = {(i + 2) ** 2}$ and "
        f"$2x + 1 = {2 * (i + 2) + 1}$. We check it by expanding $(x+1)^2 = x^2 + 2x + 1$."
        f"{extra}\n\nHence the sum of the first {i + 2} odd numbers is {(i + 2) ** 2}, "
        "as the picture of nested squares shows."
    )


def good_rows(n: int, prefix: str, accents: bool = False) -> list[dict[str, Any]]:
    return [
        {"id": f"{prefix}-{i:03d}", "text": doc_text(i, accents), "url": f"https://x/{prefix}/{i}"}
        for i in range(n)
    ]


def jsonl_bytes(rows: list[dict[str, Any]], encoding: str = "utf-8") -> bytes:
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    return text.encode(encoding)


def zst(data: bytes, checksum: bool) -> bytes:
    return zstandard.ZstdCompressor(write_checksum=checksum).compress(data)


def write_parquet(path: Path, rows: list[dict[str, Any]], **kwargs: Any) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path, **kwargs)
    return path


def flip(data: bytes, rng: random.Random, n: int, mask: tuple[int, int] = (1, 255)) -> bytes:
    """``data`` with ``n`` bytes at random positions XORed with a random value in ``mask``."""
    out = bytearray(data)
    for _ in range(n):
        at = rng.randrange(len(out))
        out[at] ^= rng.randint(*mask)
    return bytes(out)


# ------------------------------------------------------------------ independent expectations


@dataclass
class Expect:
    """What a corpus should give: ``ok`` (exit 0, ``docs`` distinct documents, ``bad_rows``
    rows skipped and counted, ``bad_files`` left out), ``bad_file`` (exit 2 naming one of
    ``bad_files``; ``docs``: the documents of files before it, committed) or ``empty``
    (exit 2, the corpus gave no contexts)."""

    outcome: str
    docs: int = 0
    bad_rows: int | None = 0
    bad_files: list[str] = field(default_factory=list)
    renamed: int | None = 0
    ids: list[str] | None = None
    #: Other outcomes that are also right (a 0-byte .gz is an empty file or a cut one).
    also: list[str] = field(default_factory=list)


def id_string(value: Any) -> str | None:
    """A usable document id (the documented rule): a non-blank string, an integer, an
    integral float; anything else (bool, fraction, NaN, list, dict, null) is not one."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value == value and value.is_integer() else None
    return None


def row_ok(value: Any) -> str | None:
    """The id of a parsed row that makes a document (text a non-blank string), else None."""
    if not isinstance(value, dict):
        return None
    text = value.get("text")
    if not isinstance(text, str) or not text.strip():
        return None
    try:  # a lone surrogate (from a \\ud800 escape) cannot be written as UTF-8 anywhere
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, ValueError, RecursionError):
        return None
    return id_string(value.get("id"))


def unique_ids(ids: list[str]) -> tuple[list[str], int]:
    """Repeated ids renamed ``id#2``, ``id#3``... (skipping taken names), and the count."""
    seen: set[str] = set()
    out, renamed = [], 0
    for doc_id in ids:
        name, n = doc_id, 2
        while name in seen:
            name, n = f"{doc_id}#{n}", n + 1
        renamed += name != doc_id
        seen.add(name)
        out.append(name)
    return out, renamed


def expect_from_rows(rows: list[Any], n_lines: int | None = None) -> Expect:
    """The expectation for a readable file of parsed rows (``None`` marks an unparsable line)."""
    ids = [i for i in (row_ok(r) for r in rows) if i is not None]
    names, renamed = unique_ids(ids)
    bad = (n_lines if n_lines is not None else len(rows)) - len(ids)
    if not names:
        return Expect("empty", bad_rows=bad)
    return Expect("ok", docs=len(names), bad_rows=bad, renamed=renamed, ids=names)


def expect_jsonl_bytes(data: bytes) -> Expect:
    """Decode raw JSON-lines bytes independently: not UTF-8 -> a bad file; else parse lines."""
    try:
        codecs.decode(data, "utf-8")
    except UnicodeDecodeError:
        return Expect("bad_file")
    rows: list[Any] = []
    for i, raw in enumerate(data.split(b"\n")):
        if not raw.strip():
            continue
        line = raw.decode("utf-8")
        if i == 0:
            line = line.removeprefix("\ufeff")
        try:
            rows.append(json.loads(line))
        except (ValueError, RecursionError):
            rows.append(None)
    return expect_from_rows(rows)


def expect_gz(data: bytes) -> Expect:
    try:
        plain = gzip.decompress(data)  # checks the CRC and length trailer
    except (OSError, EOFError, zlib.error):
        return Expect("bad_file")
    return expect_jsonl_bytes(plain)


def expect_zst(data: bytes) -> Expect:
    try:
        reader = zstandard.ZstdDecompressor().decompressobj()
        plain = reader.decompress(data)
        if not reader.eof:
            return Expect("bad_file")  # the frame was cut short
        if reader.unused_data:
            return Expect("bad_file")
    except zstandard.ZstdError:
        return Expect("bad_file")
    return expect_jsonl_bytes(plain)


def expect_parquet(path: Path) -> Expect:
    """Read the Parquet file with pyarrow (checksums verified where written)."""
    try:
        parquet = pq.ParquetFile(path, page_checksum_verification=True)
        names = parquet.schema_arrow.names
        if "text" not in names or "id" not in names:
            return Expect("bad_file")  # a column the config names is missing: a user error
        rows: list[Any] = []
        for batch in parquet.iter_batches(batch_size=1024, columns=names):
            batch.validate(full=True)
            rows.extend(batch.to_pylist())
    except Exception:  # pyarrow raises several types for a damaged file
        return Expect("bad_file")
    return expect_from_rows(rows)


# --------------------------------------------------------------------------- bad input cases


@dataclass
class InputCase:
    name: str
    kind: str
    path: Path
    expect: Expect
    extra: list[str] = field(default_factory=list)


def build_inputs(root: Path, seed: int) -> list[InputCase]:
    """At least 30 damaged or odd corpora, each with its expected outcome."""
    rng = random.Random(seed)
    root.mkdir(parents=True)
    cases: list[InputCase] = []

    def add(name: str, kind: str, path: Path, expect: Expect, *extra: str) -> None:
        if expect.outcome == "bad_file" and not expect.bad_files and path.is_file():
            expect.bad_files = [str(path)]
        cases.append(InputCase(name, kind, path, expect, list(extra)))

    def file(name: str, data: bytes) -> Path:
        path = root / name
        path.write_bytes(data)
        return path

    base = jsonl_bytes(good_rows(6, "d"))
    # Truncations at random offsets: by construction the file is damaged, whatever the offset.
    gz_full = gzip.compress(base)
    for k in range(4):
        at = rng.randrange(1, len(gz_full))
        add(f"gz_trunc_{k}", f"jsonl.gz cut at {at}/{len(gz_full)}",
            file(f"gz_trunc_{k}.jsonl.gz", gz_full[:at]), Expect("bad_file"))  # fmt: skip
    for k in range(4):
        full = zst(base, checksum=k % 2 == 0)
        at = rng.randrange(1, len(full))
        add(f"zst_trunc_{k}", f"jsonl.zst (checksum={k % 2 == 0}) cut at {at}/{len(full)}",
            file(f"zst_trunc_{k}.jsonl.zst", full[:at]), Expect("bad_file"))  # fmt: skip
    for k in range(3):
        path = write_parquet(root / f"pq_full_{k}.parquet", good_rows(6, "p"))
        data = path.read_bytes()
        path.unlink()
        at = rng.randrange(1, len(data))
        add(f"parquet_trunc_{k}", f"parquet cut at {at}/{len(data)}",
            file(f"pq_trunc_{k}.parquet", data[:at]), Expect("bad_file"))  # fmt: skip

    # Random byte flips: the damaged bytes are decoded independently to know what they hold.
    for k in range(3):  # ASCII-preserving flips: broken JSON or changed text, still UTF-8
        data = flip(base, rng, 3, (1, 0x7F))
        add(f"jsonl_flip_ascii_{k}", "jsonl, 3 bytes XOR 1..127",
            file(f"flip_ascii_{k}.jsonl", data), expect_jsonl_bytes(data))  # fmt: skip
    data = flip(base, rng, 1, (0x80, 0xFF))
    add("jsonl_flip_high", "jsonl, 1 byte XOR 128..255",
        file("flip_high.jsonl", data), expect_jsonl_bytes(data))  # fmt: skip
    for k in range(3):
        data = flip(gz_full, rng, 1)
        add(f"gz_flip_{k}", "jsonl.gz, 1 byte flipped",
            file(f"gz_flip_{k}.jsonl.gz", data), expect_gz(data))  # fmt: skip
    for k, checksum in enumerate((True, False, False)):
        data = flip(zst(base, checksum), rng, 1)
        try:  # no checksum: a flip in a literal can decode to other text (documented)
            same = zstandard.ZstdDecompressor().decompressobj().decompress(data) == base
        except zstandard.ZstdError:
            same = False
        add(f"zst_flip_{k}", f"jsonl.zst (checksum={checksum}), 1 byte flipped"
            + (", decodes to the original" if same else ""),
            file(f"zst_flip_{k}.jsonl.zst", data), expect_zst(data))  # fmt: skip
    for k, kwargs in enumerate(
        ({"write_page_checksum": True}, {"write_page_checksum": False, "compression": "none"})
    ):
        path = write_parquet(root / f"pq_src_{k}.parquet", good_rows(6, "p"), **kwargs)
        data = flip(path.read_bytes(), rng, 1)
        path.unlink()
        target = file(f"pq_flip_{k}.parquet", data)
        add(f"parquet_flip_{k}", f"parquet {kwargs}, 1 byte flipped", target,
            expect_parquet(target))  # fmt: skip

    # Other encodings.
    accented = good_rows(5, "e", accents=True)
    add("latin1", "latin-1 export with accents", file("latin1.jsonl",
        jsonl_bytes(accented, "latin-1")), Expect("bad_file"))  # fmt: skip
    add("utf16_bom", "UTF-16 with BOM", file("utf16.jsonl", jsonl_bytes(accented, "utf-16")),
        Expect("bad_file"))  # fmt: skip
    add("utf16le_nobom", "UTF-16-LE, no BOM, non-ASCII",
        file("utf16le.jsonl", jsonl_bytes(accented, "utf-16-le")), Expect("bad_file"))  # fmt: skip
    data = jsonl_bytes(good_rows(4, "b"), "utf-16-be")  # ASCII only: valid UTF-8 full of NULs
    add("utf16be_ascii", "UTF-16-BE, ASCII only (valid UTF-8 with NULs)",
        file("utf16be.jsonl", data), expect_jsonl_bytes(data))  # fmt: skip

    # Random bytes under data-file names.
    for suffix in (".jsonl", ".jsonl.gz", ".jsonl.zst", ".parquet"):
        data = rng.randbytes(4096)
        path = file(f"random{suffix}", data)
        expect = expect_jsonl_bytes(data) if suffix == ".jsonl" else Expect("bad_file")
        add(f"random{suffix}", f"4 KiB of random bytes named {suffix}", path, expect)

    # Empty files.
    add("empty_jsonl", "0-byte .jsonl", file("empty.jsonl", b""), Expect("empty"))
    add("empty_gz", "0-byte .jsonl.gz", file("empty.jsonl.gz", b""),
        Expect("empty", also=["bad_file"]))  # fmt: skip
    add("empty_zst", "0-byte .jsonl.zst", file("empty.jsonl.zst", b""),
        Expect("empty", also=["bad_file"]))  # fmt: skip
    add("empty_parquet", "0-byte .parquet", file("empty.parquet", b""), Expect("bad_file"))
    add("blank_lines", "only blank and whitespace lines", file("blank.jsonl", b"\n  \n\t\r\n\n"),
        Expect("empty"))  # fmt: skip
    add("gz_of_nothing", "valid .jsonl.gz of 0 bytes", file("nothing.jsonl.gz",
        gzip.compress(b"")), Expect("empty"))  # fmt: skip

    # A directory with one bad file among good ones (files are read in path order).
    def good_dir(name: str, bad_name: str, bad_data: bytes | None) -> tuple[Path, Path]:
        folder = root / name
        folder.mkdir()
        (folder / "a_good.jsonl").write_bytes(jsonl_bytes(good_rows(4, f"{name}-a")))
        write_parquet(folder / "c_good.parquet", good_rows(3, f"{name}-c"))
        (folder / "d_good.jsonl.zst").write_bytes(zst(jsonl_bytes(good_rows(2, f"{name}-d")), True))
        bad = folder / bad_name
        if bad_data is not None:
            bad.write_bytes(bad_data)
        return folder, bad

    cut_gz = gzip.compress(jsonl_bytes(good_rows(5, "cut")))[:-9]
    folder, bad = good_dir("dir_gz_error", "b_bad.jsonl.gz", cut_gz)
    add("dir_bad_gz_error", "dir: 3 good files + a cut .gz (on_bad_file=error)", folder,
        Expect("bad_file", docs=4, bad_files=[str(bad)]))  # fmt: skip
    folder, bad = good_dir("dir_gz_skip", "b_bad.jsonl.gz", cut_gz)
    add("dir_bad_gz_skip", "dir: 3 good files + a cut .gz (on_bad_file=skip)", folder,
        Expect("ok", docs=9, bad_files=[str(bad)]), "corpus.on_bad_file=skip")  # fmt: skip
    folder, bad = good_dir("dir_latin1_skip", "b_latin1.jsonl", jsonl_bytes(accented, "latin-1"))
    add("dir_latin1_skip", "dir: 3 good files + a latin-1 file (on_bad_file=skip)", folder,
        Expect("ok", docs=9, bad_files=[str(bad)]), "corpus.on_bad_file=skip")  # fmt: skip
    folder, bad = good_dir("dir_pq_error", "b_bad.parquet", b"PAR1" + rng.randbytes(300) + b"PAR1")
    add("dir_bad_parquet_error", "dir: 3 good files + a corrupt parquet (on_bad_file=error)",
        folder, Expect("bad_file", docs=4, bad_files=[str(bad)]))  # fmt: skip
    folder, bad = good_dir("dir_badrows", "b_rows.jsonl", None)
    rows = good_rows(3, "rows")
    bad.write_bytes(jsonl_bytes(rows[:2]) + b'{"id": "torn", "text": "cut he\n[1, 2]\n'
                    + jsonl_bytes(rows[2:]) + b'{"id": "x", "text": ""}\n')  # fmt: skip
    add("dir_bad_rows", "dir: 3 good files + a file with 3 bad rows", folder,
        Expect("ok", docs=12, bad_rows=3))  # fmt: skip

    # Repeated ids.
    def jsonl_case(name: str, kind: str, rows: list[Any], *extra_lines: bytes) -> None:
        data = b"".join(
            r if isinstance(r, bytes) else (json.dumps(r, ensure_ascii=False) + "\n").encode()
            for r in rows
        ) + b"".join(extra_lines)
        path = file(f"{name}.jsonl", data)
        add(name, kind, path, expect_jsonl_bytes(data))

    t = doc_text
    jsonl_case("dup_ids", "one id three times, another twice",
               [{"id": i, "text": t(n)} for n, i in enumerate("abacab")])  # fmt: skip
    jsonl_case(
        "dup_taken_suffix",
        "repeats where id#2 is a real id",
        [{"id": i, "text": t(n)} for n, i in enumerate(["a", "a#2", "a", "a", "a#3"])],
    )
    jsonl_case("dup_int_str", 'ids "5", 5 and 5.0 (all "5")',
               [{"id": i, "text": t(n)} for n, i in enumerate(["5", 5, 5.0, 6])])  # fmt: skip
    folder = root / "dir_dup_ids"
    folder.mkdir()
    (folder / "x.jsonl").write_bytes(jsonl_bytes(good_rows(4, "dd")))
    write_parquet(folder / "y.parquet", good_rows(3, "dd"))
    names = [f"dd-{i:03d}" for i in range(4)] + [f"dd-{i:03d}#2" for i in range(3)]
    add("dir_dup_ids", "the same ids in a .jsonl and a .parquet", folder,
        Expect("ok", docs=7, renamed=3, ids=names))  # fmt: skip

    # Rows with odd field shapes (labelled by construction; expect_jsonl_bytes agrees).
    jsonl_case("odd_text", "text as number, list, dict, null, bool, blank, missing, renamed", [
        {"id": "t0", "text": t(0)}, {"id": "t1", "text": 42}, {"id": "t2", "text": ["a", "b"]},
        {"id": "t3", "text": {"x": 1}}, {"id": "t4", "text": None}, {"id": "t5"},
        {"id": "t6", "text": " \n\t "}, {"id": "t7", "text": ""}, {"id": "t8", "Text": t(8)},
        {"id": "t9", "text": t(9) + " \u03c0 \U0001f600"}, {"id": "t10", "text": t(10) + "\x00"},
        {"id": "t11", "text": True}, {"id": "t12", "text": "x" * 40 + " " + t(12)},
    ])  # fmt: skip
    jsonl_case("odd_ids", "ids as int, float, bool, null, blank, dict, list, huge int", [
        {"id": 7, "text": t(0)}, {"id": 8.0, "text": t(1)}, {"id": 8.5, "text": t(2)},
        {"id": True, "text": t(3)}, {"id": None, "text": t(4)}, {"id": "", "text": t(5)},
        {"id": "   ", "text": t(6)}, {"id": {"a": 1}, "text": t(7)}, {"id": [1], "text": t(8)},
        {"id": 10**30, "text": t(9)}, {"text": t(10)},
        {"id": "\u00fcn\u00efcode id", "text": t(11)},
        {"id": -1, "text": t(12)},
    ])  # fmt: skip
    deep = "[" * 100_000 + "]" * 100_000
    jsonl_case(
        "odd_lines", "BOM, CRLF, arrays, scalars, junk, deep nesting, surrogates, NaN",
        [
            b"\xef\xbb\xbf" + json.dumps({"id": "l0", "text": t(0)}).encode() + b"\n",
            b"\n", b"   \n", b"[1, 2, 3]\n", b'"just a string"\n', b"42\n", b"null\n",
            b"{not json\n", json.dumps({"id": "l1", "text": t(1)}).encode() + b"\r\n",
            json.dumps({"id": "l2", "text": t(2), "m": [[[[[[[[[[[1]]]]]]]]]]]}).encode() + b"\n",
            ('{"id": "l3", "text": "deep", "m": ' + deep + "}\n").encode(),
            b'{"id": "l4", "text": "lone \\ud800 surrogate"}\n',
            ('{"id": "l5", "text": ' + json.dumps(t(5) + " \U0001f600") + "}\n").encode(),
            ('{"id": "l6", "text": ' + json.dumps(t(6)) + ', "m": "\\udfff"}\n').encode(),
            b"{}\n",
            ('{"id": "l7", "text": ' + json.dumps(t(7)) + "} trailing\n").encode(),
            ('{"id": "l8", "text": ' + json.dumps(t(8)) + ', "score": NaN}\n').encode(),
            ('{"id": "l9", "text": "", "text": ' + json.dumps(t(9)) + "}\n").encode(),
        ],
    )  # fmt: skip
    path = write_parquet(root / "pq_odd.parquet", [
        {"id": 1.0, "text": t(1)}, {"id": 2.0, "text": None}, {"id": float("nan"), "text": t(3)},
        {"id": 4.5, "text": t(4)}, {"id": 5.0, "text": "   "}, {"id": 6.0, "text": t(6)},
        {"id": None, "text": t(7)},
    ])  # fmt: skip
    add("parquet_odd", "parquet: float ids with NaN/null/fraction, null/blank text", path,
        Expect("ok", docs=2, bad_rows=5, ids=["1", "6"]))  # fmt: skip
    path = write_parquet(
        root / "pq_int_text.parquet", [{"id": f"i{i}", "text": i} for i in range(4)]
    )
    add("parquet_int_text", "parquet whose text column holds integers", path,
        Expect("empty", bad_rows=4))  # fmt: skip
    path = write_parquet(root / "pq_no_text.parquet", [{"id": "n0", "body": t(0)}])
    add("parquet_no_text_column", "parquet without a text column", path, Expect("bad_file"))
    return cases


def classify_input(case: InputCase, res: Result, run: Path) -> dict[str, Any]:
    exp = case.expect
    contexts, ctx_torn = read_jsonl(run / "contexts" / f"{SHARD}.jsonl")
    rows, conv_torn = read_jsonl(run / "conversations" / f"{SHARD}.jsonl")
    docs = {c.get("document_id") for c in contexts}
    ctx_keys = {(c.get("document_id"), c.get("index")) for c in contexts}
    keys = {(r.get("document_id"), r.get("context_index"), r.get("conversational_style"),
             r.get("sample")) for r in rows}  # fmt: skip
    covered = {(k[0], k[1]) for k in keys} == ctx_keys
    manifest = read_manifest(run)
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    seen = {
        "returncode": res.returncode,
        "docs_in_contexts": len(docs),
        "contexts": len(contexts),
        "conversations": len(rows),
        "distinct_keys": len(keys),
        "torn_lines": ctx_torn + conv_torn,
        "manifest_status": manifest.get("status"),
        "rows_skipped": sum((manifest.get("corpus_rows_skipped") or {}).values()),
        "files_skipped": sorted(manifest.get("corpus_files_skipped") or {}),
        "ids_renamed": manifest.get("corpus_ids_renamed"),
    }
    why = ""
    intact = len(rows) == len(keys) and covered and not (ctx_torn + conv_torn)
    intact = intact and len(ctx_keys) == len(contexts)
    if "Traceback" in res.stderr or "Traceback" in res.stdout:
        outcome = "traceback"
    elif res.timed_out:
        outcome, why = "other", f"still running after {INPUT_TIMEOUT_S}s"
    elif res.returncode == 0:
        if exp.outcome != "ok":
            outcome, why = "silent_accept", f"exit 0, expected {exp.outcome}"
        elif len(docs) != exp.docs or not intact:
            outcome = "silent_accept"
            why = f"exit 0 with {len(docs)} documents, expected {exp.docs}; rows intact={intact}"
        elif exp.ids is not None and sorted(docs) != sorted(exp.ids):
            outcome, why = "silent_accept", f"document ids {sorted(docs)} != {sorted(exp.ids)}"
        elif (exp.bad_rows is not None and seen["rows_skipped"] != exp.bad_rows) or (
            seen["files_skipped"] != sorted(exp.bad_files)
            or (exp.renamed is not None and seen["ids_renamed"] != exp.renamed)
        ):
            outcome, why = "other", "right documents, but the manifest counts differ"
        elif exp.bad_rows or exp.bad_files:
            outcome = "skipped"
        else:
            outcome = "processed"
    elif res.returncode == 2:
        wanted = [exp.outcome, *exp.also]
        if len(errors) != 1 or len(lines) != 1:
            outcome = "other"
            why = f"exit 2 with {len(errors)} error lines in {len(lines)} stderr lines"
        elif "ok" in wanted:
            outcome, why = "other", "refused a corpus expected to be processed"
        elif ("bad_file" in wanted and any(f in errors[0] for f in exp.bad_files)) or (
            "empty" in wanted and "no contexts" in errors[0]
        ):
            outcome = "refused"
        else:
            outcome, why = "other", f"refused, but not as expected ({wanted})"
        if outcome == "refused" and (len(docs) != exp.docs or not intact):
            outcome = "other"
            why = f"refused, but {len(docs)} documents committed, expected {exp.docs}"
    else:
        outcome, why = "other", f"exit status {res.returncode}"
    return {"seen": seen, "outcome": outcome, "why": why}


def run_input(case: InputCase, stub: Stub, work: Path) -> dict[str, Any]:
    run = work / "input_runs" / case.name
    base = {
        **stub.overrides(),
        "corpus": "files",
        "corpus.path": str(case.path),
        "corpus.id_field": "id",
        "output_dir": str(run),
        "+style": "debate",
        "limit": str(INPUT_LIMIT),
        "progress": "false",
        "engine.max_concurrent_requests": "16",
    }
    res = run_cmd(stage_cmd("synthesize", merge_args(base, case.extra)), work, INPUT_TIMEOUT_S)
    verdict = classify_input(case, res, run)
    return {
        "case": case.name,
        "kind": case.kind,
        "corpus": str(case.path),
        "expect": asdict(case.expect),
        **verdict,
        "command": res.cmd,
        "wall_s": res.wall_s,
        "stderr_tail": tail(res.stderr, 12),
        "stdout_tail": tail(res.stdout, 4),
    }


# --------------------------------------------------------------------------- bad configs


@dataclass
class ConfigCase:
    stage: str
    args: list[str]
    #: Words of which at least one must appear in the refusal (the key or the bad value).
    words: list[str]
    drop: tuple[str, ...] = ()
    note: str = ""


def config_cases(work: Path, good_corpus: Path, setup_run: Path) -> list[ConfigCase]:
    a_file = work / "a_file.txt"
    a_file.write_text("not a folder\n")

    def s(arg: str, *words: str, drop: tuple[str, ...] = (), note: str = "") -> ConfigCase:
        args = arg.split(" ")
        keys = [a.lstrip("+").split("=", 1)[0] for a in args]
        return ConfigCase("synthesize", args, list(words) or [keys[-1]], drop, note)

    cases = [
        # typos, with and without +
        s("limt=2", "limt"), s("+limt=2", "limt"), s("++limt=2", "limt"),
        s("engine.max_concurent_requests=4", "max_concurent_requests"),
        s("+engine.max_concurent_requests=4", "max_concurent_requests"),
        s("+sampling.temprature=0.5", "temprature"), s("sampling.temprature=0.5", "temprature"),
        s("chunking.context_token=400", "context_token"), s("+servr.model=x", "servr"),
        s("+corpus.idfield=id", "idfield"), s("+styl=debate", "styl"),
        # engine
        s("engine.max_concurrent_requests=0"), s("engine.max_concurrent_requests=-3"),
        s("engine.request_timeout_s=0"), s("engine.max_retries=-1"),
        s("engine.backoff_initial_s=-0.5"), s("engine.backoff_max_s=-1"),
        s("engine.backoff_initial_s=5 engine.backoff_max_s=1", "backoff_max_s"),
        s("engine.adaptive_window_s=0"), s("engine.server_dead_after_s=-5"),
        # sampling
        s("sampling.temperature=-0.1"), s("sampling.temperature=nan", "temperature"),
        s("sampling.temperature=inf", "temperature", note="non-finite"),
        s("sampling.top_p=0"), s("sampling.top_p=1.01"), s("sampling.top_p=nan", "top_p"),
        s("sampling.max_total_tokens=0"), s("sampling.max_new_tokens=0"), s("sampling.seed=-1"),
        # chunking
        s("chunking.context_tokens=0"), s("chunking.context_tokens=-500"),
        s("chunking.overlap_tokens=-1"), s("chunking.overlap_tokens=500"),
        s("chunking.min_tokens=-1"),
        s("chunking.context_tokens=4000", "context_tokens", note="leaves no room to answer"),
        # shards and limits
        s("num_shards=0"), s("num_shards=-2"), s("shard_id=-1"),
        s("num_shards=2 shard_id=2", "shard_id"), s("shard_id=3", "shard_id"), s("limit=-1"),
        # style, projection, server, corpus
        s("style.samples_per_context=0"), s("projection.cluster_gpus=0"),
        s("projection.target_corpus_tokens=-1"), s("projection.styles=0"),
        s("server.port=70000"), s("server.port=0"), s("server.context_window=0"),
        s("server.startup_timeout_s=0"), s("server.tensor_parallel_size=0"),
        s("server.kv_cache_memory_fraction=1.5"), s("server.api=rest"),
        s("server.type=bogus"), s("corpus.on_bad_file=ignore"), s("corpus.format=csv"),
        s("corpus.limit_documents=-1"),
        # wrong types
        s("limit=abc", "limit"), s("limit=1.5", "limit"), s("limit=[1,2]", "limit"),
        s("engine.max_concurrent_requests=two", "max_concurrent_requests"),
        s("sampling.temperature=hot", "temperature"),
        s("engine.adaptive_concurrency=maybe", "adaptive_concurrency"),
        s("progress=sometimes", "progress"), s("sampling=5", "sampling"),
        s("engine.max_retries=true", "max_retries"), s("chunking=[1,2]", "chunking"),
        # unknown groups
        s("+style=nonexistent", "nonexistent"), s("corpus=nosuch", "nosuch"),
        s("server=nosuch", "nosuch"), s("+style=all,debate", "style", "all,debate"),
        # incomplete server, bad run folder
        s("server=openai", "server.model", drop=("server.model",), note="no server.model"),
        s("server=openai", "server.base_url", drop=("server.base_url",), note="no base_url"),
        s(f"output_dir={a_file}/run", "output_dir"), s(f"output_dir={a_file}", "output_dir"),
    ]  # fmt: skip
    other = [
        ("filter", "+filter.length.min_tokenz=5", ["min_tokenz"]),
        ("filter", "filter.length.min_tokens=-1", ["min_tokens"]),
        ("filter", "filter.dedup.threshold=1.5", ["threshold"]),
        ("filter", "filter.dedup.num_perm=8", ["num_perm"]),
        ("filter", "judge.min_score=9", ["min_score"]),
        ("filter", "judge.max_concurrent_requests=0", ["max_concurrent_requests"]),
        ("filter", "step=bogus", ["step"]),
        ("filter", "filter=nosuch", ["nosuch"]),
        ("filter", "variants.names=[bogus]", ["bogus"]),
        ("filter", "num_shards=0", ["num_shards"]),
        ("mix", "total_tokens=-5", ["total_tokens"]),
        ("mix", "+sources.data.kindd=corpus", ["kindd"]),
        ("mix", "sources.data.kind=bogus", ["kind", "bogus"]),
        ("mix", "+groups.math=0", ["groups.math"]),
        ("mix", "mix=nosuch", ["nosuch"]),
        ("mix", "workers=-1", ["workers"]),
        ("mix", "tokenizer.type=bogus", ["tokenizer.type"]),
        ("mix", "max_epochs=0", ["max_epochs"]),
        ("merge", "export.rows_per_file=0", ["rows_per_file"]),
        ("merge", "+export.parquett=false", ["parquett"]),
        ("merge", "export.parquet=perhaps", ["parquet"]),
        ("merge", "export.schema=released", ["schema", "released"]),
        ("report", "max_points=0", ["max_points"]),
        ("report", "+seeed=1", ["seeed"]),
        ("report", "seed=-1", ["seed"]),
        ("evaluate", "limit=0", ["limit"]),
        ("evaluate", "model.dtype=float8", ["dtype"]),
        ("evaluate", "api=rest", ["api"]),
        ("evaluate", "num_concurrent=0", ["num_concurrent"]),
        ("evaluate", "+modle.path=x", ["modle"]),
        ("evaluate", "model.batch_size=0", ["batch_size"]),
        ("pretrain", "pretrain.seq_length=0", ["seq_length"]),
        ("pretrain", "launch.rdzv_port=0", ["rdzv_port"]),
        ("pretrain", "pretrain.optimizer.lr=0", ["lr"]),
        ("pretrain", "+pretrain.foo=1", ["foo"]),
        ("pretrain", "pretrain=nosuch", ["nosuch"]),
        ("pretrain", "step=bogus", ["step"]),
    ]
    cases += [ConfigCase(stage, arg.split(" "), words) for stage, arg, words in other]
    return cases


def config_base(case: ConfigCase, i: int, stub: Stub, work: Path, corpus: Path, setup: Path):
    out = work / "config_runs" / f"{i:03d}"
    out.mkdir(parents=True)
    if case.stage == "synthesize":
        return {**stub.overrides(), "corpus": "files", "corpus.path": str(corpus),
                "corpus.id_field": "id", "output_dir": str(out / "run"), "+style": "debate",
                "limit": "2", "progress": "false"}  # fmt: skip
    if case.stage in ("filter", "merge", "report"):
        copy = out / "run"  # its own copy: a silent accept may write into the run folder
        shutil.copytree(setup, copy)
        extra = {"filter": {"output_dir": str(out / "filtered")},
                 "report": {"output_dir": str(out / "report")}}.get(case.stage, {})  # fmt: skip
        return {"run_dir": str(copy), **extra}
    if case.stage == "mix":
        return {"mix": "single", "sources.data.path": str(corpus), "workers": "0",
                "output_dir": str(out / "mix"), "progress": "false"}  # fmt: skip
    if case.stage == "evaluate":
        return {"suite": "fixtures", "model.path": "embedded", "limit": "1",
                "output_dir": str(out / "eval")}  # fmt: skip
    return {"pretrain": "tiny_cpu", "mix_dir": str(out / "no_mix"),
            "output_dir": str(out / "pretrain")}  # fmt: skip


def run_config(i: int, case: ConfigCase, stub: Stub, work: Path, corpus: Path, setup: Path):
    base = config_base(case, i, stub, work, corpus, setup)
    res = run_cmd(stage_cmd(case.stage, merge_args(base, case.args, case.drop)), work,
                  CONFIG_TIMEOUT_S)  # fmt: skip
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    why = ""
    if "Traceback" in res.stderr or "Traceback" in res.stdout:
        outcome = "traceback"
    elif res.timed_out:
        outcome, why = "silent_accept", f"still working after {CONFIG_TIMEOUT_S}s (killed)"
    elif res.returncode == 0:
        outcome, why = "silent_accept", "exit 0"
    elif res.returncode == 2 and len(errors) == 1 and len(lines) == 1:
        if any(w.lower() in errors[0].lower() for w in case.words):
            outcome = "refused"
        else:
            outcome, why = "other", f"refused, but the line names none of {case.words}"
    else:
        outcome = "other"
        why = f"exit {res.returncode} with {len(errors)} error lines in {len(lines)} stderr lines"
    return {
        "case": f"{case.stage}: {' '.join(case.args)}"
        + (f" (without {', '.join(case.drop)})" if case.drop else "")
        + (f" [{case.note}]" if case.note else ""),
        "stage": case.stage,
        "outcome": outcome,
        "why": why,
        "returncode": res.returncode,
        "command": res.cmd,
        "wall_s": res.wall_s,
        "stderr_tail": tail(res.stderr, 12),
        "stdout_tail": tail(res.stdout, 6),
    }


# --------------------------------------------------------------------------- concurrent writers


def check_run_keys(run: Path, doc_ids: list[str]) -> dict[str, int]:
    """Planned keys (each context x each style) against the conversation rows."""
    contexts, ctx_torn = read_jsonl(run / "contexts" / f"{SHARD}.jsonl")
    rows, conv_torn = read_jsonl(run / "conversations" / f"{SHARD}.jsonl")
    ctx_keys = {(c["document_id"], c["index"]) for c in contexts}
    planned = {(d, i, style, 0) for d, i in ctx_keys for style in STYLES}
    keys = [(r["document_id"], r["context_index"], r["conversational_style"], r["sample"])
            for r in rows]  # fmt: skip
    missing_docs = set(doc_ids) - {d for d, _ in ctx_keys}
    return {
        "planned": len(planned) + len(missing_docs) * len(STYLES),
        "rows": len(keys),
        "lost": len(planned - set(keys)) + len(missing_docs) * len(STYLES),
        "duplicated": len(keys) - len(set(keys)) + len(contexts) - len(ctx_keys),
        "unplanned": len(set(keys) - planned),
        "torn": ctx_torn + conv_torn,
    }


def run_writers(k: int, mode: str, stub: Stub, work: Path) -> dict[str, Any]:
    folder = work / "writers" / f"{k:02d}_{mode}"
    folder.mkdir(parents=True)
    rows = good_rows(WRITER_DOCS, f"w{k}")
    corpus = folder / "corpus.jsonl"
    corpus.write_bytes(jsonl_bytes(rows))
    out = folder / "run"
    args = merge_args({**stub.overrides(), "corpus": "files", "corpus.path": str(corpus),
                       "corpus.id_field": "id", "output_dir": str(out), "+style": "all",
                       "progress": "false", "engine.max_concurrent_requests": "2"}, [])  # fmt: skip
    cmd = stage_cmd("synthesize", args)

    def start(name: str) -> tuple[subprocess.Popen, Path]:
        log = folder / f"{name}.err"
        with open(log, "w") as err:
            proc = subprocess.Popen(cmd, cwd=work, env=stage_env(), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=err,
                                    start_new_session=True)  # fmt: skip
        return proc, log

    first, _ = start("first")
    if mode == "delay_2s":
        time.sleep(2)
    elif mode == "mid_run":
        target = out / "conversations" / f"{SHARD}.jsonl"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and first.poll() is None:
            if target.exists() and target.stat().st_size:
                break
            time.sleep(0.1)
    first_alive_at_second_start = first.poll() is None
    second, _ = start("second")
    deadline = time.monotonic() + WRITER_TIMEOUT_S
    procs = {"first": first, "second": second}
    ended: dict[str, float] = {}  # when each copy was seen to have exited
    while len(ended) < len(procs) and time.monotonic() < deadline:
        for name, proc in procs.items():
            if name not in ended and proc.poll() is not None:
                ended[name] = time.monotonic()
        time.sleep(0.1)
    hung = [n for n, p in procs.items() if p.poll() is None]
    for name in hung:
        os.killpg(procs[name].pid, signal.SIGKILL)
        procs[name].wait()
    codes = {n: p.returncode for n, p in procs.items()}
    errs = {n: (folder / f"{n}.err").read_text(errors="replace") for n in procs}
    after_both = check_run_keys(out, [r["id"] for r in rows])
    refused = [n for n, c in codes.items() if c == 2]
    winners = [n for n, c in codes.items() if c == 0]
    refusal_ok = False
    if len(refused) == 1 and len(winners) == 1:
        lines = [line for line in errs[refused[0]].splitlines() if line.strip()]
        winner_pid = procs[winners[0]].pid
        prefix = f"error: {SHARD} of {out} is already being written by pid {winner_pid} "
        refusal_ok = len(lines) == 1 and lines[0].startswith(prefix)
    contended = first_alive_at_second_start or bool(refused)
    # The refused copy must have met a live writer: it ended before the winner did.
    overlapped = bool(refused and winners) and ended.get(refused[0], 0) < ended.get(winners[0], 0)
    rerun = run_cmd(cmd, work, WRITER_TIMEOUT_S)
    final = check_run_keys(out, [r["id"] for r in rows])
    tracebacks = [n for n, e in errs.items() if "Traceback" in e] + (
        ["rerun"] if "Traceback" in rerun.stderr else []
    )
    lost, duplicated = final["lost"], max(final["duplicated"], after_both["duplicated"])
    if lost or duplicated or tracebacks or hung or (contended and not refusal_ok):
        outcome = "fail"
    else:  # not contended: the first copy ended before the second started (too fast)
        outcome = "ok" if refusal_ok else "not_contended"
    return {
        "case": f"{k:02d}_{mode}",
        "outcome": outcome,
        "mode": mode,
        "exit_codes": codes,
        "refused": refusal_ok,
        "contended": contended,
        "first_alive_when_second_started": first_alive_at_second_start,
        "refused_while_winner_ran": overlapped,
        "hung": hung,
        "tracebacks": tracebacks,
        "after_both": after_both,
        "rerun_exit": rerun.returncode,
        "rerun_requests": read_manifest(out).get("session", {}).get("requests"),
        "final": final,
        "lost": lost,
        "duplicated": duplicated,
        "command": cmd,
        "stderr": {n: tail(e, 6) for n, e in errs.items()},
        "rerun_stderr_tail": tail(rerun.stderr, 6),
    }


# --------------------------------------------------------------------------- driver


def pool_map(fn: Callable[..., dict[str, Any]], jobs: list[tuple], workers: int, label: str):
    results: list[dict[str, Any]] = [{}] * len(jobs)
    done = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(fn, *job): i for i, job in enumerate(jobs)}
        for future in concurrent.futures.as_completed(futures):
            i = futures[future]
            try:
                results[i] = future.result()
            except Exception as err:  # a bug here must not hide the other cases
                results[i] = {"case": f"{label} #{i}", "outcome": "other", "why": repr(err)}
            done += 1
            r = results[i]
            print(f"  [{label} {done}/{len(jobs)}] {r.get('case')}: {r.get('outcome', '')}"
                  f" {r.get('why', '')}".rstrip(), flush=True)  # fmt: skip
    return results


def count(results: list[dict[str, Any]], outcome: str) -> int:
    return sum(r.get("outcome") == outcome for r in results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="cases run at once")
    parser.add_argument("--seed", type=int, default=20240607)
    parser.add_argument("--writer-attempts", type=int, default=6)
    parser.add_argument("--only", default="inputs,configs,writers")
    opts = parser.parse_args()
    parts = set(opts.only.split(","))
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="fault_campaign_"))
    print(f"work folder: {work}", flush=True)
    stub = Stub(STUB_LATENCY, work / "stub.log")
    inputs: list[dict[str, Any]] = []
    configs: list[dict[str, Any]] = []
    writers: list[dict[str, Any]] = []
    try:
        good = work / "good.jsonl"
        good.write_bytes(jsonl_bytes(good_rows(4, "good")))
        setup = work / "setup_run"
        if "configs" in parts:
            args = merge_args(
                {
                    **stub.overrides(),
                    "corpus": "files",
                    "corpus.path": str(good),
                    "corpus.id_field": "id",
                    "output_dir": str(setup),
                    "+style": "debate",
                    "limit": "2",
                    "progress": "false",
                },
                [],
            )
            res = run_cmd(stage_cmd("synthesize", args), work, 300)  # fmt: skip
            if res.returncode != 0:
                print("the setup synthesize run failed:", *tail(res.stderr, 20), sep="\n")
                return 1
        if "inputs" in parts:
            cases = build_inputs(work / "corpora", opts.seed)
            print(f"bad inputs: {len(cases)} cases", flush=True)
            inputs = pool_map(run_input, [(c, stub, work) for c in cases], opts.workers, "input")
        if "configs" in parts:
            cases = config_cases(work, good, setup)
            print(f"bad configs: {len(cases)} cases", flush=True)
            jobs = [(i, c, stub, work, good, setup) for i, c in enumerate(cases)]
            configs = pool_map(run_config, jobs, opts.workers, "config")
        if "writers" in parts:
            modes = ["at_once", "delay_2s", "mid_run"]
            jobs = [(k, modes[k % 3], stub, work) for k in range(opts.writer_attempts)]
            print(f"concurrent writers: {len(jobs)} attempts", flush=True)
            writers = pool_map(run_writers, jobs, opts.workers, "writers")
    finally:
        stub.stop()
    wall = time.monotonic() - started

    table = [
        ("bad inputs tried", len(inputs)),
        ("  tracebacks seen", count(inputs, "traceback")),
        ("  silent accepts", count(inputs, "silent_accept")),
        ("  refused in one line", count(inputs, "refused")),
        ("  skipped and counted", count(inputs, "skipped")),
        ("  processed cleanly (nothing to skip)", count(inputs, "processed")),
        ("  other unexpected outcomes", count(inputs, "other")),
        ("configs tried", len(configs)),
        ("  refused in one line", count(configs, "refused")),
        ("  tracebacks", count(configs, "traceback")),
        ("  silent accepts", count(configs, "silent_accept")),
        ("  other unexpected outcomes", count(configs, "other")),
        ("concurrent-writer attempts", len(writers)),
        ("  second writer refused in one line", sum(bool(r.get("refused")) for r in writers)),
        ("  not contended (first had ended)", count(writers, "not_contended")),
        ("  tracebacks", sum(bool(r.get("tracebacks")) for r in writers)),
        ("  rows lost", sum(r.get("lost", 0) for r in writers)),
        ("  rows duplicated", sum(r.get("duplicated", 0) for r in writers)),
        ("wall time (s)", round(wall)),
    ]
    width = max(len(name) for name, _ in table)
    print()
    print(f"{'fault campaign':<{width}}  count")
    print(f"{'-' * width}  -----")
    for name, value in table:
        print(f"{name:<{width}}  {value:>5}")
    failing = [r for r in (*inputs, *configs, *writers) if r.get("outcome") in FAILING]
    details = work / "details.json"
    details.write_text(json.dumps({"table": dict(table), "inputs": inputs, "configs": configs,
                                   "writers": writers, "failing": failing}, indent=2,
                                  default=str))  # fmt: skip
    print(f"\nper-case details: {details}")
    for r in failing:
        print(f"\nFAIL {r.get('case')}: {r.get('outcome')} {r.get('why', '')}")
        print("  command:", " ".join(str(c) for c in r.get("command", [])))
        stderr = r.get("stderr_tail") or r.get("stderr") or []
        print("  stderr:" if stderr else "  stderr: (empty); stdout ends:")
        for line in stderr or r.get("stdout_tail") or []:
            print(f"  | {line}")
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
