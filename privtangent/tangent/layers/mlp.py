"""Tangent rule of timm's two-layer MLP: fc1 → activation → (norm) → fc2 (eqs. 11, 12)."""

from __future__ import annotations

from timm.layers import Mlp
from torch import Tensor

from privtangent.tangent.registry import Deltas, Tangent, register, tangent_forward


@register(Mlp)
def mlp_rule(m: Mlp, x: Tensor, xdot: Tangent, d: Deltas, **_) -> tuple[Tensor, Tangent]:
    h, hdot = tangent_forward(m.fc1, x, xdot, d.child("fc1"))
    h, hdot = tangent_forward(m.act, h, hdot, d.child("act"))
    h, hdot = tangent_forward(m.norm, h, hdot, d.child("norm"))
    return tangent_forward(m.fc2, h, hdot, d.child("fc2"))
