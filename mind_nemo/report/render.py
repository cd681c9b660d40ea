"""``python -m mind_nemo.report RUN_DIR``: what happened in a run, as report.md and report.html.

Renders a table of counts and tokens per style and per variant, the quality scorecard
(:mod:`.scorecard`) and the five plots (length per style, prompt vs completion tokens, turns,
filter reasons, throughput), and writes ``viewer.html`` (:mod:`.viewer`). The counts table is
recounted from the data files and checked against the manifest cell by cell; the report states
whether everything matched. ``report.html`` embeds its PNGs, so it is one file to mail or attach;
``report.md`` links to ``report_plots/*.png`` next to it.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from mind_nemo.core.cli import CONFIG_PATH
from mind_nemo.core.config import typed_config
from mind_nemo.core.errors import exit_on_user_error
from mind_nemo.core.jsonl import write_atomic
from mind_nemo.core.run_folder import REPORT_HTML, REPORT_MD, REPORT_PLOTS, VIEWER_HTML
from mind_nemo.report.config import ReportConfig
from mind_nemo.report.data import ReportData, collect
from mind_nemo.report.sample import SampledContext, collect_sample
from mind_nemo.report.scorecard import (
    LENGTH_HEADERS,
    OVERLAP_N,
    QUALITY_HEADERS,
    score_sample,
    scorecard_rows,
)
from mind_nemo.report.viewer import write_viewer

CSS = (
    "body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:4px 10px;"
    "text-align:right}td:first-child,th:first-child{text-align:left}img{max-width:100%}"
)
FOOT = "\n</body></html>\n"
Block = tuple[str, Any]  # ("h2", text) | ("p", text) | ("table", (headers, rows)) | ("img", ...)


def table_blocks(data: ReportData) -> list[Block]:
    names = sorted({n for (s, n, _) in data.table if s == "style"})
    columns = (
        ["input", "kept", "rejected", "tokens"]
        if data.kind == "filtered"
        else ["conversations", "prompt_tokens", "completion_tokens"]
    )
    rows = []
    for name in names:
        checks = [data.table[("style", name, c)] for c in columns]
        rows.append(
            [name, *(c.counted for c in checks), "yes" if all(c.ok for c in checks) else "NO"]
        )
    blocks: list[Block] = [
        ("h2", "Counts and tokens per style"),
        ("table", (["style", *columns, "matches manifest"], rows)),
    ]
    variants = sorted({n for (s, n, _) in data.table if s == "variant"})
    if variants:
        vrows = []
        for name in variants:
            checks = [data.table[("variant", name, c)] for c in ("rows", "tokens")]
            vrows.append(
                [name, *(c.counted for c in checks), "yes" if all(c.ok for c in checks) else "NO"]
            )
        headers = ["variant", "rows", "tokens", "matches manifest"]
        blocks += [("h2", "Counts and tokens per variant"), ("table", (headers, vrows))]
    return blocks


def summary_blocks(data: ReportData) -> list[Block]:
    m = data.manifest
    lines = [f"Run folder: `{data.run_dir}` ({data.kind} run)."]
    if data.kind == "filtered":
        c = m["conversations"]
        lines.append(
            f"Source run: `{m['source_run']}`. Kept {c['kept']} of {c['input']} conversations; "
            f"{m['dedup']['exact']} exact and {m['dedup']['near']} near duplicates removed; "
            f"{m.get('malformed_rows', 0)} malformed rows."
        )
        judge = m.get("judge")
        if judge and judge.get("scored"):
            means = ", ".join(
                f"{k} {v / judge['scored']:.2f}" for k, v in judge["score_sums"].items()
            )
            lines.append(
                f"LLM judge: {judge['scored']} scored ({means}); "
                f"{judge['unparsed']} unparsed, {judge['failed']} failed."
            )
    verdict = (
        "All numbers in the tables below match the manifest."
        if data.all_match
        else ("WARNING: some numbers below do NOT match the manifest (see the last column).")
    )
    return [("h1", "mind_nemo run report"), *(("p", line) for line in lines), ("p", verdict)]


def sample_note(data: ReportData, sample: list[SampledContext], size: int) -> str:
    conversations = sum(len(c.conversations) for c in sample)
    if not sample:
        return "no contexts with conversations found in the source run"
    full = "every context" if len(sample) < size else f"the {size} contexts whose keys hash lowest"
    return f"{len(sample)} contexts ({full}) and their {conversations} conversations"


def scorecard_blocks(data: ReportData, sample: list[SampledContext], size: int) -> list[Block]:
    length, quality = scorecard_rows(data, score_sample(sample))
    where = "kept and rejected alike" if data.kind == "filtered" else "as generated"
    return [
        ("h2", "Quality scorecard"),
        (
            "p",
            f"Measured on {sample_note(data, sample, size)}, {where}; the kept share and top "
            "reasons are exact counts over the whole run. Tokens are generator tokens; the "
            "paper reports only a range of per-style means and the LONGEST mean.",
        ),
        ("h2", "Quality scorecard: length and structure"),
        ("table", (LENGTH_HEADERS, length)),
        ("h2", "Quality scorecard: faithfulness and diversity"),
        (
            "p",
            "Number recall: share of the context's mathematical numbers the conversation keeps "
            "(the filter's rule: dates, times and reference numbers left out). Invented numbers: "
            "numbers spoken in the conversation that appear nowhere in its context. Overlap: "
            f"share of the context's distinct word {OVERLAP_N}-grams found in the conversation. "
            "Distinct-n: distinct word n-grams / all n-grams over the style's conversations. "
            "Near duplicates: conversations as similar to another style's of the same context "
            "as the filter's dedup threshold. Loops: conversations the degeneration rule flags "
            "at its default thresholds, measured whatever filter the run used.",
        ),
        ("table", (QUALITY_HEADERS, quality)),
    ]


def build_blocks(
    data: ReportData, sample: list[SampledContext] | None = None, size: int = 1
) -> list[Block]:
    from mind_nemo.report.plots import FIGURES

    blocks = summary_blocks(data) + table_blocks(data)
    if sample is not None:
        blocks += scorecard_blocks(data, sample, size)
    blocks += [("h2", "Plots")]
    for name, (title, draw) in FIGURES.items():
        blocks += [("h3", title), ("img", (name, title, draw(data)))]
    return blocks


def render_markdown(blocks: list[Block], plot_dir: str) -> str:
    out = []
    for kind, value in blocks:
        if kind in ("h1", "h2", "h3"):
            out.append(f"{'#' * int(kind[1])} {value}\n")
        elif kind == "p":
            out.append(f"{value}\n")
        elif kind == "table":
            headers, rows = value
            out.append("| " + " | ".join(headers) + " |")
            out.append("|" + "|".join("---" for _ in headers) + "|")
            out += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
            out.append("")
        elif kind == "img":
            name, title, _ = value
            out.append(f"![{title}]({plot_dir}/{name}.png)\n")
    return "\n".join(out)


def render_html(blocks: list[Block]) -> str:
    body = []
    for kind, value in blocks:
        if kind in ("h1", "h2", "h3"):
            body.append(f"<{kind}>{html.escape(value)}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{html.escape(value).replace('`', '')}</p>")
        elif kind == "table":
            headers, rows = value
            head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
            cells = "".join(
                "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
                for row in rows
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{cells}</tbody></table>")
        elif kind == "img":
            _, title, png = value
            data = base64.b64encode(png).decode("ascii")
            body.append(f'<img alt="{html.escape(title)}" src="data:image/png;base64,{data}">')
    head = f"<meta charset='utf-8'><title>mind_nemo run report</title><style>{CSS}</style>"
    return f"<!DOCTYPE html>\n<html><head>{head}</head><body>\n" + "\n".join(body) + FOOT


def write_report(cfg: ReportConfig) -> dict[str, Path | bool]:
    data = collect(Path(cfg.run_dir), cfg.max_points, cfg.seed)
    out = Path(cfg.output_dir) if cfg.output_dir else Path(cfg.run_dir)
    sample = collect_sample(data, cfg.sample_contexts)
    blocks = build_blocks(data, sample, cfg.sample_contexts)
    plots = out / REPORT_PLOTS
    plots.mkdir(parents=True, exist_ok=True)
    for kind, value in blocks:
        if kind == "img":
            name, _, png = value
            (plots / f"{name}.png").write_bytes(png)
    write_atomic(out / REPORT_MD, render_markdown(blocks, REPORT_PLOTS))
    write_atomic(out / REPORT_HTML, render_html(blocks))
    paths: dict[str, Path | bool] = {
        "md": out / REPORT_MD,
        "html": out / REPORT_HTML,
        "all_match": data.all_match,
    }
    if cfg.viewer:
        note = sample_note(data, sample, cfg.sample_contexts)
        paths["viewer"] = write_viewer(out / VIEWER_HTML, str(data.run_dir), sample, note)
    return paths


@exit_on_user_error
def run_report(raw: DictConfig) -> dict[str, Path | bool]:
    cfg = typed_config(raw, ReportConfig)
    paths = write_report(cfg)
    print(f"report: {paths['md']}\n        {paths['html']}")
    if "viewer" in paths:
        print(f"viewer: {paths['viewer']}")
    if not paths["all_match"]:
        print("warning: some recounted numbers differ from the manifest (see the table)")
    return paths


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="report")
def main(cfg: DictConfig) -> None:
    run_report(cfg)
