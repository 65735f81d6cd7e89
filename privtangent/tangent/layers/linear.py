"""Tangent rule of a fully-connected layer (paper eq. 11).

    FC_lin(x) = FC(x) + ΔW x + Δb + W ẋ
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from privtangent.tangent.registry import Deltas, Tangent, add, expand_like, register


def linear_jvp(
    x: Tensor, xdot: Tangent, weight: Tensor, bias: Tangent, dweight: Tangent, dbias: Tangent
) -> tuple[Tensor, Tangent]:
    """(y, ẏ) of y = x Wᵀ + b along (ẋ, ΔW, Δb)."""
    y = F.linear(x, weight, bias)
    ydot = None if xdot is None else F.linear(xdot, weight)
    if dweight is not None:
        ydot = add(ydot, F.linear(x, dweight))
    if dbias is not None:
        ydot = add(ydot, dbias) if ydot is not None else expand_like(dbias, y)
    return y, ydot


@register(nn.Linear)
def linear_rule(m: nn.Linear, x: Tensor, xdot: Tangent, d: Deltas, **_) -> tuple[Tensor, Tangent]:
    return linear_jvp(x, xdot, m.weight, m.bias, d["weight"], d["bias"])
