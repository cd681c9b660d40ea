"""Property: whatever a user types, validation ends in a valid config or one line, never a crash.

Random command lines are drawn from each stage's schema: checked settings (from
:func:`mind_nemo.core.config.rules`) with values inside, outside and of the wrong type, and keys
the schema does not have, with and without ``+``/``++``. Each goes through the same two checks a
real command line meets, in-process: :func:`mind_nemo.core.cli.checked_overrides` (what runs
before Hydra) and :func:`mind_nemo.core.config.typed_config` (what the stage runs). The outcome is
either a config whose every checked setting is in range, or a single-line error; and a value we
know is out of range, or a key we know is unknown, is never accepted.
"""

from __future__ import annotations

import importlib
import string
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mind_nemo.core.cli import checked_overrides, compose_config
from mind_nemo.core.config import Rule, rules, typed_config
from mind_nemo.core.errors import UserError

#: Stage -> (schema, the overrides a user always gives).
STAGES = {
    "synthesize": ("mind_nemo.synthesize.config:SynthesizeConfig", ["+style=debate"]),
    "filter": ("mind_nemo.filter.config:FilterStageConfig", ["run_dir=/r"]),
    "mix": ("mind_nemo.mix.config:MixConfig", []),
    "pretrain": ("mind_nemo.pretrain.config:PretrainConfig", []),
    "evaluate": ("mind_nemo.evaluate.config:EvaluateConfig", ["model.path=embedded"]),
    "submit": ("mind_nemo.submit.config:SubmitConfig", ["experiment=quickstart"]),
}


def schema_of(stage: str) -> type:
    module, name = STAGES[stage][0].split(":")
    return getattr(importlib.import_module(module), name)


#: Checked keys reachable from the command line without first setting something else: evaluate's
#: ``server`` is null until ``server=NAME`` chooses one.
RULES = {
    stage: {k: r for k, r in rules(schema_of(stage)).items() if not k.startswith("server.")}
    if stage == "evaluate"
    else rules(schema_of(stage))
    for stage in STAGES
}
NONSENSE = ["abc", "[1,2]", "{a: 1}", "true", "null", "nan", "inf", "-inf", "1e400", "''", "-0"]
WORD = st.text(string.ascii_lowercase + "_", min_size=1, max_size=12)


@dataclass
class Override:
    text: str
    #: The key this sets, and whether we know the value (or the key) must be refused.
    key: str | None
    bad: bool


def _outside(rule: Rule, draw: st.DrawFn) -> str:
    """A value the rule refuses: a word not among the choices, or a number past a bound."""
    if rule.choices is not None:
        return draw(WORD.filter(lambda w: w not in rule.choices))
    step = draw(st.integers(0, 10**6))
    candidates = []
    if rule.ge is not None:
        candidates.append(rule.ge - 1 - step)
    if rule.gt is not None:
        candidates.append(rule.gt - step)
    if rule.le is not None:
        candidates.append(rule.le + 1 + step)
    if rule.lt is not None:
        candidates.append(rule.lt + step)
    return str(draw(st.sampled_from(candidates)))


def _inside(rule: Rule, draw: st.DrawFn) -> str:
    """A value that may well be allowed (whether it is accepted depends on other settings)."""
    if rule.choices is not None:
        return draw(st.sampled_from(rule.choices))
    low = next((b for b in (rule.ge, rule.gt) if b is not None), 0)
    high = next((b for b in (rule.le, rule.lt) if b is not None), low + 1000)
    return str(draw(st.sampled_from([low, high, int(low) + 1, (low + high) / 2])))


@st.composite
def command_lines(draw: st.DrawFn) -> tuple[str, list[Override]]:
    stage = draw(st.sampled_from(sorted(STAGES)))
    keys = sorted(RULES[stage])
    overrides = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["outside", "inside", "nonsense", "unknown"]))
        plus = draw(st.sampled_from(["", "+", "++"]))
        if kind == "unknown":
            parent = draw(
                st.sampled_from(["", *{k.rsplit(".", 1)[0] + "." for k in keys if "." in k}])
            )
            word = draw(WORD.filter(lambda w, p=parent: f"{p}{w}" not in RULES[stage]))
            name = f"{parent}zz_{word}"  # zz_: no field of any schema starts so
            overrides.append(Override(f"{plus}{name}=1", None, True))
            continue
        key = draw(st.sampled_from(keys))
        rule = RULES[stage][key]
        if kind == "outside":
            overrides.append(Override(f"{plus}{key}={_outside(rule, draw)}", key, True))
        elif kind == "inside":
            overrides.append(Override(f"{plus}{key}={_inside(rule, draw)}", key, False))
        else:
            overrides.append(Override(f"{plus}{key}={draw(st.sampled_from(NONSENSE))}", key, False))
    return stage, overrides


def _value(obj: object, key: str) -> object:
    for part in key.split("."):
        obj = getattr(obj, part) if obj is not None else None
    return obj


@pytest.mark.filterwarnings("ignore")
@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(command_lines())
def test_validation_accepts_a_valid_config_or_refuses_in_one_line(case):
    stage, overrides = case
    schema = schema_of(stage)
    args, error = checked_overrides(stage, [*STAGES[stage][1], *(o.text for o in overrides)])
    if error is None:
        try:
            raw = compose_config(stage, args)
            if stage == "pretrain":
                from mind_nemo.pretrain.config import settle_base_checkpoint

                settle_base_checkpoint(raw)
            cfg = typed_config(raw, schema)
        except UserError as err:
            error = str(err)
        else:
            for key, rule in RULES[stage].items():  # accepted means every setting is in range
                value = _value(cfg, key)
                assert value is None or rule.allows(value), (key, value)
    # The last word on a key decides; a bad value or unknown key in it must be refused.
    last: dict[str, Override] = {}
    for o in overrides:
        last[o.key or o.text] = o
    if any(o.bad for o in last.values()):
        assert error is not None, [o.text for o in overrides]
    if error is not None:
        assert error.strip() and "\n" not in error and "Traceback" not in error
