"""The export's dataset card: the ``README.md`` that Hugging Face ``datasets`` reads first.

Without it ``load_dataset(export)`` guesses one dataset from every Parquet file and a style
cannot be picked. The YAML front matter declares one config per style folder plus ``all`` (the
default) and the schema (``dataset_info`` features), so ``load_dataset(export, "debate")``
loads that style only. The body says what the data is, how much of each style there is, which
model and sampling made it, and, for the embedded 135M model, that it shows mechanics only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import yaml

from mind_nemo.core.run_folder import EXPORT_CARD, EXPORT_FILE_GLOB, write_atomic
from mind_nemo.servers.config import EMBEDDED_MODEL
from mind_nemo.synthesize.export import export_columns

#: The config that loads every style; it is the card's default.
ALL_CONFIG = "all"
SPLIT = "train"
#: Models / sampling settings named one by one in the card before the rest are only counted.
MAX_LISTED = 5
#: The sampling key sized per request, left out of the card's sampling line.
PER_REQUEST = "max_tokens"


def _config(name: str, pattern: str, default: bool = False) -> dict[str, object]:
    config: dict[str, object] = {"config_name": name}
    if default:
        config["default"] = True
    config["data_files"] = [{"split": SPLIT, "path": pattern}]
    return config


def card_metadata(schema: str, counts: Mapping[str, int]) -> dict[str, object]:
    """The front matter: ``configs`` (``all`` + one per style folder) and ``dataset_info``."""
    folders = sorted(name for name, rows in counts.items() if rows)
    configs = [_config(ALL_CONFIG, EXPORT_FILE_GLOB, default=True)] if folders else []
    configs += [_config(folder, f"{folder}/*.parquet") for folder in folders]
    info = [
        {
            "config_name": config["config_name"],
            "features": [{"name": c.name, "dtype": c.dtype} for c in export_columns(schema)],
        }
        for config in configs
    ]  # no ``splits``: datasets wants their Arrow byte sizes; the row counts are in the body
    return {"configs": configs, "dataset_info": info}


class _PlainDumper(yaml.SafeDumper):
    """YAML without anchors and aliases (every config spells its features out)."""

    def ignore_aliases(self, data: object) -> bool:
        return True


def card_text(
    schema: str, counts: Mapping[str, int], models: set[str], samplings: set[str], run: str
) -> str:
    """The whole card: front matter, then a short body for a reader."""
    metadata = card_metadata(schema, counts)
    front = yaml.dump(metadata, Dumper=_PlainDumper, sort_keys=False, allow_unicode=True)
    columns = ", ".join(f"`{c.name}`" for c in export_columns(schema))
    rows = [f"| `{folder}` | {n} |" for folder, n in sorted(counts.items())]
    total = sum(counts.values())
    lines = [
        f"---\n{front}---",
        "",
        "# MIND-style synthetic math conversations",
        "",
        f"Conversations rewritten from math web text in the styles of the MIND paper by "
        f"mind_nemo (`python -m mind_nemo.merge`, run `{run}`): {total} rows in all, one "
        f"folder and one config per style; `all` (the default) loads every style.",
        "",
        "| style | rows |",
        "|---|---|",
        *rows,
        "",
        f"Columns: {columns}. Schema `{schema}`: {_schema_note(schema)}",
        "",
        f"Model: {_join(models)}. Sampling: {_join(samplings)} (`max_tokens` per request: "
        "the total budget less the prompt).",
    ]
    if EMBEDDED_MODEL in models:
        lines += [
            "",
            "Made by the embedded SmolLM2-135M-Instruct model: these conversations show the "
            "pipeline's mechanics, not the quality a large instruct model gives; do not train "
            "on them expecting the paper's results.",
        ]
    lines += [
        "",
        "```python",
        "import datasets",
        f'datasets.load_dataset("path/to/export", "{min(counts) if counts else ALL_CONFIG}")',
        "```",
        "",
    ]
    return "\n".join(lines)


def _schema_note(schema: str) -> str:
    if schema == "nemotron_mind":
        return (
            "the released Nemotron-MIND naming: upper-case style folders, and the "
            "`Conversational Style` value is the folder name (`TWO_STUDENTS`, ...). Our "
            "provenance columns are left out so these files have exactly the release's schema "
            "and load together with it; they stay in the run's `conversations/` shards and in "
            "a default (`mind_nemo`) export."
        )
    return (
        "our snake_case naming (style folders and values such as `two_students`), with the "
        "provenance of each row after the three released fields; "
        "`merge export.schema=nemotron_mind` writes the release's naming instead."
    )


def _join(values: set[str]) -> str:
    if not values:
        return "none recorded"
    shown = sorted(values)[:MAX_LISTED]
    more = f" and {len(values) - len(shown)} more" if len(values) > len(shown) else ""
    return ", ".join(f"`{v}`" for v in shown) + more


def sampling_label(sampling: object) -> str:
    """A row's sampling settings as one stable string (for the card's sampling line), without
    ``max_tokens``: each request's own budget (prompt + completion within the total)."""
    if not isinstance(sampling, dict):
        return ""
    shared = {k: v for k, v in sampling.items() if k != PER_REQUEST}
    return json.dumps(shared, sort_keys=True) if shared else ""


def write_card(folder: Path, text: str) -> Path:
    path = folder / EXPORT_CARD
    write_atomic(path, text)
    return path
