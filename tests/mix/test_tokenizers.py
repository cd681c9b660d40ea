"""Every tokenizer family gives the ids its own library (or Megatron) gives, and round-trips text.

No network: the SentencePiece model and the tiktoken vocabularies are trained here, from text,
in a fraction of a second. Each family also goes through a whole in-process mix run, so what is
checked is what lands in the .bin files.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from mind_nemo.core.errors import UserError
from mind_nemo.mix.config import MixConfig, SourceConfig, TokenizerConfig
from mind_nemo.mix.run import MixRun
from mind_nemo.mix.tiktoken_vocab import MEGATRON_PATTERNS
from mind_nemo.mix.tokenizer import build_encoder, resolve_tokenizer
from tests.mix.helpers import read_documents, text, write_jsonl

TEXTS = [text("tok", i) for i in range(12)] + ["  leading and trailing spaces  ", "x"]
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


@pytest.fixture(scope="module")
def ranks() -> dict[bytes, int]:
    """A small byte-level BPE vocabulary learned from our texts with tiktoken's own trainer."""
    from tiktoken._educational import bpe_train

    with contextlib.redirect_stdout(io.StringIO()):
        return bpe_train("\n".join(TEXTS * 3), 320, GPT2_PATTERN)


def dump_tiktoken(ranks: dict[bytes, int], path: Path) -> None:
    """OpenAI's .tiktoken format: base64 token and rank per line."""
    lines = (
        f"{base64.b64encode(t).decode()} {r}" for t, r in sorted(ranks.items(), key=lambda x: x[1])
    )
    path.write_text("\n".join(lines) + "\n")


def mix_roundtrip(tmp_path: Path, tokenizer: TokenizerConfig) -> tuple[list[list[int]], object]:
    """Mix TEXTS with ``tokenizer`` in-process; return the documents read back and the info."""
    corpus = write_jsonl(tmp_path / "corpus.jsonl", [{"text": t} for t in TEXTS])
    cfg = MixConfig(
        name="t",
        sources={"data": SourceConfig(path=str(corpus))},
        tokenizer=tokenizer,
        output_dir=str(tmp_path / "run"),
        workers=0,
        progress=False,
    )
    run = MixRun(cfg)
    run.run()
    _, docs = read_documents(tmp_path / "run" / "datasets" / "data_text_document")
    return docs, run.tokenizer


def check_roundtrip(docs: list[list[int]], info, decode) -> None:
    assert len(docs) == len(TEXTS)
    for doc, source in zip(docs, TEXTS, strict=True):
        assert doc[-1] == info.eod
        assert decode(doc[:-1]) == source


def test_huggingface_ids_equal_autotokenizer(embedded_tokenizer):
    info = resolve_tokenizer(TokenizerConfig())
    assert (info.kind, info.vocab_size, info.eod) == ("huggingface", 49152, 2)
    assert info.dtype == np.uint16
    enc = build_encoder(info.spec)
    expected = embedded_tokenizer(TEXTS, add_special_tokens=False)["input_ids"]
    assert enc.encode_batch(TEXTS) == expected
    assert [enc.decode(ids) for ids in expected] == TEXTS


def test_eod_can_be_named_by_token_or_id():
    assert resolve_tokenizer(TokenizerConfig(eod="<|endoftext|>")).eod == 0
    assert resolve_tokenizer(TokenizerConfig(eod="7")).eod == 7
    assert resolve_tokenizer(TokenizerConfig(append_eod=False)).eod is None
    with pytest.raises(UserError, match="tokenizer.eod='<nope>' is not a token"):
        resolve_tokenizer(TokenizerConfig(eod="<nope>"))


def test_sentencepiece_model_trained_here(tmp_path):
    import sentencepiece as spm

    (tmp_path / "train.txt").write_text("\n".join(TEXTS * 4))
    spm.SentencePieceTrainer.train(
        input=str(tmp_path / "train.txt"),
        model_prefix=str(tmp_path / "sp"),
        vocab_size=400,
        model_type="bpe",
        byte_fallback=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=False,
        minloglevel=2,
        character_coverage=1.0,
    )
    model = str(tmp_path / "sp.model")
    docs, info = mix_roundtrip(tmp_path, TokenizerConfig(name=model))
    sp = spm.SentencePieceProcessor(model_file=model)
    assert (info.kind, info.vocab_size, info.eod) == ("sentencepiece", 400, sp.eos_id())
    assert [d[:-1] for d in docs] == sp.encode(TEXTS, out_type=int)
    check_roundtrip(docs, info, sp.decode)


def test_tiktoken_file(tmp_path, ranks):
    import tiktoken

    path = tmp_path / "small.tiktoken"
    dump_tiktoken(ranks, path)
    docs, info = mix_roundtrip(tmp_path, TokenizerConfig(name=str(path), pattern=GPT2_PATTERN))
    assert (info.kind, info.eod, info.vocab_size) == ("tiktoken", 320, 321)
    enc = tiktoken.Encoding("t", pat_str=GPT2_PATTERN, mergeable_ranks=ranks, special_tokens={})
    assert [d[:-1] for d in docs] == [enc.encode_ordinary(t) for t in TEXTS]
    check_roundtrip(docs, info, enc.decode)


def test_named_tiktoken_file_takes_the_encodings_pattern_and_specials(tmp_path, ranks):
    from tiktoken_ext.openai_public import ENCODING_CONSTRUCTORS

    path = tmp_path / "cl100k_base.tiktoken"
    dump_tiktoken(ranks, path)
    info = resolve_tokenizer(TokenizerConfig(name=str(path)))
    assert info.eod == 100257  # cl100k's <|endoftext|>, not max rank + 1
    source = ENCODING_CONSTRUCTORS["cl100k_base"].__code__.co_consts
    assert info.spec["pattern"] in source  # the regex tiktoken itself uses for cl100k_base


def test_megatron_tiktoken_vocab_matches_megatron_core(tmp_path, ranks):
    from megatron.core.tokenizers.text.libraries.tiktoken_tokenizer import TikTokenTokenizer

    vocab = [
        {"rank": r, "token_bytes": base64.b64encode(t).decode(), "token_str": t.decode("latin-1")}
        for t, r in sorted(ranks.items(), key=lambda kv: kv[1])
    ]
    path = tmp_path / "tokenizer" / "vocab.json"
    path.parent.mkdir()
    path.write_text(json.dumps(vocab))
    size = 1000 + len(vocab)
    megatron = TikTokenTokenizer(str(path), pattern="v2", vocab_size=size, num_special_tokens=1000)
    docs, info = mix_roundtrip(tmp_path, TokenizerConfig(name=str(path), vocab_size=size))
    assert info.spec["pattern"] == MEGATRON_PATTERNS["v2"]
    assert (info.eod, info.vocab_size) == (megatron.eos_id, size) == (2, 1320)
    assert [d[:-1] for d in docs] == [megatron.text_to_ids(t) for t in TEXTS]
    check_roundtrip(docs, info, lambda ids: megatron.tokenizer.decode(list(ids)))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"type": "wordpiece"}, "type='wordpiece': must be one of"),  # refused when built
        ({"name": "/no/such/tokenizer"}, "tokenizer not found: /no/such/tokenizer"),
        ({"name": "/no/such.model"}, "SentencePiece model not found"),
        ({"type": "tiktoken", "name": "nope"}, "tiktoken vocabulary not found: nope"),
    ],
)
def test_unknown_tokenizers_are_one_line(settings, message):
    with pytest.raises(UserError, match=message) as err:
        resolve_tokenizer(TokenizerConfig(**settings))
    assert "\n" not in str(err.value)
