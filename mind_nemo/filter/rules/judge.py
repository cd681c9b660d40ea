"""Optional LLM judge: the MIND paper's four 1-5 criteria, scored by a model we ask.

The paper asked the generator to rate its own conversations on correctness, faithfulness,
information preservation and new knowledge, and found ~96% rated high quality: too lenient to
filter with. So by default the judge only *records* ``judge_scores`` on each kept row; with
``judge.drop=true`` a conversation with any score under ``judge.min_score`` is rejected
(``judge_low_score``). Requests go through the same :class:`OpenAICompatibleClient` as
synthesis (bounded concurrency, retries); a failed request or an answer we cannot parse is
counted (``judge_failed`` / ``judge_unparsed`` in the manifest) and the row is kept unless
``judge.drop_unscored`` is set.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mind_nemo.core.errors import UserError
from mind_nemo.filter.config import JudgeConfig
from mind_nemo.filter.rules.base import KEEP, Item, Verdict
from mind_nemo.servers.client import OpenAICompatibleClient, RequestFailed

CRITERIA: tuple[str, ...] = (
    "correctness",
    "faithfulness",
    "information_preservation",
    "new_knowledge",
)
BUILTIN_JUDGE_PROMPT = Path(__file__).resolve().parent / "judge_prompt.yaml"
_SCORE = {
    name: re.compile(rf"{name.replace('_', r'[ _-]?')}\W{{0,6}}([1-5])\b", re.I)
    for name in CRITERIA
}


def parse_scores(answer: str) -> dict[str, int] | None:
    """The four scores from a judge's answer (``name: N`` lines or a JSON object), or None."""
    try:
        data = json.loads(answer.strip().removeprefix("```json").strip("`\n "))
        if isinstance(data, dict) and all(isinstance(data.get(c), int) for c in CRITERIA):
            scores = {c: int(data[c]) for c in CRITERIA}
            return scores if all(1 <= v <= 5 for v in scores.values()) else None
    except ValueError:
        pass
    scores = {}
    for name, pattern in _SCORE.items():
        match = pattern.search(answer)
        if not match:
            return None
        scores[name] = int(match.group(1))
    return scores


def load_judge_prompt(path: str | None) -> str:
    source = Path(path) if path else BUILTIN_JUDGE_PROMPT
    try:
        data: Any = yaml.safe_load(source.read_text(encoding="utf-8"))
    except OSError as err:
        raise UserError(f"cannot read judge prompt {source}: {err.strerror}") from None
    except yaml.YAMLError:
        raise UserError(f"judge prompt {source} is not valid YAML") from None
    template = data.get("user") if isinstance(data, dict) else None
    if not isinstance(template, str) or "{conversation}" not in template:
        raise UserError(f"judge prompt {source} needs a 'user:' template with {{conversation}}")
    try:
        template.format(context="", conversation="")
    except (KeyError, IndexError, ValueError) as err:
        raise UserError(f"judge prompt {source}: bad placeholder {err}") from None
    return template


@dataclass
class JudgeStats:
    requests: int = 0
    scored: int = 0
    unparsed: int = 0
    failed: int = 0
    sums: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CRITERIA, 0))
    #: Conversations with every score >= min_score (the paper's "high quality" share).
    passing: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "scored": self.scored,
            "unparsed": self.unparsed,
            "failed": self.failed,
            "score_sums": dict(self.sums),
            "passing": self.passing,
        }


class Judge:
    """Scores items concurrently and turns scores into verdicts."""

    def __init__(self, cfg: JudgeConfig, client: OpenAICompatibleClient, template: str) -> None:
        self.cfg = cfg
        self.client = client
        self.template = template
        self.stats = JudgeStats()
        self._slots = asyncio.Semaphore(cfg.max_concurrent_requests)

    async def score(self, item: Item) -> None:
        """Record ``judge_scores`` (or ``judge_error``) in ``item.fields``."""
        prompt = self.template.format(context=item.context or "", conversation=item.text)
        sampling = {"temperature": self.cfg.temperature, "max_tokens": self.cfg.max_tokens}
        async with self._slots:
            self.stats.requests += 1
            try:
                completion = await self.client.complete(
                    [{"role": "user", "content": prompt}], sampling
                )
            except RequestFailed as err:
                self.stats.failed += 1
                item.fields["judge_error"] = err.reason
                return
        scores = parse_scores(completion.text)
        if scores is None:
            self.stats.unparsed += 1
            item.fields["judge_error"] = "unparsed"
            return
        self.stats.scored += 1
        for name, value in scores.items():
            self.stats.sums[name] += value
        if min(scores.values()) >= self.cfg.min_score:
            self.stats.passing += 1
        item.fields["judge_scores"] = scores

    async def score_all(self, items: list[Item]) -> None:
        await asyncio.gather(*(self.score(item) for item in items))

    def verdict(self, item: Item) -> Verdict:
        if not self.cfg.drop:
            return KEEP
        scores = item.fields.get("judge_scores")
        if scores is None:
            return Verdict.drop("judge_unscored") if self.cfg.drop_unscored else KEEP
        if min(scores.values()) < self.cfg.min_score:
            return Verdict.drop("judge_low_score")
        return KEEP
