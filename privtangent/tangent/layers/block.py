"""Tangent rule of a pre-norm transformer block, ``TangentBlock``:

    x₁ = x + LS₁(Attn(LN₁(x)))        x₂ = x₁ + LS₂(MLP(LN₂(x₁)))

Residual connections add tangents. With ``cls_only=True`` only the CLS row is carried past
the attention (keys/values still see every token): exact for the last block of a
token-pooled ViT.
"""

from __future__ import annotations

from timm.models.vision_transformer import Block
from torch import Tensor

from privtangent.tangent.registry import Deltas, Tangent, add, register, tangent_forward


@register(Block)
def block_rule(
    m: Block, x: Tensor, xdot: Tangent, d: Deltas, *, cls_only: bool = False, **_
) -> tuple[Tensor, Tangent]:
    h, hdot = tangent_forward(m.norm1, x, xdot, d.child("norm1"))
    a, adot = tangent_forward(m.attn, h, hdot, d.child("attn"), cls_only=cls_only)
    a, adot = tangent_forward(m.ls1, a, adot, d.child("ls1"))
    a, adot = tangent_forward(m.drop_path1, a, adot, d.child("drop_path1"))
    if cls_only:
        x, xdot = x[:, :1], None if xdot is None else xdot[:, :1]
    x, xdot = x + a, add(xdot, adot)

    h, hdot = tangent_forward(m.norm2, x, xdot, d.child("norm2"))
    h, hdot = tangent_forward(m.mlp, h, hdot, d.child("mlp"))
    h, hdot = tangent_forward(m.ls2, h, hdot, d.child("ls2"))
    h, hdot = tangent_forward(m.drop_path2, h, hdot, d.child("drop_path2"))
    return x + h, add(xdot, hdot)
