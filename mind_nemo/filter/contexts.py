"""Look up a conversation's context without holding a shard's contexts in memory.

Faithfulness checks and the judge need the context text of each conversation. A shard's
contexts file can be gigabytes, and conversations do not come in context order when a run was
resumed or retried, so we load the file once into an on-disk SQLite table keyed by
``(document_id, index)`` and look each one up (the last one is cached: a context's styles
usually arrive together). Memory stays at SQLite's page cache whatever the shard size.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path


class ContextIndex:
    def __init__(self, contexts_path: Path, db_path: Path) -> None:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        db_path.unlink(missing_ok=True)
        self.db_path = db_path
        self.db = sqlite3.connect(db_path)
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute(
            "CREATE TABLE contexts (doc TEXT, idx INTEGER, text TEXT, tokens INTEGER, "
            "PRIMARY KEY (doc, idx)) WITHOUT ROWID"
        )
        self.rows = self.malformed = 0
        if contexts_path.exists():
            self.db.executemany(
                "INSERT OR IGNORE INTO contexts VALUES (?, ?, ?, ?)", self._read(contexts_path)
            )
            self.db.commit()
        self._last: tuple[tuple[str, int], tuple[str, int | None] | None] | None = None

    def _read(self, path: Path):
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    row = json.loads(line)
                    text, index = row["text"], row["index"]
                    doc = str(row["document_id"])
                except (ValueError, KeyError, TypeError):
                    self.malformed += 1
                    continue
                if not isinstance(text, str) or not isinstance(index, int):
                    self.malformed += 1
                    continue
                start, end = row.get("token_start"), row.get("token_end")
                tokens = end - start if isinstance(start, int) and isinstance(end, int) else None
                self.rows += 1
                yield doc, index, text, tokens

    def get(self, document_id: str, index: int) -> tuple[str, int | None] | None:
        """``(text, tokens)`` of a context, or None if the run does not have it."""
        key = (document_id, index)
        if self._last is not None and self._last[0] == key:
            return self._last[1]
        found = self.db.execute(
            "SELECT text, tokens FROM contexts WHERE doc = ? AND idx = ?", key
        ).fetchone()
        value = (found[0], found[1]) if found else None
        self._last = (key, value)
        return value

    def close(self) -> None:
        self.db.close()
        self.db_path.unlink(missing_ok=True)
