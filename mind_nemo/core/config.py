"""One way to register, check and read a stage's typed config.

Each stage's ``config.py`` defines its dataclasses and calls :func:`register_schema` once at
import, so importing a stage's config module is all it takes for its YAML files to be validated.

Checks live with the dataclasses. A numeric or enum field is declared with :func:`setting`, which
records its allowed range next to its default; the dataclass's ``__post_init__`` calls
:func:`check_settings` (plus any check that relates two fields) and raises
:class:`ConfigValueError`. ``OmegaConf.to_object`` calls every dataclass constructor, so the same
checks run for a composed Hydra config and for a config built in Python.

A nested dataclass does not know where it sits (``engine`` of a synthesize config, or
``judge.server`` of a filter config), so its message starts with its own field name and
:func:`typed_config` adds the path: it finds the innermost dataclass node whose constructor fails
and prefixes that node's full key. The result is one line such as
``engine.max_concurrent_requests=0: must be >= 1``.

Keys the schema does not have are refused too (:func:`unknown_keys`): Hydra's ``+key=value`` and
``++key=value`` add keys with the struct flag off, and ``OmegaConf.to_object`` then sets them as
stray attributes instead of failing, so a misspelt ``+limt=5`` would otherwise be ignored.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mind_nemo.core.errors import UserError

T = TypeVar("T")
#: Key of a field's :class:`Rule` in its ``dataclasses.field`` metadata.
RULE = "mind_nemo.rule"


class ConfigValueError(UserError, ValueError):
    """A config value outside its allowed range, raised by a dataclass's ``__post_init__``.

    A ``ValueError`` so :func:`typed_config` can place it (and OmegaConf passes it through), and a
    :class:`UserError` so code that builds a config in Python gets the same one-line error.
    """


def _number(bound: float) -> str:
    return f"{bound:g}" if isinstance(bound, float) else str(bound)


@dataclasses.dataclass(frozen=True)
class Rule:
    """What values a setting allows: finite numbers within bounds (inclusive ``ge``/``le``,
    exclusive ``gt``/``lt``) or a set of ``choices``. ``None`` passes every rule (optional
    settings mean "unset")."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[str, ...] | None = None

    def allows(self, value: Any) -> bool:
        if self.choices is not None:
            return value in self.choices
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            return False
        return not (
            (self.ge is not None and value < self.ge)
            or (self.gt is not None and value <= self.gt)
            or (self.le is not None and value > self.le)
            or (self.lt is not None and value >= self.lt)
        )

    def describe(self) -> str:
        """The allowed range in words: ``>= 1``, ``between 0 and 1``, ``in (0, 1]``, ..."""
        if self.choices is not None:
            return f"one of: {', '.join(self.choices)}"
        return f"{self._bounds()} (a finite number)"

    def _bounds(self) -> str:
        low = (self.ge, "[") if self.ge is not None else (self.gt, "(")
        high = (self.le, "]") if self.le is not None else (self.lt, ")")
        if low[0] is not None and high[0] is not None:
            if (low[1], high[1]) == ("[", "]"):
                return f"between {_number(low[0])} and {_number(high[0])}"
            return f"in {low[1]}{_number(low[0])}, {_number(high[0])}{high[1]}"
        if low[0] is not None:
            return f"{'>=' if low[1] == '[' else '>'} {_number(low[0])}"
        assert high[0] is not None, "a Rule needs a bound or choices"
        return f"{'<=' if high[1] == ']' else '<'} {_number(high[0])}"


def setting(
    default: Any = MISSING,
    *,
    factory: Callable[[], Any] | None = None,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: tuple[str, ...] | None = None,
) -> Any:
    """A dataclass field with its allowed range, e.g. ``max_retries: int = setting(6, ge=0)``."""
    rule = Rule(ge=ge, gt=gt, le=le, lt=lt, choices=choices)
    metadata = {RULE: rule}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def bad_value(key: str, value: Any, why: str) -> ConfigValueError:
    """The one-line error for ``key`` (relative to its dataclass): ``key=value: why``."""
    return ConfigValueError(f"{key}={value!r}: {why}")


class Checked:
    """Base of every config dataclass: constructing one checks each field declared with
    :func:`setting`. A dataclass with checks across fields overrides ``__post_init__`` and calls
    ``super().__post_init__()`` first."""

    def __post_init__(self) -> None:
        check_settings(self)


def check_settings(obj: Any) -> None:
    """Check every field of the dataclass ``obj`` declared with :func:`setting`."""
    for f in dataclasses.fields(obj):
        rule: Rule | None = f.metadata.get(RULE)
        value = getattr(obj, f.name)
        if rule is None or value is None or value == MISSING:
            continue
        if not rule.allows(value):
            raise bad_value(f.name, value, f"must be {rule.describe()}")


def rules(schema: type, prefix: str = "") -> dict[str, Rule]:
    """Every checked setting under ``schema``, by full key (nested dataclasses followed)."""
    found: dict[str, Rule] = {}
    hints = typing.get_type_hints(schema)
    for f in dataclasses.fields(schema):
        key = f"{prefix}{f.name}"
        if RULE in f.metadata:
            found[key] = f.metadata[RULE]
        hint = hints[f.name]  # a dataclass, or an optional one; not the values of a mapping
        union = typing.get_origin(hint) in (typing.Union, types.UnionType)
        for candidate in typing.get_args(hint) if union else (hint,):
            if dataclasses.is_dataclass(candidate) and isinstance(candidate, type):
                found.update(rules(candidate, f"{key}."))
    return found


def register_schema(name: str, schema: type) -> None:
    """Put ``schema`` in Hydra's ConfigStore under ``name`` (the primary YAMLs' defaults entry)."""
    ConfigStore.instance().store(name=name, node=schema)


def _schema_of(node: DictConfig) -> type | None:
    object_type = OmegaConf.get_type(node)
    return object_type if dataclasses.is_dataclass(object_type) else None


def _children(node: DictConfig | ListConfig) -> list[tuple[str, Any]]:
    if node._is_none() or node._is_missing() or node._is_interpolation():
        return []
    if isinstance(node, ListConfig):
        return [(str(i), node._get_node(i)) for i in range(len(node))]
    return [(str(k), node._get_node(k)) for k in node]


def unknown_keys(cfg: DictConfig | ListConfig, prefix: str = "") -> list[str]:
    """Messages for keys under a dataclass node that the dataclass does not declare."""
    found: list[str] = []
    schema = _schema_of(cfg) if isinstance(cfg, DictConfig) else None
    known = [f.name for f in dataclasses.fields(schema)] if schema else None
    for key, child in _children(cfg):
        if known is not None and key not in known:
            near = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean '{near[0]}'?" if near else ""
            where = f" ({prefix}{key})" if prefix else ""
            found.append(f"Key '{key}' not in '{schema.__name__}'{where}{hint}")  # type: ignore[union-attr]
        elif isinstance(child, DictConfig | ListConfig):
            found.extend(unknown_keys(child, f"{prefix}{key}."))
    return found


def first_bad_value(cfg: DictConfig | ListConfig, prefix: str = "") -> str | None:
    """The innermost dataclass node whose own checks fail, as ``full.key=value: why``.

    Nodes that cannot be built yet (a ``???`` value, an interpolation to one) are skipped: the
    stage reports those itself, once it has filled in what it derives.
    """
    for key, child in _children(cfg):
        if isinstance(child, DictConfig | ListConfig):
            found = first_bad_value(child, f"{prefix}{key}.")
            if found:
                return found
    if isinstance(cfg, DictConfig) and _schema_of(cfg) and not cfg._is_none():
        try:
            OmegaConf.to_object(cfg)
        except OmegaConfBaseException:
            return None
        except (ValueError, TypeError) as err:  # a dataclass's __post_init__ check
            return f"{prefix}{err}"
    return None


def typed_config(raw: DictConfig | Any, schema: type[T]) -> T:
    """The ``schema`` instance behind a Hydra config; an unknown key or bad value is a UserError."""
    if isinstance(raw, DictConfig) and (unknown := unknown_keys(raw)):
        raise UserError(unknown[0])
    try:
        value = OmegaConf.to_object(raw) if isinstance(raw, DictConfig) else raw
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", "") or ""
        message = str(err).splitlines()[0]
        raise UserError(f"bad config value{f' at {key}' if key else ''}: {message}") from None
    except (ValueError, TypeError) as err:  # raised by a dataclass's own __post_init__ check
        raise UserError(first_bad_value(raw) or str(err)) from None
    if not isinstance(value, schema):
        raise UserError(
            f"the config is a {type(value).__name__}, expected {schema.__name__}: "
            "is the stage's schema missing from its YAML defaults list?"
        )
    return value
