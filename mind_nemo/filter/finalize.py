"""Pass 2 of the filter stage: duplicates across all shards, final files, variants, manifest.

Runs once, after pass 1 has committed every shard. In memory (``dedup.mode=memory``) it walks
the staged shards in order and keeps the first conversation of each exact or near-duplicate
group (fingerprints in a set, signatures memory-mapped into a MinHash LSH index); with the
scalable path (:mod:`mind_nemo.filter.dedup`) the apply step has already done that part. It
rewrites each shard's kept rows and rejects into their final place (temp file + rename),
builds the variants and writes ``manifest.json`` last: a done marker that vouches for every
final file by checksum, so a later run that finds it valid knows nothing needs redoing.
Rerunning it redoes all of this from the staged files, so it is safe to repeat.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from typing import Any

from mind_nemo.core.jsonl import JsonlAppender, iter_jsonl, read_lines
from mind_nemo.core.records import key_string
from mind_nemo.core.run_folder import file_sha256, publish, temp_path
from mind_nemo.filter.config import FilterStageConfig
from mind_nemo.filter.layout import OutputLayout
from mind_nemo.filter.rows import rejected_row
from mind_nemo.filter.rules.dedup import (
    NearDuplicateIndex,
    Signer,
    map_signatures,
    read_fingerprints,
)
from mind_nemo.filter.source import SourceRun
from mind_nemo.filter.tally import StyleTally, Tally
from mind_nemo.filter.variants import build_variants
from mind_nemo.synthesize.shard_store import row_key

log = logging.getLogger(__name__)
#: shard -> staged row number -> (reason, uid of the conversation it duplicates)
Drops = dict[str, dict[int, tuple[str, int]]]


def decide_duplicates(
    layout: OutputLayout, shards: list[str], cfg: FilterStageConfig, signer: Signer | None
) -> tuple[Drops, set[int]]:
    """Which staged rows duplicate an earlier one; also the uids of the originals."""
    dedup = cfg.filter.dedup
    seen: dict[bytes, int] = {}
    index = NearDuplicateIndex(dedup, signer) if dedup.near and signer else None
    drops: Drops = {}
    uid = 0
    for shard in shards:
        fingerprints = read_fingerprints(layout.fingerprints(shard))
        base = uid
        if index is not None and signer is not None:
            signatures = map_signatures(layout.signatures(shard), dedup.num_perm, signer.dtype)
            if len(signatures) != len(fingerprints):
                raise RuntimeError(f"{shard}: staged signatures do not match staged rows")
            base = index.add_shard(signatures)
        shard_drops: dict[int, tuple[str, int]] = {}
        for row, fp in enumerate(fingerprints):
            uid = base + row
            if dedup.exact:
                original = seen.setdefault(fp, uid)
                if original != uid:
                    shard_drops[row] = ("duplicate_exact", original)
                    continue
            if index is not None:
                similar = index.check_and_add(uid)
                if similar is not None:
                    shard_drops[row] = ("near_duplicate", similar)
        uid = base + len(fingerprints)
        drops[shard] = shard_drops
    originals = {original for d in drops.values() for _, original in d.values()}
    return drops, originals


def _fresh_tally(markers: dict[str, dict[str, Any]]) -> Tally:
    """Inputs and pass-1 rejections of every shard; kept counts are recounted after dedup."""
    tally = Tally()
    for marker in markers.values():
        for style, data in marker["by_style"].items():
            shard = StyleTally.from_dict(data)
            mine = tally.style(style)
            mine.input += shard.input
            mine.rejected.update(shard.rejected)
    return tally


def rewrite_shard(
    layout: OutputLayout,
    shard: str,
    shard_drops: dict[int, tuple[str, int]],
    tally: Tally,
    key_of: Callable[[int], str],
    seen: Callable[[int, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """One shard's final conversations and rejects (temp file + rename); its counts and
    checksums. ``key_of`` names the original a dropped row duplicates (``duplicate_of``);
    ``seen(row_number, row)`` is told about every staged row, in order."""
    final, rejects = layout.conversations(shard), layout.rejects(shard)
    kept_tmp, rejects_tmp = temp_path(final), temp_path(rejects)
    for path in (kept_tmp, rejects_tmp):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
    shutil.copyfile(layout.staged_rejects(shard), rejects_tmp)
    kept = dropped = 0
    with JsonlAppender(kept_tmp) as out, JsonlAppender(rejects_tmp) as rejected:
        for row_number, (_, row, _raw) in enumerate(read_lines(layout.staged_kept(shard))):
            if row is None:  # staged by us: cannot happen unless the disk lies
                raise RuntimeError(f"{shard}: unreadable staged row {row_number}")
            if seen is not None:
                seen(row_number, row)
            style = row["conversational_style"]
            if row_number in shard_drops:
                reason, original = shard_drops[row_number]
                tally.reject(style, reason)
                extra = {"duplicate_of": key_of(original)}
                rejected.append(json.dumps(rejected_row(row, reason, **extra), ensure_ascii=False))
                dropped += 1
            else:
                tally.keep(style, row, row.get("filter_notes"))
                out.append(json.dumps(row, ensure_ascii=False))
                kept += 1
        out.sync()
        rejected.sync()
    publish(kept_tmp, final)
    publish(rejects_tmp, rejects)
    return {
        "kept": kept,
        "duplicates": dropped,
        "conversations_sha256": file_sha256(final),
        "rejects_sha256": file_sha256(rejects),
    }


def rewrite(
    layout: OutputLayout, shards: list[str], drops: Drops, originals: set[int], tally: Tally
) -> dict[str, dict[str, Any]]:
    """Final conversations and rejects per shard; return per-shard counts and checksums."""
    keys: dict[int, str] = {}
    summary = {}
    base = 0
    for shard in shards:
        rows = 0

        def seen(row_number: int, row: dict[str, Any], base: int = base) -> None:
            nonlocal rows
            rows += 1
            if base + row_number in originals:
                keys[base + row_number] = key_string(row_key(row))

        summary[shard] = rewrite_shard(
            layout, shard, drops.get(shard, {}), tally, lambda o: keys.get(o, str(o)), seen
        )
        base += rows
    return summary


def _kept_rows(layout: OutputLayout, shards: list[str]) -> Iterator[dict[str, Any]]:
    for shard in shards:
        yield from iter_jsonl(layout.conversations(shard))


def _contexts(source: SourceRun) -> Iterator[dict[str, Any]]:
    for shard in source.shards:
        for row in iter_jsonl(source.contexts(shard)):
            if isinstance(row.get("text"), str) and isinstance(row.get("index"), int):
                yield row


def _sum_judge(markers: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    stats = [m["judge"] for m in markers.values() if m.get("judge")]
    if not stats:
        return None
    total: dict[str, Any] = {}
    for s in stats:
        for name, value in s.items():
            if isinstance(value, dict):
                bucket = total.setdefault(name, {})
                for k, v in value.items():
                    bucket[k] = bucket.get(k, 0) + v
            else:
                total[name] = total.get(name, 0) + value
    return total


def finalize(
    layout: OutputLayout,
    source: SourceRun,
    cfg: FilterStageConfig,
    markers: dict[str, dict[str, Any]],
    signer: Signer | None,
    count_tokens: Callable[[str], int],
    settings_hash: str,
    applied: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Dedup (in memory, unless ``applied`` holds the scalable apply step's per-shard records),
    then variants and the manifest."""
    started = time.monotonic()
    shards = source.shards
    layout.manifest.unlink(missing_ok=True)  # nothing looks finished while we rewrite
    tally = _fresh_tally(markers)
    if applied is None:
        mode = "memory"
        drops, originals = decide_duplicates(layout, shards, cfg, signer)
        shard_summary = rewrite(layout, shards, drops, originals, tally)
    else:  # the scalable path's apply step already wrote every shard
        mode = "scalable"
        shard_summary = {}
        for shard in shards:
            tally.merge(Tally.from_dict(applied[shard]["by_style"]))
            shard_summary[shard] = applied[shard]["summary"]
    variants = build_variants(
        _kept_rows(layout, shards), _contexts(source), cfg.variants, layout.root, count_tokens
    )
    reasons = tally.reasons()
    manifest = {
        "stage": "filter",
        "status": "complete",
        "source_run": str(source.run_dir.resolve()),
        "settings_hash": settings_hash,
        "inputs": {shard: markers[shard]["input_sha256"] for shard in shards},
        "conversations": {
            "input": sum(t.input for t in tally.by_style.values()),
            "kept": sum(t.kept for t in tally.by_style.values()),
            "rejected": sum(reasons.values()),
        },
        "by_style": tally.to_dict(),
        "reasons": dict(reasons.most_common()),
        "malformed_rows": sum(m["malformed_rows"] for m in markers.values()),
        "missing_context": sum(m["missing_context"] for m in markers.values()),
        "dedup": {
            "exact": reasons.get("duplicate_exact", 0),
            "near": reasons.get("near_duplicate", 0),
            "mode": mode,
            "exact_enabled": cfg.filter.dedup.exact,
            "near_enabled": cfg.filter.dedup.near,
            "threshold": cfg.filter.dedup.threshold,
            "num_perm": cfg.filter.dedup.num_perm,
            "shingle_words": cfg.filter.dedup.shingle_words,
        },
        "judge": _sum_judge(markers),
        "variants": variants,
        "variants_config": dataclasses.asdict(cfg.variants),
        "shards": shard_summary,
        "seconds": {
            "pass1": round(sum(m["seconds"] for m in markers.values()), 3),
            "finalize": round(time.monotonic() - started, 3),
        },
        "written": time.time(),
    }
    manifest = layout.write_manifest(manifest, shards)
    if not cfg.keep_work:
        shutil.rmtree(layout.work, ignore_errors=True)
    return manifest
