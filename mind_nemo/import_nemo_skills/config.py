"""Typed config of ``python -m mind_nemo.import_nemo_skills``, registered at import.

The saved ``config.yaml`` of an imported run has the two sections the filter reads from a
synthesize run's config: ``style`` (the prompts, for its instruction-echo check) and
``server.model``/``server.tokenizer`` (the tokenizer it counts tokens with).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING

from mind_nemo.core.config import Checked, register_schema, setting
from mind_nemo.synthesize.config import StyleConfig


@dataclass
class GeneratorConfig:
    """The model NeMo-Skills generated with (its ``++server.model``): provenance, and the
    tokenizer the filter counts tokens with."""

    model: str = MISSING
    #: Tokenizer for token counts downstream; ``null`` uses the model's.
    tokenizer: str | None = None


@dataclass
class ImportConfig(Checked):
    """``python -m mind_nemo.import_nemo_skills``: NeMo-Skills output -> a synthesize run folder."""

    #: One style: a ``generate`` output file, or its output folder (``output.jsonl``,
    #: ``output_chunk_K.jsonl``, ``output-rsS.jsonl``). Several styles: a folder holding
    #: ``<style>.jsonl`` or ``<style>/`` (an output folder) per style.
    input: str = MISSING
    #: Which styles the input holds (``+style=NAME`` or ``+style=all``, as for synthesize).
    style: StyleConfig | None = None
    server: GeneratorConfig = field(default_factory=GeneratorConfig)
    output_dir: str = MISSING
    #: Shards to write (documents go to shards by the same id hash synthesize uses).
    num_shards: int = setting(1, ge=1)
    #: The field holding the answer (NeMo-Skills' ``generation_key``).
    generation_key: str = "generation"
    #: The input field whose text NeMo-Skills put at the start of the answer (its
    #: ``start_assistant_response_key``); the stored conversation starts with it once.
    start_assistant_response_key: str | None = None


register_schema("import_nemo_skills_schema", ImportConfig)
