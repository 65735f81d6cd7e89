"""Tangent rules of layers that are the identity at inference, and of LayerScale.

Dropout and DropPath are the identity in evaluation mode; a tangent model is always
evaluated deterministically (its forward is the first-order Taylor expansion of the
evaluation-mode network).
"""

from __future__ import annotations

from timm.layers import DropPath, LayerScale
from torch import Tensor, nn

from privtangent.tangent.registry import Deltas, Tangent, add, register


@register(nn.Identity, nn.Dropout, DropPath)
def identity_rule(m: nn.Module, x: Tensor, xdot: Tangent, d: Deltas, **_):
    return x, xdot


@register(LayerScale)
def layer_scale_rule(m: LayerScale, x: Tensor, xdot: Tangent, d: Deltas, **_):
    """y = x ⊙ γ;  ẏ = ẋ ⊙ γ + x ⊙ Δγ."""
    y = x * m.gamma
    ydot = None if xdot is None else xdot * m.gamma
    if d["gamma"] is not None:
        ydot = add(ydot, x * d["gamma"])
    return y, ydot
