"""The ratio math of a mix, and the blend files Megatron-LM and NeMo read.

Shares are by tokens, as in the paper (50B continued-pretraining tokens at 2:1 math to general;
raw and conversations 1:1 inside math). A source's share is its group's weight over all group
weights, times its own weight over its group's weights. Its target is ``share x total_tokens``;
``epochs = target / tokens available`` (above 1: the source is repeated). Megatron draws every
training sample from source *i* with probability ``weight_i``, and a sample is a fixed number of
tokens, so the blend weights are the shares themselves; Megatron's ``GPTDataset`` repeats a
source as often as its weight asks.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mind_nemo.core.errors import UserError
from mind_nemo.core.jsonl import write_atomic, write_json_atomic
from mind_nemo.mix.config import SourceConfig


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
class Plan:
    total_tokens: float
    seq_length: int
    rows: list[PlanRow]

    @property
    def train_samples(self) -> int:
        return math.ceil(self.total_tokens / self.seq_length)

    def to_dict(self) -> dict[str, Any]:
        return {
            "total_tokens": self.total_tokens,
            "seq_length": self.seq_length,
            "train_samples": self.train_samples,
            "sources": [asdict(r) for r in self.rows],
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
) -> Plan:
    """Targets and epochs per source from measured token counts; refuse what cannot be met."""
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
    return Plan(total, seq_length, rows)


def _tokens(value: float) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= size:
            return f"{value / size:.2f}{unit}"
    return f"{value:.0f}"


def blend_lists(plan: Plan) -> list[str]:
    """``[w1, prefix1, w2, prefix2, ...]``: Megatron-LM ``--data-path`` and NeMo ``paths``."""
    out: list[str] = []
    for row in plan.rows:
        out += [f"{row.share:.10g}", str(Path(row.prefix).resolve())]
    return out


def write_blend(run_dir: Path, plan: Plan) -> dict[str, Any]:
    """Write ``blend.json`` (both forms) and ``data_args.txt``; return the blend record."""
    flat = blend_lists(plan)
    data_args = " ".join(flat)
    blend = {
        "weights": {r.name: r.share for r in plan.rows},
        "prefixes": {r.name: flat[2 * i + 1] for i, r in enumerate(plan.rows)},
        "megatron_lm": {
            "data_path": flat,
            "args": f"--data-path {data_args} --train-samples {plan.train_samples}",
            "data_args_path": str((run_dir / "data_args.txt").resolve()),
        },
        "nemo": {"paths": flat},
        "train_samples": plan.train_samples,
        "seq_length": plan.seq_length,
        "total_tokens": plan.total_tokens,
    }
    write_atomic(run_dir / "data_args.txt", data_args + "\n")
    write_json_atomic(run_dir / "blend.json", blend)
    return blend
