"""A Hugging Face tokenizer without transformers: ``tokenizer.json`` plus its chat template.

The synthesize process needs a tokenizer for two things only: offsets to cut documents at
(chunking) and token counts to size each request's ``max_tokens`` (the prompt budget, which
renders the model's chat template). Importing transformers for that pulls in torch and costs
seconds of start-up and hundreds of MB, so this module reads the same files transformers
would, with the ``tokenizers`` library (Rust; its batch encode releases the GIL) and jinja2:

* ``tokenizer.json`` is the whole fast tokenizer; encoding with ``add_special_tokens=False``
  gives the ids and character offsets transformers' ``__call__`` gives (it wraps the same
  object).
* the chat template comes from ``chat_template.jinja`` (transformers 5 writes it there) or
  ``tokenizer_config.json``'s ``chat_template``, rendered in a sandbox with the globals
  transformers offers templates (``raise_exception``, ``strftime_now``, special tokens).

A name that is neither a folder nor in the local Hugging Face cache is fetched with
``huggingface_hub``; a model that ships no ``tokenizer.json`` (slow-only tokenizers, GGUF) falls
back to transformers once, logged. Code that already holds a transformers tokenizer (tests,
other stages) passes it anywhere a :class:`FastTokenizer` is expected: :func:`as_fast` wraps it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from tokenizers import Encoding, Tokenizer

from mind_nemo.core.errors import UserError

log = logging.getLogger(__name__)

TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
CHAT_TEMPLATE_FILE = "chat_template.jinja"
#: Special tokens a chat template may refer to by name.
SPECIAL_TOKEN_NAMES = ("bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token")


class FastTokenizer:
    """Encode with offsets and render the chat template; nothing else.

    ``backend`` is a ``tokenizers.Tokenizer``; ``chat_template`` the Jinja source (``None``
    when the model has none); ``special`` maps names such as ``bos_token`` to their strings.
    """

    def __init__(
        self,
        backend: Tokenizer,
        chat_template: str | None = None,
        special: dict[str, str] | None = None,
        name: str = "",
        definition_digest: str | None = None,
    ) -> None:
        self.backend = backend
        self.chat_template = chat_template
        self.special = special or {}
        self.name = name
        self._definition_digest = definition_digest

    @property
    def definition_digest(self) -> str:
        """A digest of the tokenizer's definition: two tokenizers with the same one encode
        alike. Loaded from a file, it is that file's SHA-1 (free: the bytes are at hand); else
        the SHA-1 of the definition serialised, which costs 16 ms for a 3.5 MB tokenizer."""
        if self._definition_digest is None:
            text = self.backend.to_str().encode("utf-8")
            self._definition_digest = hashlib.sha1(text).hexdigest()
        return self._definition_digest

    # -- encoding -----------------------------------------------------------------------------
    def encode(self, text: str) -> Encoding:
        return self.backend.encode(text, add_special_tokens=False)

    def encode_batch(self, texts: list[str]) -> list[Encoding]:
        """One call for many texts; the Rust side runs without the GIL."""
        return self.backend.encode_batch(texts, add_special_tokens=False)

    def offsets(self, text: str) -> list[tuple[int, int]]:
        return self.encode(text).offsets

    def count(self, text: str) -> int:
        return len(self.encode(text))

    # -- chat template --------------------------------------------------------------------------
    @cached_property
    def _template(self) -> Any:
        from jinja2.ext import loopcontrols
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        def raise_exception(message: str) -> None:
            raise UserError(f"the chat template of {self.name or 'the model'} refused: {message}")

        env = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]
        )
        env.filters["tojson"] = lambda value, indent=None: json.dumps(
            value, ensure_ascii=False, indent=indent
        )
        env.globals["raise_exception"] = raise_exception
        env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        assert self.chat_template is not None
        return env.from_string(self.chat_template)

    def render_chat(
        self, messages: list[dict[str, str]], add_generation_prompt: bool = True
    ) -> str:
        """The prompt text the model's chat template makes of ``messages``."""
        if not self.chat_template:
            raise UserError(
                f"tokenizer {self.name or ''} has no chat template; use server.api=chat "
                "or a model with one"
            )
        return str(
            self._template.render(
                messages=messages, add_generation_prompt=add_generation_prompt, **self.special
            )
        )

    def apply_chat_template(
        self,
        messages: list[dict[str, str]],
        tokenize: bool = True,
        add_generation_prompt: bool = False,
        continue_final_message: bool = False,
    ) -> str | list[int]:
        """The part of transformers' method of that name the prompt budget uses, with its
        meaning: ``continue_final_message`` ends the text right after the last message's
        content, so the model continues that (assistant) turn."""
        text = self.render_chat(messages, add_generation_prompt)
        if continue_final_message:
            final = messages[-1]["content"]
            if final not in text:
                final = final.strip()  # some templates strip message contents
            end = text.rfind(final)
            if end < 0:
                raise UserError("the chat template drops the final message; cannot continue it")
            text = text[: end + len(final)]
        return self.encode(text).ids if tokenize else text


def as_fast(tokenizer: Any) -> FastTokenizer:
    """``tokenizer`` as a :class:`FastTokenizer`: itself, a wrapped ``tokenizers.Tokenizer``,
    or the backend of a transformers fast tokenizer (with its chat template)."""
    if isinstance(tokenizer, FastTokenizer):
        return tokenizer
    if isinstance(tokenizer, Tokenizer):
        return FastTokenizer(tokenizer)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if not isinstance(backend, Tokenizer):
        raise UserError("chunking needs a fast (Rust) Hugging Face tokenizer that returns offsets")
    special = {
        name: str(getattr(tokenizer, name))
        for name in SPECIAL_TOKEN_NAMES
        if getattr(tokenizer, name, None) is not None
    }
    template = getattr(tokenizer, "chat_template", None)
    name = str(getattr(tokenizer, "name_or_path", ""))
    return FastTokenizer(backend, template if isinstance(template, str) else None, special, name)


def _token_string(value: Any) -> str | None:
    """A special token as tokenizer_config.json writes it: a string or ``{"content": ...}``."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return str(value["content"])
    return None


def _chat_template(folder: Path, config: dict[str, Any]) -> str | None:
    path = folder / CHAT_TEMPLATE_FILE
    if path.is_file():
        return path.read_text(encoding="utf-8")
    template = config.get("chat_template")
    if isinstance(template, list):  # named templates: the "default" one
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    return template if isinstance(template, str) else None


def load_from_folder(folder: Path, name: str = "") -> FastTokenizer:
    """Read ``tokenizer.json``, the tokenizer config and the chat template from ``folder``."""
    try:
        definition = (folder / TOKENIZER_FILE).read_bytes()
        backend = Tokenizer.from_buffer(definition)
    except Exception as err:  # the Rust side raises plain Exception for a bad file
        raise UserError(f"cannot read {folder / TOKENIZER_FILE}: {err}") from None
    config_path = folder / TOKENIZER_CONFIG_FILE
    config: dict[str, Any] = {}
    if config_path.is_file():
        try:
            loaded = json.loads(config_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise UserError(f"{config_path} is not valid JSON: {err}") from None
        config = loaded if isinstance(loaded, dict) else {}
    special = {
        key: token
        for key in SPECIAL_TOKEN_NAMES
        if (token := _token_string(config.get(key))) is not None
    }
    digest = hashlib.sha1(definition).hexdigest()
    template = _chat_template(folder, config)
    return FastTokenizer(backend, template, special, name or str(folder), digest)


def _hub_folder(name: str) -> Path | None:
    """The local snapshot folder holding ``name``'s tokenizer files (downloaded if need be)."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        return None
    try:
        path = Path(hf_hub_download(name, TOKENIZER_FILE))
    except Exception:  # not on the Hub, offline, gated: the caller falls back
        return None
    for optional in (TOKENIZER_CONFIG_FILE, CHAT_TEMPLATE_FILE):
        with contextlib.suppress(Exception):  # optional files: absent is fine
            hf_hub_download(name, optional)
    return path.parent


def load_fast_tokenizer(name_or_path: str) -> FastTokenizer:
    """The tokenizer of a model folder or Hub name, without transformers where possible."""
    from mind_nemo.servers.embedded_model import EMBEDDED_NAME, embedded_tokenizer_folder

    if name_or_path == EMBEDDED_NAME:
        folder = embedded_tokenizer_folder()
        return load_from_folder(folder, EMBEDDED_NAME)
    local = Path(name_or_path).expanduser()
    if local.is_dir() and (local / TOKENIZER_FILE).is_file():
        return load_from_folder(local, name_or_path)
    if not local.exists():
        hub = _hub_folder(name_or_path)
        if hub is not None:
            return load_from_folder(hub, name_or_path)
    log.info("no %s for %s: loading it with transformers", TOKENIZER_FILE, name_or_path)
    from mind_nemo.servers.embedded_model import load_tokenizer

    return as_fast(load_tokenizer(name_or_path))
