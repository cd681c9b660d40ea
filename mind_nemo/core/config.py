"""One way to register and read a stage's typed config.

Each stage's ``config.py`` defines its dataclasses and calls :func:`register_schema` once at
import, so importing a stage's config module is all it takes for its YAML files to be validated.
:func:`typed_config` turns the composed Hydra config into the dataclass instance; the dataclass's
own ``__post_init__`` checks values, and any failure becomes one :class:`UserError` line naming the
key, before any work starts.
"""

from __future__ import annotations

from typing import Any, TypeVar

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mind_nemo.core.errors import UserError

T = TypeVar("T")


def register_schema(name: str, schema: type) -> None:
    """Put ``schema`` in Hydra's ConfigStore under ``name`` (the primary YAMLs' defaults entry)."""
    ConfigStore.instance().store(name=name, node=schema)


def typed_config(raw: DictConfig | Any, schema: type[T]) -> T:
    """The ``schema`` instance behind a Hydra config; a missing or bad value is a UserError."""
    try:
        value = OmegaConf.to_object(raw) if isinstance(raw, DictConfig) else raw
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", "") or ""
        message = str(err).splitlines()[0]
        raise UserError(f"bad config value{f' at {key}' if key else ''}: {message}") from None
    except (ValueError, TypeError) as err:  # raised by a dataclass's own __post_init__ check
        raise UserError(f"bad config value: {err}") from None
    if not isinstance(value, schema):
        raise UserError(
            f"the config is a {type(value).__name__}, expected {schema.__name__}: "
            "is the stage's schema missing from its YAML defaults list?"
        )
    return value
