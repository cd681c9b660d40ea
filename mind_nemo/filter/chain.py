"""The per-row filter chain, cheapest and most decisive first.

Order: ``empty`` -> ``truncated`` -> leakage (may strip a preamble/closing) -> ``empty`` again
-> ``too_short`` (the paper's 50-token rule, on the text that remains) -> structure ->
degeneration -> faithfulness -> speaker normalisation. The first rejection wins, so every
rejected row has exactly one reason. The LLM judge and duplicate removal run after the chain,
in the stage (they need batching and all shards respectively).
"""

from __future__ import annotations

from mind_nemo.filter.config import FilterSettings
from mind_nemo.filter.rules.base import Filter, Item
from mind_nemo.filter.rules.degeneration import DegenerationFilter
from mind_nemo.filter.rules.faithfulness import FaithfulnessFilter
from mind_nemo.filter.rules.leakage import LeakageFilter
from mind_nemo.filter.rules.length import EmptyFilter, MinTokensFilter, TruncatedFilter
from mind_nemo.filter.rules.structure import NormalizeSpeakers, StructureFilter


def build_chain(
    settings: FilterSettings, instructions: dict[str, str] | None = None
) -> list[Filter]:
    """The enabled filters, in order; ``instructions`` maps style -> its prompt's words."""
    chain: list[Filter] = [EmptyFilter()]
    if settings.length.enabled and settings.length.drop_truncated:
        chain.append(TruncatedFilter())
    if settings.leakage.enabled:
        chain += [LeakageFilter(settings.leakage, instructions), EmptyFilter()]
    if settings.length.enabled:
        chain.append(MinTokensFilter(settings.length))
    if settings.structure.enabled:
        chain.append(StructureFilter(settings.structure))
    # Loops are always measured; with degeneration.enabled=false they are kept and noted.
    chain.append(DegenerationFilter(settings.degeneration, drop=settings.degeneration.enabled))
    if settings.faithfulness.enabled:
        chain.append(FaithfulnessFilter(settings.faithfulness))
    if settings.structure.normalize_speakers:
        chain.append(NormalizeSpeakers(settings.structure))
    return chain


def run_chain(chain: list[Filter], item: Item) -> str | None:
    """Apply ``chain`` to ``item`` (taking repairs); the reject reason, or None if kept."""
    for step in chain:
        verdict = step(item)
        if not verdict.keep:
            return verdict.reason or step.name
        item.apply(verdict)
    return None
