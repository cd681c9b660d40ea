"""Crash-safe JSON-lines files: append whole lines, repair a torn tail, write others atomically.

Shards are append-only: each record is one ``write()`` of one complete line on an ``O_APPEND``
descriptor, so once it returns the line survives the death of our process. If we are killed in
the middle of a write, at most the last line is torn; :func:`repair_tail` cuts it off before the
file is reopened, so every line that remains is whole. Small files that are rewritten (manifests,
markers, failure lists) go through :func:`write_atomic`: temp file, fsync, rename (defined with
the other temp-file rules in :mod:`mind_nemo.core.run_folder`, re-exported here).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mind_nemo.core.run_folder import write_atomic, write_json_atomic

__all__ = [
    "JsonlAppender",
    "iter_jsonl",
    "read_lines",
    "repair_tail",
    "write_atomic",
    "write_json_atomic",
]

log = logging.getLogger(__name__)


def repair_tail(path: Path) -> int:
    """Truncate a torn or unparsable last line; return the number of bytes removed."""
    if not path.exists():
        return 0
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb+") as f:
        # Find the start of the last line (the byte after the second-to-last newline).
        block = 1 << 16
        pos = size
        tail = b""
        while pos > 0:
            step = min(block, pos)
            pos -= step
            f.seek(pos)
            tail = f.read(step) + tail
            if tail.count(b"\n") >= 2 or pos == 0:
                break
        body = tail[:-1] if tail.endswith(b"\n") else tail
        last_start = pos + body.rfind(b"\n") + 1
        f.seek(last_start)
        last = f.read()
        if last.endswith(b"\n") and _parses(last):
            return 0
        f.truncate(last_start)
        os.fsync(f.fileno())
    removed = size - last_start
    log.warning("%s: removed a torn last line (%d bytes) left by an interrupted run", path, removed)
    return removed


def _parses(line: bytes) -> bool:
    try:
        json.loads(line)
        return True
    except ValueError:
        return False


class JsonlAppender:
    """Append complete JSON lines to a file, one ``write()`` per line.

    Appending and closing are mutually exclusive, so a thread that appends (the synthesize
    planner records contexts) cannot write to a descriptor number that ``close`` just freed and
    the system handed to another file: after ``close``, ``append`` raises ``ValueError``.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        repair_tail(path)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._lock = threading.Lock()

    def append(self, line: str) -> None:
        data = (line + "\n").encode("utf-8")
        with self._lock:
            if self._fd < 0:
                raise ValueError(f"{self.path}: appended to after close")
            written = os.write(self._fd, data)
            while written < len(data):  # regular files write fully; be safe anyway
                written += os.write(self._fd, data[written:])

    def append_many(self, lines: list[str]) -> None:
        """Append several lines with one ``write()`` (each still whole on its own line)."""
        if lines:
            self.append("\n".join(lines))

    def sync(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.fsync(self._fd)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_lines(path: Path) -> Iterator[tuple[int, dict[str, Any] | None, str]]:
    """``(line number, parsed object or None, raw line)`` for every non-blank line.

    Undecodable bytes are replaced rather than fatal, so one bad line never hides the rest;
    callers decide whether a ``None`` row is logged, counted or rejected.
    """
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                row = None
            yield number, row if isinstance(row, dict) else None, line.rstrip("\n")


def iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a JSONL file (none if it does not exist); unparsable lines are logged, skipped."""
    if not path.exists():
        return
    for number, row, _ in read_lines(path):
        if row is None:
            log.warning("%s:%d: skipping a line that is not a JSON object", path, number)
        else:
            yield row
