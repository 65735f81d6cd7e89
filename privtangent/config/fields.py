"""How one mapping of a config file becomes a validated, frozen dataclass.

- Unknown keys are refused, naming the nearest valid field (``privacy.epsilon: unknown field;
  did you mean 'epsilons'?``).
- Numbers written as strings are coerced by the field's type: YAML 1.1 reads ``1e-5`` (no dot)
  as the string "1e-5", so a float field accepts any string ``float()`` accepts.
- The dataclass validates itself (``__post_init__`` raises ``ConfigError("field: ...")``); the
  error is re-raised with the section's path in front (``privacy.delta: must be in (0, 1)``).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from privtangent.errors import ConfigError

T = TypeVar("T")


# names people write for a field, where spelling similarity would not find it
SYNONYMS = {"clip": "max_grad_norm", "clipping_norm": "max_grad_norm", "sigma": "noise_multiplier",
            "q": "sample_rate", "epsilon": "epsilons", "eps": "epsilons", "train_data": "train",
            "test_data": "test"}


def unknown_key_error(key: str, known: Iterable[str], where: str) -> ConfigError:
    known = sorted(known)
    close = [SYNONYMS[key]] if SYNONYMS.get(key) in known else difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ConfigError(f"{where}{key}: unknown field{hint} (known: {', '.join(known)})")


def _float_like(tp: Any) -> bool:
    """True for ``float`` and ``float | None`` (and unions containing float)."""
    if tp is float:
        return True
    return isinstance(tp, types.UnionType | type(typing.Union[int, str])) and float in typing.get_args(tp)


def _float_sequence(tp: Any) -> bool:
    args = typing.get_args(tp)
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        return any(_float_sequence(a) for a in args)
    return typing.get_origin(tp) in (tuple, list) and float in args


def _to_float(value: Any) -> Any:
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return value  # left for the dataclass to refuse with its own message
        return number if math.isfinite(number) else value
    return value


def coerce(tp: Any, value: Any) -> Any:
    """``value`` with numeric strings turned into floats where the field's type is float."""
    if _float_like(tp):
        return _to_float(value)
    if _float_sequence(tp) and isinstance(value, (list, tuple)):
        return tuple(_to_float(v) for v in value)
    if typing.get_origin(tp) is tuple and isinstance(value, list):
        return tuple(value)
    return value


def parse_section(cls: type[T], values: Any, where: str, base: T | None = None) -> T:
    """``values`` (a mapping from a file) as ``cls``, on top of ``base`` (default ``cls()``)."""
    prefix = f"{where}." if where else ""
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where}: must be a mapping of fields, got {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    for key in values:
        if key not in known:
            raise unknown_key_error(str(key), known, prefix)
    changes = {key: coerce(hints.get(key), value) for key, value in values.items()}
    try:
        if base is not None:
            return dataclasses.replace(base, **changes)  # type: ignore[type-var]
        return cls(**changes)
    except ConfigError as err:
        raise ConfigError(f"{prefix}{err}") from None
    except TypeError as err:  # a field of the wrong kind that the dataclass could not even take
        raise ConfigError(f"{where}: {err}") from None


__all__ = ["coerce", "parse_section", "unknown_key_error"]
