"""What a mix run reports: the run manifest, and the sentence for a source with no documents.

``manifest.json`` is written last. Per source it holds what was read (input bytes, rows skipped
by reason, rows of other styles), what was written (documents, tokens, .bin/.idx checksums) and
what the blend makes of it (share, natural share, target tokens, epochs), so a training run can
be traced back to its inputs and its ratios checked without opening the data.
"""

from __future__ import annotations

from typing import Any

from mind_nemo.mix.blend import Plan
from mind_nemo.mix.config import SourceConfig
from mind_nemo.mix.sources import ResolvedSource

#: Fields of a source's done marker repeated in the manifest.
RECORD_FIELDS = (
    "prefix",
    "bin_bytes",
    "bin_sha256",
    "idx_sha256",
    "input_bytes",
    "filtered",
    "skipped",
    "seconds",
    "tokens_per_s",
    "shards",
)


def build_manifest(
    name: str,
    tokenizer: dict[str, Any],
    groups: dict[str, float],
    sources: dict[str, SourceConfig],
    plan: Plan,
    blend: dict[str, Any],
    records: dict[str, dict[str, Any]],
    session: dict[str, Any],
) -> dict[str, Any]:
    rows = {}
    for row in plan.rows:
        cfg, record = sources[row.name], records[row.name]
        rows[row.name] = {
            "kind": cfg.kind,
            "path": cfg.path,
            "variant": cfg.variant,
            "styles": list(cfg.styles),
            "group": row.group,
            "weight": cfg.weight,
            "documents": row.documents,
            "tokens": row.tokens,
            "share": row.share,
            "natural_share": row.natural_share,
            "target_tokens": row.target_tokens,
            "epochs": row.epochs,
            "this_session": session["sources"].get(row.name, "reused"),
            **{k: record.get(k) for k in RECORD_FIELDS},
        }
    return {
        "status": "complete",
        "name": name,
        "tokenizer": tokenizer,
        "groups": groups,
        "total_tokens": plan.total_tokens,
        "seq_length": plan.seq_length,
        "train_samples": plan.train_samples,
        "documents": sum(r.documents for r in plan.rows),
        "tokens": sum(r.tokens for r in plan.rows),
        "sources": rows,
        "blend": blend,
        "session": session,
    }


def empty_message(src: ResolvedSource, stats: dict[str, Any]) -> str:
    """Why a source has no documents, in one line."""
    detail = []
    skipped = ", ".join(f"{k}={v}" for k, v in stats.get("skipped", {}).items())
    if skipped:
        detail.append(f"skipped rows: {skipped}")
    if stats.get("filtered"):
        detail.append(f"{stats['filtered']} rows of other styles (styles={list(src.cfg.styles)})")
    if src.cfg.limit_documents == 0:
        detail.append("limit_documents=0")
    suffix = f" ({'; '.join(detail)})" if detail else ""
    return f"source {src.name!r} is empty: no documents in {src.cfg.path}{suffix}"
