"""One interface over the three tokenizer families a Megatron run may use.

Continued pretraining must tokenize exactly as the model was pretrained: Hugging Face tokenizers
(a Hub name or a directory; the packaged SmolLM2 one by default), SentencePiece ``.model`` files,
and tiktoken (the paper's 7B used it; see :mod:`mind_nemo.mix.tiktoken_vocab`).

The main process resolves a :class:`TokenizerConfig` once into a :class:`TokenizerInfo`: vocabulary
size, end-of-document id, the token dtype Megatron will read, a fingerprint, and a small
picklable ``spec`` from which each worker process builds its own :class:`Encoder` without
importing transformers or Megatron. Text is encoded as plain text: special-token strings inside a
document are never turned into control tokens.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from mind_nemo.core.errors import UserError
from mind_nemo.mix.tiktoken_vocab import resolve_tiktoken, tiktoken_encoding

if TYPE_CHECKING:  # workers import this module; they need no Hydra
    from mind_nemo.mix.config import TokenizerConfig


def token_dtype(vocab_size: int) -> np.dtype:
    """The id dtype Megatron picks for a vocabulary (``DType.optimal_dtype``)."""
    return np.dtype(np.uint16 if vocab_size < 65500 else np.int32)


@dataclass(frozen=True)
class TokenizerInfo:
    """What the run needs to know about its tokenizer, resolved once in the main process."""

    kind: str
    name: str
    vocab_size: int
    #: Appended after every document (``None`` when ``append_eod`` is off).
    eod: int | None
    #: Picklable recipe for :func:`build_encoder` (what worker processes receive).
    spec: dict[str, Any]
    #: Changes whenever the ids could change; finished outputs record it.
    fingerprint: str

    @property
    def dtype(self) -> np.dtype:
        return token_dtype(self.vocab_size)

    def describe(self) -> dict[str, Any]:
        return {
            "type": self.kind,
            "name": self.name,
            "vocab_size": self.vocab_size,
            "eod": self.eod,
            "dtype": self.dtype.name,
            "fingerprint": self.fingerprint,
        }


class Encoder:
    """Batch encode and decode; built from a spec in whichever process needs it."""

    def __init__(
        self,
        encode: Callable[[list[str]], list[list[int]]],
        decode: Callable[[Sequence[int]], str],
    ) -> None:
        self.encode_batch = encode
        self.decode = decode


# --------------------------------------------------------------------------- resolving (main)


def resolve_tokenizer(cfg: TokenizerConfig) -> TokenizerInfo:
    """Load and check the configured tokenizer; a mistake is one :class:`UserError` line."""
    from mind_nemo.mix.config import TOKENIZER_TYPES

    kind = str(cfg.type).lower()
    if kind not in TOKENIZER_TYPES:
        raise UserError(
            f"unknown tokenizer.type {cfg.type!r}; use one of {', '.join(TOKENIZER_TYPES)}"
        )
    name = str(cfg.name or "")
    if not name:
        raise UserError("tokenizer.name is empty; give a name, a directory or a model file")
    if kind == "auto":
        kind = _guess_kind(name)
    if kind == "sentencepiece":
        spec, vocab_size, default_eod, lookup = _sentencepiece(name)
    elif kind == "tiktoken":
        spec, vocab_size, default_eod, lookup = resolve_tiktoken(name, cfg)
    else:
        spec, vocab_size, default_eod, lookup = _huggingface(name)
    eod = _eod_id(cfg, default_eod, lookup, vocab_size) if cfg.append_eod else None
    digest = hashlib.sha256(
        json.dumps([spec.get("content_hash"), eod, kind], sort_keys=True).encode()
    ).hexdigest()[:16]
    return TokenizerInfo(kind, name, vocab_size, eod, spec, digest)


def _guess_kind(name: str) -> str:
    lower = name.lower()
    if lower.endswith(".model"):
        return "sentencepiece"
    if lower.endswith((".tiktoken", ".json")) and os.path.isfile(os.path.expanduser(name)):
        return "tiktoken"
    if not os.path.exists(os.path.expanduser(name)):
        import tiktoken

        if name in tiktoken.list_encoding_names():
            return "tiktoken"
    return "huggingface"


def _eod_id(
    cfg: TokenizerConfig, default: int | None, lookup: Callable[[str], int | None], vocab: int
) -> int:
    """The end-of-document id: configured (token or id), else the tokenizer's own end token."""
    if cfg.eod is None:
        if default is None:
            raise UserError(
                f"tokenizer {cfg.name!r} has no end-of-text token; set tokenizer.eod=TOKEN "
                "or tokenizer.append_eod=false"
            )
        return default
    text = str(cfg.eod)
    token_id = int(text) if text.lstrip("-").isdigit() else lookup(text)
    if token_id is None or not 0 <= token_id < vocab:
        raise UserError(f"tokenizer.eod={text!r} is not a token of {cfg.name!r}")
    return token_id


def _huggingface(name: str) -> tuple[dict[str, Any], int, int | None, Callable]:
    from mind_nemo.servers.embedded_model import load_tokenizer

    local = os.path.expanduser(name)
    if (os.path.isabs(local) or name.startswith((".", "~"))) and not os.path.exists(local):
        raise UserError(f"tokenizer not found: {name} (no such file or directory)")
    try:
        tok = load_tokenizer(name)
    except UserError:
        raise
    except Exception as err:  # transformers raises many types for a bad name or folder
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"cannot load tokenizer {name!r}: {first}") from None
    if getattr(tok, "is_fast", False) and hasattr(tok, "backend_tokenizer"):
        content = tok.backend_tokenizer.to_str()
        spec = {"type": "huggingface", "json": content}
    else:
        content = f"slow:{tok.name_or_path}:{len(tok)}"
        spec = {"type": "huggingface_slow", "name": str(tok.name_or_path)}
    spec["content_hash"] = hashlib.sha256(content.encode()).hexdigest()

    def lookup(token: str) -> int | None:
        token_id = tok.convert_tokens_to_ids(token)
        if token_id is None or tok.convert_ids_to_tokens(int(token_id)) != token:
            return None  # unknown tokens map to the unk id, which spells differently
        return int(token_id)

    return spec, len(tok), tok.eos_token_id, lookup


def _sentencepiece(name: str) -> tuple[dict[str, Any], int, int | None, Callable]:
    import sentencepiece

    path = Path(os.path.expanduser(name))
    if not path.is_file():
        raise UserError(f"SentencePiece model not found: {name}")
    proto = path.read_bytes()
    try:
        sp = sentencepiece.SentencePieceProcessor(model_proto=proto)
    except Exception as err:  # sentencepiece raises RuntimeError/OSError for a bad file
        raise UserError(f"cannot load SentencePiece model {name}: {err}") from None
    spec = {"type": "sentencepiece", "model": proto}
    spec["content_hash"] = hashlib.sha256(proto).hexdigest()

    def lookup(token: str) -> int | None:
        token_id = sp.piece_to_id(token)
        return token_id if sp.id_to_piece(token_id) == token else None

    eos = sp.eos_id()
    return spec, sp.get_piece_size(), eos if eos >= 0 else None, lookup


# --------------------------------------------------------------------------- building (workers)


def build_encoder(spec: dict[str, Any], threads: int = 1) -> Encoder:
    """An :class:`Encoder` from a spec; ``threads`` caps the library's own parallelism."""
    kind = spec["type"]
    if kind == "huggingface":
        from tokenizers import Tokenizer

        tok = Tokenizer.from_str(spec["json"])
        batch = getattr(tok, "encode_batch_fast", tok.encode_batch)  # fast: no char offsets

        def encode_hf(texts: list[str]) -> list[list[int]]:
            return [e.ids for e in batch(texts, add_special_tokens=False)]

        return Encoder(encode_hf, lambda ids: tok.decode(list(ids), skip_special_tokens=False))
    if kind == "huggingface_slow":
        from transformers import AutoTokenizer

        slow = AutoTokenizer.from_pretrained(spec["name"])
        return Encoder(
            lambda texts: slow(texts, add_special_tokens=False)["input_ids"],
            # decode() of one flat id list is a str; transformers types it str | list[str].
            lambda ids: cast(str, slow.decode(list(ids))),
        )
    if kind == "sentencepiece":
        import sentencepiece

        sp = sentencepiece.SentencePieceProcessor(model_proto=spec["model"])
        return Encoder(
            lambda texts: sp.encode(texts, out_type=int, num_threads=threads),
            lambda ids: sp.decode([int(i) for i in ids]),
        )
    if kind in ("tiktoken", "tiktoken_named"):
        enc = tiktoken_encoding(spec)
        return Encoder(
            lambda texts: [enc.encode_ordinary(t) for t in texts],
            lambda ids: enc.decode([int(i) for i in ids]),
        )
    raise ValueError(f"unknown tokenizer spec type {kind!r}")
