"""tiktoken vocabularies in the three forms a Megatron run meets them.

* An encoding name (``cl100k_base``, ``o200k_base``...): tiktoken downloads it once.
* An OpenAI-format ``.tiktoken`` file (base64 token, rank per line), e.g. a downloaded
  ``cl100k_base.tiktoken`` on a machine without internet. Named like a known encoding, it gets
  that encoding's split pattern and special ids from tiktoken itself.
* The Megatron/NeMo ``.json`` vocab list (``{rank, token_bytes, token_str}``) of Megatron's
  ``TikTokenizer``: ids shifted by ``num_special_tokens`` reserved specials, cut at ``vocab_size``,
  ``</s>`` (id 2) ends documents. The paper's 7B model used this kind of tokenizer.

Each resolves to a picklable spec (ranks, pattern, specials) that workers turn into a
``tiktoken.Encoding`` with :func:`tiktoken_encoding`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mind_nemo.core.errors import UserError

if TYPE_CHECKING:
    from mind_nemo.mix.config import TokenizerConfig

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


def resolve_tiktoken(
    name: str, cfg: TokenizerConfig
) -> tuple[dict[str, Any], int, int | None, Callable]:
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
    enc = tiktoken_encoding(spec)
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


def tiktoken_encoding(spec: dict[str, Any]) -> Any:
    import tiktoken

    if spec["type"] == "tiktoken_named":
        return tiktoken.get_encoding(spec["name"])
    return tiktoken.Encoding(
        name="mind_nemo_mix",
        pat_str=spec["pattern"],
        mergeable_ranks=spec["ranks"],
        special_tokens=spec["special_tokens"],
    )
