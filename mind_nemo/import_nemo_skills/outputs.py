"""Find the finished NeMo-Skills ``generate`` output files of an import, by NeMo-Skills' names.

Names and markers, as NeMo-Skills writes them (``nemo_skills/pipeline/utils/generation.py``,
``nemo_skills/utils.py``, ``nemo_skills/inference/generate.py``)::

    output.jsonl                    one run's output
    output-rs<S>.jsonl              the run with random seed S (one sample per seed)
    output[-rs<S>]_chunk_<K>.jsonl  chunk K of ``++num_chunks``; ``merge_chunks`` later
                                    concatenates them into the unchunked name and deletes them
    <file>.done                     written by the pipeline when the job producing <file> ended
    <file>-async                    generate's working file; renamed away (re-written in input
                                    order as <file>) only when generation finished

A file counts as finished when its ``.done`` marker exists, or, for a bare ``generate`` run
(which writes no marker), when no ``-async`` working file is left beside it. Anything else is
refused in one line: importing half a run would silently lose rows. Seeds become our ``sample``
numbers (0, 1, ... in seed order); chunks must run from 0 without gaps (the total is not
recorded by NeMo-Skills, so missing last chunks cannot be seen: check the job count).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mind_nemo.core.errors import UserError

OUTPUT_NAME = re.compile(r"^output(?:-rs(?P<seed>\d+))?(?:_chunk_(?P<chunk>\d+))?\.jsonl$")
DONE_SUFFIX = ".done"
ASYNC_SUFFIX = "-async"


@dataclass(frozen=True)
class OutputFile:
    """One finished output file and what its rows are: a style, and a sample number."""

    path: Path
    style: str
    sample: int


def unfinished(path: Path) -> str | None:
    """Why ``path`` is not a finished output file, or None."""
    if not path.is_file():
        return f"{path} does not exist"
    if Path(f"{path}{DONE_SUFFIX}").exists():
        return None
    if Path(f"{path}{ASYNC_SUFFIX}").exists():
        return (
            f"{path} is unfinished ({path.name}{ASYNC_SUFFIX} is beside it: generate is still "
            "running or was interrupted; rerun it with ++skip_filled=true, then import)"
        )
    return None


def _by_seed(folder: Path) -> dict[int | None, dict[int | None, Path]]:
    """seed -> chunk -> file for the output files in ``folder`` (None: no seed / unchunked)."""
    found: dict[int | None, dict[int | None, Path]] = {}
    for path in sorted(folder.iterdir()):
        match = OUTPUT_NAME.match(path.name)
        if match and path.is_file():
            seed = int(match["seed"]) if match["seed"] is not None else None
            chunk = int(match["chunk"]) if match["chunk"] is not None else None
            found.setdefault(seed, {})[chunk] = path
    return found


def _seed_files(folder: Path, chunks: dict[int | None, Path]) -> list[Path]:
    """The files holding one seed's rows: the merged file, else its chunks 0..K."""
    merged = chunks.pop(None, None)
    if merged is not None:
        if chunks and not Path(f"{merged}{DONE_SUFFIX}").exists():
            raise UserError(
                f"{merged} and its chunk files are both in {folder}: merge_chunks is unfinished; "
                "wait for it (or remove the partial merged file) and import again"
            )
        return [merged]
    numbers = sorted(k for k in chunks if k is not None)
    missing = sorted(set(range(numbers[-1] + 1)) - set(numbers))
    if missing:
        raise UserError(f"{folder}: chunk {missing[0]} of the output is missing")
    return [chunks[k] for k in numbers]


def folder_outputs(folder: Path, style: str) -> list[OutputFile]:
    """The output files of one NeMo-Skills output folder."""
    seeds = _by_seed(folder)
    if not seeds:
        raise UserError(
            f"no NeMo-Skills output in {folder} (expected output.jsonl, output_chunk_K.jsonl "
            "or output-rsS.jsonl)"
        )
    order = sorted(seeds, key=lambda s: -1 if s is None else s)
    return [
        OutputFile(path, style, sample)
        for sample, seed in enumerate(order)
        for path in _seed_files(folder, seeds[seed])
    ]


def style_outputs(path: Path, style: str) -> list[OutputFile]:
    """One style's output: a file, or an output folder."""
    return folder_outputs(path, style) if path.is_dir() else [OutputFile(path, style, 0)]


def find_outputs(input_path: Path, styles: list[str]) -> list[OutputFile]:
    """Every finished output file of the import; an unfinished or missing one is a UserError."""
    if not input_path.exists():
        raise UserError(f"input={input_path} does not exist")
    per_style = [input_path / styles[0], input_path / f"{styles[0]}.jsonl"]
    if len(styles) == 1 and not any(p.exists() for p in per_style):
        found = style_outputs(input_path, styles[0])
    else:
        if not input_path.is_dir():
            raise UserError(f"input={input_path} must be a folder with one output per style")
        found = []
        for style in styles:
            candidates = [input_path / style, input_path / f"{style}.jsonl"]
            present = [c for c in candidates if c.exists()]
            if not present:
                raise UserError(
                    f"no NeMo-Skills output for style {style} in {input_path} (expected "
                    f"{style}/ with output*.jsonl, or {style}.jsonl)"
                )
            found.extend(style_outputs(present[0], style))
    for output in found:
        if (problem := unfinished(output.path)) is not None:
            raise UserError(problem)
    return found
