"""What the run report shows, gathered in one streaming pass over a run folder's files.

The counts in the report's table are recounted from the data files (conversations, rejects,
variant parts), never copied from the manifest, and then compared with it: a report whose
numbers disagree with its manifest says so. Distributions for the plots are reservoir samples of
at most ``max_points`` rows (seeded), so memory is bounded whatever the run size; the counts are
exact. Works on a filtered run (its source synthesize run supplies prompt/completion tokens and
throughput) and on a plain synthesize run.
"""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mind_nemo.core.errors import UserError
from mind_nemo.core.jsonl import iter_jsonl
from mind_nemo.core.run_folder import CONVERSATIONS, REJECTS, RunFolder
from mind_nemo.filter.rules.speakers import parse_dialogue


def as_int(value: Any) -> int:
    """A count from a row that may be garbage: non-integers count as 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class Reservoir:
    """A uniform sample of at most ``size`` items from a stream (Algorithm R)."""

    def __init__(self, size: int, rng: random.Random) -> None:
        self.size, self.rng = size, rng
        self.items: list[Any] = []
        self.seen = 0

    def slot(self) -> int | None:
        """Where the next item goes (None: not sampled). Lets callers skip costly work."""
        self.seen += 1
        if len(self.items) < self.size:
            self.items.append(None)
            return len(self.items) - 1
        j = self.rng.randrange(self.seen)
        return j if j < self.size else None

    def add(self, item: Any) -> None:
        where = self.slot()
        if where is not None:
            self.items[where] = item


@dataclass
class Check:
    """One table cell recounted from the files, with what the manifest says."""

    counted: int
    manifest: int | None

    @property
    def ok(self) -> bool:
        return self.manifest is not None and self.counted == self.manifest


@dataclass
class ReportData:
    run_dir: Path
    kind: str  # "filtered" or "synthesize"
    manifest: dict[str, Any]
    source_dir: Path | None
    #: rows of the table: (section, name, column) -> Check
    table: dict[tuple[str, str, str], Check] = field(default_factory=dict)
    lengths: dict[str, Reservoir] = field(default_factory=dict)
    turns: dict[str, Reservoir] = field(default_factory=dict)
    prompt_completion: Reservoir | None = None
    created: Reservoir | None = None
    reasons: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    kept: Counter = field(default_factory=Counter)
    timelines: dict[str, list[dict[str, float]]] = field(default_factory=dict)

    @property
    def all_match(self) -> bool:
        return all(c.ok for c in self.table.values())


def _manifest_of_synthesize_run(run_dir: Path) -> dict[str, Any]:
    """The run manifest (merged or unsharded), else the shard manifests summed."""
    path = RunFolder(run_dir).manifest
    if path.is_file():
        return json.loads(path.read_text())
    by_style: dict[str, Counter] = defaultdict(Counter)
    shards = RunFolder(run_dir).shard_manifests()
    for shard in shards:
        for style, t in json.loads(shard.read_text()).get("by_style", {}).items():
            by_style[style].update(t)
    return {"by_style": {s: dict(c) for s, c in by_style.items()}, "summed_shards": len(shards)}


def _timelines(run_dir: Path) -> dict[str, list[dict[str, float]]]:
    found = {}
    for path in RunFolder(run_dir).shard_manifests():
        data = json.loads(path.read_text())
        found[path.stem] = list((data.get("session") or {}).get("timeline") or [])
    return found


def collect(run_dir: Path, max_points: int = 100_000, seed: int = 0) -> ReportData:
    if not run_dir.is_dir():
        raise UserError(f"run folder not found: {run_dir}")
    rng = random.Random(seed)
    folder = RunFolder(run_dir)
    manifest = json.loads(folder.manifest.read_text()) if folder.manifest.is_file() else {}
    if manifest.get("stage") == "filter":
        source = Path(manifest["source_run"])
        data = ReportData(run_dir, "filtered", manifest, source if source.is_dir() else None)
    elif folder.shard_files(CONVERSATIONS):
        data = ReportData(run_dir, "synthesize", _manifest_of_synthesize_run(run_dir), run_dir)
    else:
        raise UserError(
            f"{run_dir} is neither a filtered run (manifest.json from mind_nemo.filter) nor a "
            "synthesize run (conversations/shard-*.jsonl)"
        )
    data.prompt_completion = Reservoir(max_points, rng)
    data.created = Reservoir(max_points, rng)
    if data.kind == "filtered":
        _count_filtered(data, max_points, rng)
    if data.source_dir is not None:
        _count_source(data, max_points, rng)
        data.timelines = _timelines(data.source_dir)
    return data


def _sample_lengths_and_turns(
    data: ReportData, row: dict[str, Any], tokens: int, max_points: int, rng: random.Random
) -> None:
    style = row["conversational_style"]
    data.lengths.setdefault(style, Reservoir(max_points, rng)).add(tokens)
    turns = data.turns.setdefault(style, Reservoir(max_points, rng))
    where = turns.slot()
    if where is not None:
        count = row.get("turns")
        turns.items[where] = (
            count if isinstance(count, int) else len(parse_dialogue(row["text"]).spoken)
        )


def _count_filtered(data: ReportData, max_points: int, rng: random.Random) -> None:
    m = data.manifest
    counted: dict[str, Counter] = defaultdict(Counter)
    folder = RunFolder(data.run_dir)
    for path in folder.shard_files(CONVERSATIONS):
        for row in iter_jsonl(path):
            style = row["conversational_style"]
            counted[style]["kept"] += 1
            counted[style]["tokens"] += as_int(row.get("tokens"))
            data.kept[style] += 1
            _sample_lengths_and_turns(data, row, as_int(row.get("tokens")), max_points, rng)
    for path in folder.shard_files(REJECTS):
        for row in iter_jsonl(path):
            style = row.get("conversational_style")
            style = style if isinstance(style, str) and style else "<unknown>"
            reason = str(row.get("reject_reason"))
            data.reasons[style][reason] += 1
            counted[style]["rejected"] += 1
    for style in sorted(set(counted) | set(m.get("by_style", {}))):
        expected = m.get("by_style", {}).get(style, {})
        counted[style]["input"] = counted[style]["kept"] + counted[style]["rejected"]
        for column in ("input", "kept", "rejected", "tokens"):
            data.table[("style", style, column)] = Check(
                counted[style][column], expected.get(column)
            )
    for name, expected in m.get("variants", {}).items():
        rows = tokens = 0
        for path in folder.variant_parts(name):
            for row in iter_jsonl(path):
                rows += 1
                tokens += as_int(row.get("tokens"))
        data.table[("variant", name, "rows")] = Check(rows, expected.get("rows"))
        data.table[("variant", name, "tokens")] = Check(tokens, expected.get("tokens"))


def _count_source(data: ReportData, max_points: int, rng: random.Random) -> None:
    """Generation-side numbers from the synthesize run (every generated row)."""
    assert data.source_dir is not None and data.prompt_completion and data.created
    counted: dict[str, Counter] = defaultdict(Counter)
    for path in RunFolder(data.source_dir).shard_files(CONVERSATIONS):
        for row in iter_jsonl(path):
            style = row.get("conversational_style")
            if not isinstance(style, str):  # the shard manifests count every row with a style
                continue
            prompt, completion = (
                as_int(row.get("prompt_tokens")),
                as_int(row.get("completion_tokens")),
            )
            counted[style]["conversations"] += 1
            counted[style]["prompt_tokens"] += prompt
            counted[style]["completion_tokens"] += completion
            data.prompt_completion.add((prompt, completion, style))
            if isinstance(row.get("created"), (int, float)):
                data.created.add((float(row["created"]), completion))
            if data.kind == "synthesize" and isinstance(row.get("text"), str):
                _sample_lengths_and_turns(data, row, completion, max_points, rng)
    if data.kind == "synthesize":
        expected = data.manifest.get("by_style", {})
        for style in sorted(set(counted) | set(expected)):
            for column in ("conversations", "prompt_tokens", "completion_tokens"):
                data.table[("style", style, column)] = Check(
                    counted[style][column], expected.get(style, {}).get(column)
                )
