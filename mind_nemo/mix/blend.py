"""The ratio math of a mix, and the blend files Megatron-LM and NeMo read.

Shares are by tokens, as in the paper (50B continued-pretraining tokens at 2:1 math to general;
raw and conversations 1:1 inside math). A source's share is its group's weight over all group
weights, times its own weight over its group's weights. Its target is ``share x total_tokens``;
``epochs = target / tokens available`` (above 1: the source is repeated). Megatron draws every
training sample from source *i* with probability ``weight_i``, and a sample is a fixed number of
tokens, so the blend weights are the shares themselves; Megatron's ``GPTDataset`` repeats a
source as often as its weight asks.

The blend also fixes what a consumer needs beside the weights, because their defaults do not
fit a small mix: the train/validation/test ``split`` (megatron-core cuts *every* source by the
same fractions, and a part that gets 0 documents of a source makes ``GPTDataset`` loop forever
while it sizes its epochs), ``--train-samples`` for a stated sequence length, and the tokenizer
the ids came from, in Megatron-LM's and NeMo's own argument names.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mind_nemo.core.errors import UserError
from mind_nemo.core.jsonl import write_atomic, write_json_atomic
from mind_nemo.core.megatron_split import (
    SPLIT_PARTS,
    active_parts,
    clean_split,
    empty_parts,
    nearest_safe_split,
    split_documents,
    split_values,
)
from mind_nemo.core.run_folder import RunFolder
from mind_nemo.mix.config import SourceConfig

#: Megatron-LM's legacy default ``--split``: what ``validate_args`` fills in when ``--data-path``
#: comes without one (``--data-args-path`` gets no default at all).
MEGATRON_DEFAULT_SPLIT = "969, 30, 1"
#: Sequence lengths ``blend.json`` always gives ``train_samples`` for (plus the mix's own).
COMMON_SEQ_LENGTHS = (1024, 2048, 4096, 8192)


@dataclass
class PlanRow:
    """One source in the plan."""

    name: str
    group: str
    prefix: str
    documents: int
    tokens: int
    #: Share of training tokens (the blend weight, normalised).
    share: float
    #: Share it would have if every source were read exactly once.
    natural_share: float
    target_tokens: float
    #: target / tokens: above 1 the source is upsampled (repeated).
    epochs: float


@dataclass
class SplitPlan:
    """The ``--split`` to print, and the documents of every source in each part under it."""

    #: As configured (``split=...``).
    requested: str
    #: What Megatron-LM ``--split`` and NeMo ``split=`` get: the requested one when every source
    #: has a document in each of its non-empty parts, else one resized so that it does.
    split: str
    #: Source -> documents per part (``None``: a 0-fraction part, which megatron-core skips).
    documents: dict[str, dict[str, int | None]] = field(default_factory=dict)
    #: Why ``split`` differs from ``requested`` (``None`` when it does not).
    resized_because: str | None = None


@dataclass
class Plan:
    total_tokens: float
    seq_length: int
    rows: list[PlanRow]
    split: SplitPlan | None = None

    @property
    def train_samples(self) -> int:
        return self.train_samples_for(self.seq_length)

    def train_samples_for(self, seq_length: int) -> int:
        """``--train-samples`` that spends ``total_tokens`` at this ``--seq-length``."""
        return math.ceil(self.total_tokens / seq_length)

    def train_samples_by_seq_length(self) -> dict[str, int]:
        lengths = sorted({*COMMON_SEQ_LENGTHS, self.seq_length})
        return {str(n): self.train_samples_for(n) for n in lengths}

    def to_dict(self) -> dict[str, Any]:
        return {
            "total_tokens": self.total_tokens,
            "seq_length": self.seq_length,
            "train_samples": self.train_samples,
            "sources": [asdict(r) for r in self.rows],
            "split": asdict(self.split) if self.split else None,
        }


def assign_groups(sources: dict[str, SourceConfig], groups: dict[str, float]) -> dict[str, str]:
    """Source -> group, checked before any work: every share must be reachable."""
    if not sources:
        raise UserError("the mix has no enabled source; enable one in sources")
    for name, weight in groups.items():
        if not weight > 0:
            raise UserError(f"groups.{name}={weight} must be > 0 (drop the group instead)")
    result = {}
    for name, src in sources.items():
        if not src.weight > 0:
            raise UserError(f"sources.{name}.weight={src.weight} must be > 0 (or enabled=false)")
        if not groups:
            result[name] = src.group or name
        elif src.group is None or src.group not in groups:
            raise UserError(
                f"sources.{name}.group={src.group!r} is not one of the groups "
                f"({', '.join(groups)}); set it, or add the group to groups"
            )
        else:
            result[name] = src.group
    empty = [g for g in groups if g not in result.values()]
    if empty:
        raise UserError(
            f"group {empty[0]!r} (weight {groups[empty[0]]:g}) has no enabled source, so its "
            "share cannot be met; enable a source in it or remove it from groups"
        )
    return result


def shares(
    sources: dict[str, SourceConfig], groups: dict[str, float], membership: dict[str, str]
) -> dict[str, float]:
    """Each source's share of the training tokens (they sum to 1)."""
    if groups:
        group_weight = dict(groups)
        within = {n: sources[n].weight for n in sources}
    else:  # every source is its own group; the source weight is the group weight
        group_weight = {membership[n]: 0.0 for n in sources}
        for n in sources:
            group_weight[membership[n]] += sources[n].weight
        within = {n: sources[n].weight for n in sources}
    total_group = sum(group_weight.values())
    in_group: dict[str, float] = {}
    for n, g in membership.items():
        in_group[g] = in_group.get(g, 0.0) + within[n]
    return {
        n: group_weight[membership[n]] / total_group * within[n] / in_group[membership[n]]
        for n in sources
    }


def plan_mix(
    sources: dict[str, SourceConfig],
    groups: dict[str, float],
    counts: dict[str, dict[str, Any]],
    total_tokens: float | None,
    max_epochs: float,
    seq_length: int,
    split: str | None = None,
) -> Plan:
    """Targets and epochs per source from measured token counts; refuse what cannot be met.

    With ``split`` the train/validation/test split is planned too (:func:`plan_split`); the
    ratio math alone does not need it."""
    membership = assign_groups(sources, groups)
    share = shares(sources, groups, membership)
    available = {n: int(counts[n]["tokens"]) for n in sources}
    for n, tokens in available.items():
        if tokens <= 0:
            raise UserError(f"source {n!r} is empty: it has no tokens to give its share")
    if total_tokens is None:  # the largest budget in which no source repeats
        total = min(available[n] / share[n] for n in sources)
    elif total_tokens > 0:
        total = float(total_tokens)
    else:
        raise UserError(f"total_tokens={total_tokens} must be > 0 (or null)")
    all_tokens = sum(available.values())
    rows = []
    for n in sources:
        target = share[n] * total
        epochs = target / available[n]
        if epochs > max_epochs:
            raise UserError(
                f"source {n!r} would be repeated {epochs:.1f} times (target "
                f"{_tokens(target)} tokens = {share[n]:.1%} of {_tokens(total)}, available "
                f"{_tokens(available[n])}), more than max_epochs={max_epochs:g}; add data, "
                "lower total_tokens or the source's share, or raise max_epochs"
            )
        rows.append(
            PlanRow(
                name=n,
                group=membership[n],
                prefix=str(counts[n]["prefix"]),
                documents=int(counts[n]["documents"]),
                tokens=available[n],
                share=share[n],
                natural_share=available[n] / all_tokens,
                target_tokens=target,
                epochs=epochs,
            )
        )
    planned = plan_split(split, {r.name: r.documents for r in rows}) if split else None
    return Plan(total, seq_length, rows, planned)


def _tokens(value: float) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= size:
            return f"{value / size:.2f}{unit}"
    return f"{value:.0f}"


# --------------------------------------------------------------------------- split


def plan_split(requested: str, documents: dict[str, int]) -> SplitPlan:
    """The ``--split`` to print: the requested one, or the least change that leaves no source
    with 0 documents in a built part (:func:`~mind_nemo.core.megatron_split.nearest_safe_split`);
    a source too small for any such split is refused.

    megatron-core cuts every dataset of a blend by the same fractions, so one small source
    decides: with ``969,30,1`` a source needs about 1,000 documents before its test part holds
    one."""
    cleaned = clean_split(requested)
    active = active_parts(requested)
    smallest = min(documents, key=lambda n: documents[n])
    if documents[smallest] < len(active):
        raise UserError(
            f"source {smallest!r} has {documents[smallest]} documents, too few for "
            f"split={cleaned} ({'/'.join(active)}: each part needs a document of every source, "
            "or megatron-core's GPTDataset never finishes building it); give it more documents, "
            "or set split=100:0:0 (training only, no validation or test)"
        )
    result = SplitPlan(requested=requested, split=cleaned)
    empty = empty_parts(cleaned, documents)
    if empty:
        resized = nearest_safe_split(requested, documents)
        if resized is None:  # only for sources a few documents above the refusal above
            raise UserError(
                f"no split close to {cleaned} gives every source a document in each part "
                f"(smallest source: {documents[smallest]} documents); set split=100:0:0 or add "
                "data"
            )
        result.split = resized
        first = empty[0]
        result.resized_because = (
            f"split={cleaned} gives source {first.source!r} ({first.documents} documents) 0 "
            f"{first.part} documents, on which megatron-core's GPTDataset would loop forever"
        )
    result.documents = {
        name: dict(zip(SPLIT_PARTS, split_documents(result.split, n), strict=True))
        for name, n in documents.items()
    }
    return result


# --------------------------------------------------------------------------- tokenizer


def consumer_tokenizer(tokenizer: Any, run_dir: Path) -> dict[str, Any]:
    """The tokenizer the ids came from, as Megatron-LM arguments and NeMo's
    ``get_nmt_tokenizer`` keywords (``None`` where that tool has no reader for it).

    ``embedded`` is a name only mind_nemo knows, so its files are saved to ``RUN/tokenizer``
    and named by path; a Hugging Face directory is named by its absolute path."""
    kind, name, spec = tokenizer.kind, str(tokenizer.name), tokenizer.spec
    megatron: list[str] | None = None
    nemo: dict[str, Any] | None = None
    note = None
    if kind == "huggingface":
        model = _hf_tokenizer_location(name, run_dir)
        megatron = ["--tokenizer-type", "HuggingFaceTokenizer", "--tokenizer-model", model]
        nemo = {"library": "huggingface", "model_name": model, "use_fast": True}
    elif kind == "sentencepiece":
        model = str(Path(name).expanduser().resolve())
        megatron = ["--tokenizer-type", "GPTSentencePieceTokenizer", "--tokenizer-model", model]
        nemo = {"library": "sentencepiece", "tokenizer_model": model}
    elif kind == "tiktoken" and "vocab_size" in spec:  # Megatron/NeMo's own tiktoken vocab
        from mind_nemo.mix.tiktoken_vocab import MEGATRON_PATTERNS

        vocab = str(Path(name).expanduser().resolve())
        pattern = next((k for k, v in MEGATRON_PATTERNS.items() if v == spec["pattern"]), None)
        if pattern is None:
            note = "Megatron-LM's TikTokenizer takes --tiktoken-pattern v1 or v2 only"
        else:
            megatron = [
                "--tokenizer-type", "TikTokenizer", "--tokenizer-model", vocab,
                "--tiktoken-pattern", pattern,
                "--tiktoken-num-special-tokens", str(len(spec["special_tokens"])),
                "--vocab-size", str(spec["vocab_size"]),
            ]  # fmt: skip
        nemo = {"library": "tiktoken", "vocab_file": vocab}
    else:
        note = (
            "neither Megatron-LM nor NeMo reads OpenAI tiktoken encodings; use a Hugging Face "
            "tokenizer or Megatron's tiktoken vocab.json for a mix you train there"
        )
    return {
        "type": kind,
        "name": name,
        "vocab_size": tokenizer.vocab_size,
        "eod": tokenizer.eod,
        "megatron_lm_args": megatron,
        "nemo": nemo,
        "note": note,
    }


def _hf_tokenizer_location(name: str, run_dir: Path) -> str:
    from mind_nemo.servers.embedded_model import EMBEDDED_NAME, load_embedded_tokenizer

    if name == EMBEDDED_NAME:
        target = run_dir / "tokenizer"
        if not (target / "tokenizer.json").is_file():
            load_embedded_tokenizer().save_pretrained(str(target))
        _portable_tokenizer_class(target / "tokenizer_config.json")
        return str(target.resolve())
    local = Path(name).expanduser()
    return str(local.resolve()) if local.exists() else name


def _portable_tokenizer_class(config_path: Path) -> None:
    """transformers 5 saves ``tokenizer_class: TokenizersBackend``, a class transformers 4
    lacks, and NeMo (``transformers<5``) then cannot load the folder. ``PreTrainedTokenizerFast``
    names the same tokenizer in both."""
    config = json.loads(config_path.read_text())
    if config.get("tokenizer_class") == "TokenizersBackend":
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
        write_atomic(config_path, json.dumps(config, indent=2, ensure_ascii=False) + "\n")


# --------------------------------------------------------------------------- files


def blend_lists(plan: Plan) -> list[str]:
    """``[w1, prefix1, w2, prefix2, ...]``: Megatron-LM ``--data-path`` and NeMo ``paths``."""
    out: list[str] = []
    for row in plan.rows:
        out += [f"{row.share:.10g}", str(Path(row.prefix).resolve())]
    return out


def write_blend(run_dir: Path, plan: Plan, tokenizer: Any = None) -> dict[str, Any]:
    """Write ``blend.json`` (both forms) and ``data_args.txt``; return the blend record.

    ``megatron_lm.command`` is what the run prints: ``--data-args-path`` with the split (which
    Megatron-LM only defaults for ``--data-path``), the sequence length ``--train-samples`` was
    computed for, and the tokenizer. ``nemo`` holds ``PreTrainingDataModule`` keywords."""
    flat = blend_lists(plan)
    data_args = " ".join(flat)
    split = plan.split or plan_split(
        MEGATRON_DEFAULT_SPLIT, {r.name: r.documents for r in plan.rows}
    )
    data_args_path = str(RunFolder(run_dir).data_args.resolve())
    tok = consumer_tokenizer(tokenizer, run_dir) if tokenizer is not None else None
    tok_args = " ".join((tok or {}).get("megatron_lm_args") or [])
    common = f"--split {split.split} --seq-length {plan.seq_length} "
    common += f"--train-samples {plan.train_samples}" + (f" {tok_args}" if tok_args else "")
    values = split_values(split.split)
    blend = {
        "weights": {r.name: r.share for r in plan.rows},
        "prefixes": {r.name: flat[2 * i + 1] for i, r in enumerate(plan.rows)},
        "megatron_lm": {
            "data_path": flat,
            "data_args_path": data_args_path,
            "split": split.split,
            "seq_length": plan.seq_length,
            "train_samples": plan.train_samples,
            "tokenizer_args": (tok or {}).get("megatron_lm_args"),
            "command": f"--data-args-path {data_args_path} {common}",
            "args": f"--data-path {data_args} {common}",
        },
        "nemo": {
            "paths": flat,
            "split": split.split,
            "splits": {p: v / sum(values) for p, v in zip(SPLIT_PARTS, values, strict=True)},
            "documents": split.documents,
            "seq_length": plan.seq_length,
            "tokenizer": (tok or {}).get("nemo"),
        },
        "split": asdict(split),
        "tokenizer": tok,
        "train_samples": plan.train_samples,
        "train_samples_by_seq_length": plan.train_samples_by_seq_length(),
        "seq_length": plan.seq_length,
        "total_tokens": plan.total_tokens,
    }
    write_atomic(RunFolder(run_dir).data_args, data_args + "\n")
    write_json_atomic(RunFolder(run_dir).blend, blend)
    return blend
