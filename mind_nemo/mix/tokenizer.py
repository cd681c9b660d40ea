"""One interface over the three tokenizer families a Megatron run may use.

Continued pretraining must tokenize exactly as the model was pretrained: Hugging Face tokenizers
(a Hub name or a directory; the packaged SmolLM2 one by default), SentencePiece ``.model`` files,
and tiktoken (the paper's 7B used it): OpenAI ``.tiktoken`` files, encoding names such as
``cl100k_base``, and the Megatron/NeMo ``.json`` vocab list with its reserved special ids.

The main process resolves a :class:`TokenizerConfig` once into a :class:`TokenizerInfo`: vocabulary
size, end-of-document id, the token dtype Megatron will read, a fingerprint, and a small
picklable ``spec`` from which each worker process builds its own :class:`Encoder` without
importing transformers or Megatron. Text is encoded as plain text: special-token strings inside a
document are never turned into control tokens.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mind_nemo.errors import UserError

if TYPE_CHECKING:  # workers import this module; they need no Hydra
    from mind_nemo.mix.config import TokenizerConfig

log = logging.getLogger(__name__)

#: Megatron's split regexes for its tiktoken vocabularies (``--tiktoken-pattern v1|v2``).
MEGATRON_PATTERNS = {
    "v1": r"[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+",
    "v2": r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"
    r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+",
}
#: Megatron's reserved special tokens for tiktoken vocabularies (ids 0..6; ``</s>`` ends a doc).
MEGATRON_SPECIALS = ["<unk>", "<s>", "</s>", "<mask>", "<pad>", "<cls>", "<sep>"]
#: Short names for OpenAI patterns.
OPENAI_PATTERN_NAMES = {"cl100k": "cl100k_base", "o200k": "o200k_base", "r50k": "r50k_base"}
ENDOFTEXT = "<|endoftext|>"


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
        spec, vocab_size, default_eod, lookup = _tiktoken(name, cfg)
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
    from mind_nemo.embedded_model import load_tokenizer

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


def _tiktoken(name: str, cfg: TokenizerConfig) -> tuple[dict[str, Any], int, int | None, Callable]:
    import tiktoken

    path = Path(os.path.expanduser(name))
    if path.is_file() and path.suffix == ".json":
        spec = _megatron_vocab(path, cfg)
    elif path.is_file():
        spec = _tiktoken_file(path, cfg)
    elif name in tiktoken.list_encoding_names():
        try:
            enc = tiktoken.get_encoding(name)
        except Exception as err:  # network errors, hash mismatches
            raise UserError(
                f"cannot load tiktoken encoding {name!r} ({type(err).__name__}); tiktoken "
                "downloads it on first use: offline, pass a local .tiktoken file instead"
            ) from None
        spec = {"type": "tiktoken_named", "name": name, "content_hash": f"named:{name}"}
        specials = {ENDOFTEXT: enc.eot_token} if enc.eot_token is not None else {}
        return spec, enc.n_vocab, enc.eot_token, _tiktoken_lookup(enc, specials)
    else:
        raise UserError(
            f"tiktoken vocabulary not found: {name} (a .tiktoken file, a Megatron .json vocab, "
            f"or one of {', '.join(tiktoken.list_encoding_names())})"
        )
    enc = _tiktoken_encoding(spec)
    specials = spec["special_tokens"]
    vocab = int(spec.get("vocab_size") or enc.n_vocab)
    default = specials.get(spec.get("eod_token", ENDOFTEXT))
    return spec, vocab, default, _tiktoken_lookup(enc, specials)


def _tiktoken_lookup(enc: Any, specials: dict[str, int]) -> Callable[[str], int | None]:
    """Token string -> id: a special token, else a single ordinary token."""

    def lookup(token: str) -> int | None:
        if token in specials:
            return specials[token]
        try:
            return int(enc.encode_single_token(token.encode("utf-8")))
        except KeyError:
            return None

    return lookup


def _ranks_hash(ranks: dict[bytes, int], pattern: str, specials: dict[str, int]) -> str:
    digest = hashlib.sha256(pattern.encode())
    for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        digest.update(rank.to_bytes(4, "little") + token)
    digest.update(json.dumps(specials, sort_keys=True).encode())
    return digest.hexdigest()


def _openai_params(encoding: str, ranks: dict[bytes, int]) -> dict[str, Any]:
    """Pattern and special tokens of a named OpenAI encoding, with ``ranks`` read locally.

    tiktoken's constructors fetch the vocabulary from a URL; we run them with the loader swapped
    for one that returns the local ranks, so patterns and special ids are tiktoken's own.
    """
    from tiktoken_ext import openai_public as public

    saved = public.load_tiktoken_bpe, public.data_gym_to_mergeable_bpe_ranks
    public.load_tiktoken_bpe = lambda *a, **k: ranks
    public.data_gym_to_mergeable_bpe_ranks = lambda *a, **k: ranks
    try:
        params = public.ENCODING_CONSTRUCTORS[encoding]()
    finally:
        public.load_tiktoken_bpe, public.data_gym_to_mergeable_bpe_ranks = saved
    return params


def _pattern(cfg: TokenizerConfig, default: str) -> str:
    choice = cfg.pattern or default
    if choice in MEGATRON_PATTERNS:
        return MEGATRON_PATTERNS[choice]
    encoding = OPENAI_PATTERN_NAMES.get(choice, choice)
    import tiktoken

    if encoding in tiktoken.list_encoding_names():
        return str(_openai_params(encoding, {})["pat_str"])
    return choice  # a regex of the user's own


def _tiktoken_file(path: Path, cfg: TokenizerConfig) -> dict[str, Any]:
    """An OpenAI-format ``.tiktoken`` file (base64 token, rank per line)."""
    from tiktoken.load import load_tiktoken_bpe

    try:
        ranks = load_tiktoken_bpe(str(path))
    except Exception as err:  # malformed lines
        raise UserError(f"cannot read tiktoken file {path}: {err}") from None
    import tiktoken

    if path.stem in tiktoken.list_encoding_names() and cfg.pattern is None:
        params = _openai_params(path.stem, ranks)
        pattern, specials = str(params["pat_str"]), dict(params["special_tokens"])
    else:
        pattern = _pattern(cfg, "cl100k")
        specials = {ENDOFTEXT: max(ranks.values(), default=-1) + 1}
    return {
        "type": "tiktoken",
        "ranks": ranks,
        "pattern": pattern,
        "special_tokens": specials,
        "content_hash": _ranks_hash(ranks, pattern, specials),
    }


def _megatron_vocab(path: Path, cfg: TokenizerConfig) -> dict[str, Any]:
    """Megatron/NeMo tiktoken vocab: a JSON list of ``{rank, token_bytes, token_str}``.

    Ids are shifted by ``num_special_tokens`` (ids below are Megatron's reserved specials) and
    the list is cut at ``vocab_size``, exactly as Megatron's ``TikTokenizer`` loads it.
    """
    try:
        entries = json.loads(path.read_text())
        ranks = {
            base64.b64decode(e["token_bytes"]): int(e["rank"]) + cfg.num_special_tokens
            for e in entries[: cfg.vocab_size - cfg.num_special_tokens]
        }
    except (ValueError, KeyError, TypeError) as err:
        raise UserError(
            f"{path} is not a Megatron tiktoken vocab (a JSON list of rank/token_bytes): {err}"
        ) from None
    specials = {t: i for i, t in enumerate(MEGATRON_SPECIALS)}
    specials.update(
        {f"<SPECIAL_{i}>": i for i in range(len(MEGATRON_SPECIALS), cfg.num_special_tokens)}
    )
    pattern = _pattern(cfg, "v2")
    return {
        "type": "tiktoken",
        "ranks": ranks,
        "pattern": pattern,
        "special_tokens": specials,
        "vocab_size": cfg.vocab_size,
        "eod_token": "</s>",
        "content_hash": _ranks_hash(ranks, pattern, specials),
    }


def _tiktoken_encoding(spec: dict[str, Any]) -> Any:
    import tiktoken

    if spec["type"] == "tiktoken_named":
        return tiktoken.get_encoding(spec["name"])
    return tiktoken.Encoding(
        name="mind_nemo_mix",
        pat_str=spec["pattern"],
        mergeable_ranks=spec["ranks"],
        special_tokens=spec["special_tokens"],
    )


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
            lambda ids: slow.decode(list(ids)),
        )
    if kind == "sentencepiece":
        import sentencepiece

        sp = sentencepiece.SentencePieceProcessor(model_proto=spec["model"])
        return Encoder(
            lambda texts: sp.encode(texts, out_type=int, num_threads=threads),
            lambda ids: sp.decode([int(i) for i in ids]),
        )
    if kind in ("tiktoken", "tiktoken_named"):
        enc = _tiktoken_encoding(spec)
        return Encoder(
            lambda texts: [enc.encode_ordinary(t) for t in texts],
            lambda ids: enc.decode([int(i) for i in ids]),
        )
    raise ValueError(f"unknown tokenizer spec type {kind!r}")
