"""``viewer.html``: each sampled context beside its conversations in every style, to read.

Written by the report next to ``report.md``. One file with no network access at all (inline
CSS and JavaScript, the data embedded as JSON; see :mod:`.viewer_page`), so it opens from a
cluster's scratch disk or a mail attachment. Each conversation is shown as the filter's speaker
parse sees it (turns coloured by speaker, the preamble apart), with its verdict and reject
reason; buttons filter by style, verdict and reason, and a search box matches the text of a
conversation or its context.

The JSON is made inert inside ``<script>``: ``<``, ``>`` and ``&`` (and the two JavaScript line
separators) are written as ``\\uXXXX`` escapes, so text holding ``</script>`` cannot end the
block; the page script then only ever assigns ``textContent``.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from mind_nemo.core.jsonl import write_atomic
from mind_nemo.filter.rules.speakers import parse_dialogue
from mind_nemo.report.sample import SampledContext, SampledConversation
from mind_nemo.report.viewer_page import BODY, CSS, SCRIPT

#: Contexts per page of the viewer.
PAGE_SIZE = 10
_INERT = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026",
          0x2028: "\\u2028", 0x2029: "\\u2029"}  # fmt: skip


def inert_json(data: Any) -> str:
    """JSON that can sit inside a ``<script>`` element whatever strings it holds."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).translate(_INERT)


def _conversation(context: int, conv: SampledConversation) -> dict[str, Any]:
    dialogue = parse_dialogue(conv.text)
    spoken = dialogue.spoken
    order = {key: i for i, key in enumerate(dict.fromkeys(t.speaker for t in spoken))}
    return {
        "c": context,
        "s": conv.style,
        "v": conv.verdict,
        "r": conv.reason or "",
        "t": conv.tokens,
        "p": dialogue.preamble if spoken else "",
        "n": [dialogue.names[key] for key in order],
        "u": [[order[t.speaker], t.text] for t in spoken],
        "x": "" if spoken else conv.text,
    }


def viewer_data(run: str, sample: list[SampledContext]) -> dict[str, Any]:
    contexts, convs = [], []
    for i, context in enumerate(sample):
        contexts.append({"doc": context.key[0], "index": context.key[1], "text": context.text})
        convs += [_conversation(i, c) for c in context.conversations]
    return {
        "run": run,
        "page_size": PAGE_SIZE,
        "contexts": contexts,
        "convs": convs,
        "styles": sorted({c["s"] for c in convs}),
        "verdicts": sorted({c["v"] for c in convs}),
        "reasons": sorted({c["r"] for c in convs if c["r"]}),
    }


def render_viewer(data: dict[str, Any], sample_note: str) -> str:
    head = (
        "<meta charset='utf-8'><meta name='viewport' content='width=device-width'>"
        f"<title>mind_nemo data viewer</title><style>{CSS}</style>"
    )
    body = BODY.replace("SAMPLE_NOTE", html.escape(sample_note))
    payload = f'<script type="application/json" id="viewer-data">{inert_json(data)}</script>'
    return (
        f"<!DOCTYPE html>\n<html><head>{head}</head><body>{body}\n{payload}\n"
        f"<script>{SCRIPT}</script>\n</body></html>\n"
    )


def write_viewer(path: Path, run: str, sample: list[SampledContext], sample_note: str) -> Path:
    write_atomic(path, render_viewer(viewer_data(run, sample), sample_note))
    return path
