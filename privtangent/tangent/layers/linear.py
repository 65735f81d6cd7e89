"""Tangent rule of a fully-connected layer (paper eq. 11).

    FC_lin(x) = FC(x) + ΔW x + Δb + W ẋ
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from privtangent.tangent.registry import Deltas, Tangent, add, register


def linear_tangent(x: Tensor, xdot: Tangent, weight: Tensor, dweight: Tangent, dbias: Tangent) -> Tangent:
    """ẏ = W ẋ + ΔW x + Δb, from the primal input x (which may come from a cache)."""
    ydot = None if xdot is None else F.linear(xdot, weight)
    if dweight is not None:
        ydot = add(ydot, F.linear(x, dweight))
    if dbias is not None:
        ydot = add(ydot, dbias) if ydot is not None else dbias.expand(*x.shape[:-1], -1)
    return ydot


def linear_jvp(
    x: Tensor, xdot: Tangent, weight: Tensor, bias: Tangent, dweight: Tangent, dbias: Tangent
) -> tuple[Tensor, Tangent]:
    """(y, ẏ) of y = x Wᵀ + b along (ẋ, ΔW, Δb)."""
    return F.linear(x, weight, bias), linear_tangent(x, xdot, weight, dweight, dbias)


@register(nn.Linear)
def linear_rule(m: nn.Linear, x: Tensor, xdot: Tangent, d: Deltas, **_) -> tuple[Tensor, Tangent]:
    return linear_jvp(x, xdot, m.weight, m.bias, d["weight"], d["bias"])
