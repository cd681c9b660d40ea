"""Resume reads context keys without parsing each context's text: the fast reader must give the
same keys, and skip the same damaged lines, as parsing every row in full."""

from __future__ import annotations

import json
from pathlib import Path

from mind_nemo.core.jsonl import iter_jsonl
from mind_nemo.core.records import Context
from mind_nemo.synthesize.shard_store import context_keys

AWKWARD_IDS = ['a"b', "back\\slash\\", "ü\u2028x", "new\nline", '\\"', 'x", "index": 9, "y']


def _full_parse(path: Path) -> set[tuple[str, int]]:
    return {(str(r["document_id"]), int(r["index"])) for r in iter_jsonl(path)}


def test_fast_keys_match_a_full_parse_for_awkward_ids_and_other_layouts(tmp_path):
    rows = [
        Context(d, i, 'text with "} inside', 0, 1, 0, 1).to_json()
        for i, d in enumerate(AWKWARD_IDS)
    ]
    rows.append(json.dumps({"index": 7, "document_id": "fields reordered", "text": "z"}))
    rows.append('{"document_id": "torn", "index": 8, "text": "never closed')  # damaged row
    rows.append("")
    rows.append("[1, 2]")  # not an object
    path = tmp_path / "contexts.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")

    keys = context_keys(path)

    assert keys == _full_parse(path)
    assert ("fields reordered", 7) in keys and ("torn", 8) not in keys
    assert {(d, i) for i, d in enumerate(AWKWARD_IDS)} <= keys


def test_missing_file_has_no_keys(tmp_path):
    assert context_keys(tmp_path / "absent.jsonl") == set()
