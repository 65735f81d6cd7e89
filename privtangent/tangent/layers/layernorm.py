"""Tangent rule of LayerNorm (paper eqs. 9–10).

With x̂ = (x − E[x]) / s, s = √(Var[x] + eps) and ẋ_c = ẋ − E[ẋ]:

    d x̂ = (ẋ_c − x̂ · E[x̂ ẋ_c]) / s                       (input-tangent term, eq. 10)
    LN_lin(x) = LN(x) + Δγ ⊙ x̂ + Δβ + γ ⊙ d x̂            (eq. 9)

The paper writes Var[x]; we keep the layer's eps so the tangent is the exact derivative of
the primal that is actually computed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from privtangent.tangent.registry import Deltas, Tangent, add, expand_like, register


def layer_norm_tangent(xhat: Tensor, rstd: Tensor, xdot: Tangent, weight: Tangent, dweight: Tangent,
                       dbias: Tangent) -> Tangent:
    """ẏ = γ ⊙ d x̂ + Δγ ⊙ x̂ + Δβ (eqs. 9–10), from the normalized input x̂ and 1/s (which may
    come from a cache)."""
    ydot = None
    if xdot is not None:
        xdot_c = xdot - xdot.mean(-1, keepdim=True)
        xhat_dot = (xdot_c - xhat * (xhat * xdot_c).mean(-1, keepdim=True)) * rstd
        ydot = xhat_dot if weight is None else xhat_dot * weight
    if dweight is not None:
        ydot = add(ydot, xhat * dweight)
    if dbias is not None:
        ydot = add(ydot, dbias) if ydot is not None else expand_like(dbias, xhat)
    return ydot


def layer_norm_jvp(
    x: Tensor,
    xdot: Tangent,
    weight: Tangent,
    bias: Tangent,
    dweight: Tangent,
    dbias: Tangent,
    eps: float,
) -> tuple[Tensor, Tangent]:
    """(y, ẏ) of LayerNorm over the last dimension along (ẋ, Δγ, Δβ)."""
    y = F.layer_norm(x, x.shape[-1:], weight, bias, eps)
    if xdot is None and dweight is None and dbias is None:
        return y, None
    centered = x - x.mean(-1, keepdim=True)
    rstd = torch.rsqrt(centered.pow(2).mean(-1, keepdim=True) + eps)
    return y, layer_norm_tangent(centered * rstd, rstd, xdot, weight, dweight, dbias)


@register(nn.LayerNorm)
def layer_norm_rule(m: nn.LayerNorm, x: Tensor, xdot: Tangent, d: Deltas, **_):
    if len(m.normalized_shape) != 1:
        raise ValueError("LayerNorm tangent rule supports normalization over the last dim only")
    return layer_norm_jvp(x, xdot, m.weight, m.bias, d["weight"], d["bias"], m.eps)
