"""Registry of tangent rules: one closed-form JVP rule per layer type.

A tangent rule maps a frozen layer's input and input tangent (x, ẋ) to its output and
output tangent (y, ẏ), where ẏ = J_x·ẋ + J_w·Δw is the directional derivative of the
layer along (ẋ, Δw) (paper eq. 5). ``ẋ = None`` means a zero tangent: rules skip every term
it would multiply, so frozen blocks and the first linearized block cost no extra compute.

Adding a layer type is one small function decorated with ``@register(LayerType)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Optional

import torch
from torch import Tensor, nn

from privtangent.errors import PrivtangentError

Tangent = Optional[Tensor]
TangentRule = Callable[..., tuple[Tensor, Tangent]]

_RULES: dict[type, TangentRule] = {}


class UnsupportedLayerError(PrivtangentError, TypeError):
    """A layer inside the linearized part has no tangent rule."""


class Deltas:
    """Read-only view of Δw for one module: ``d["weight"]`` is the module's own Δ (or None).

    ``flat`` maps full base-model parameter names to tensors; ``child("attn")`` narrows the
    view to a sub-module. A missing entry means that parameter is not trained (Δ = 0).
    """

    __slots__ = ("_flat", "_prefix")

    def __init__(self, flat: Mapping[str, Tensor], prefix: str = "") -> None:
        self._flat = flat
        self._prefix = prefix

    def __getitem__(self, name: str) -> Tangent:
        return self._flat.get(self._prefix + name)

    def child(self, name: str) -> "Deltas":
        return Deltas(self._flat, f"{self._prefix}{name}.")


def register(*layer_types: type) -> Callable[[TangentRule], TangentRule]:
    """Class decorator-style registration: ``@register(nn.Linear)``."""

    def wrap(rule: TangentRule) -> TangentRule:
        for layer_type in layer_types:
            _RULES[layer_type] = rule
        return rule

    return wrap


def rule_for(module: nn.Module) -> TangentRule:
    for cls in type(module).__mro__:
        if cls in _RULES:
            return _RULES[cls]
    raise UnsupportedLayerError(
        f"no tangent rule for layer type {type(module).__module__}.{type(module).__name__}; "
        "privtangent linearizes timm VisionTransformer blocks built from Linear, LayerNorm, "
        "GELU, Attention, Mlp and LayerScale (register a rule in privtangent.tangent.layers)"
    )


def tangent_forward(
    module: nn.Module, x: Tensor, xdot: Tangent, deltas: Deltas, **options
) -> tuple[Tensor, Tangent]:
    """Apply ``module``'s tangent rule: returns (y, ẏ)."""
    return rule_for(module)(module, x, xdot, deltas, **options)


def add(a: Tangent, b: Tangent) -> Tangent:
    """Sum of two tangents where None means zero."""
    if a is None:
        return b
    if b is None:
        return a
    return a + b


def expand_like(t: Tangent, like: Tensor) -> Tangent:
    """A broadcastable tangent (e.g. Δb) made the shape of ``like``."""
    return None if t is None else t.expand_as(like)


def zeros_if_none(t: Tangent, like: Tensor) -> Tensor:
    return torch.zeros_like(like) if t is None else t
