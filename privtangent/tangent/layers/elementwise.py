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


def layer_scale_tangent(x: Tensor, xdot: Tangent, gamma: Tensor, dgamma: Tangent) -> Tangent:
    """ẏ = ẋ ⊙ γ + x ⊙ Δγ, from the primal input x (which may come from a cache)."""
    ydot = None if xdot is None else xdot * gamma
    return ydot if dgamma is None else add(ydot, x * dgamma)


@register(LayerScale)
def layer_scale_rule(m: LayerScale, x: Tensor, xdot: Tangent, d: Deltas, **_):
    """y = x ⊙ γ;  ẏ = ẋ ⊙ γ + x ⊙ Δγ."""
    return x * m.gamma, layer_scale_tangent(x, xdot, m.gamma, d["gamma"])
