"""The frozen prefix of a ViT: its weights (the cache key) and its output (the cached features)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


def prefix_state(model: nn.Module, start: int) -> dict[str, Tensor]:
    """Weights of a ViT's frozen prefix (everything before block ``start``)."""
    keep = ("patch_embed.", "cls_token", "reg_token", "pos_embed", "norm_pre.")
    blocks = tuple(f"blocks.{i}." for i in range(start))
    return {k: v for k, v in model.state_dict().items() if k.startswith(keep) or k.startswith(blocks)}


def run_prefix(model: nn.Module, start: int, images: Tensor) -> Tensor:
    """Tokens entering block ``start`` (B, tokens, D), no tangent, no grad (timm's forward_features order)."""
    vit: Any = model  # a timm VisionTransformer: its submodules are not typed as callables
    with torch.no_grad():
        x = vit.norm_pre(vit.patch_drop(vit._pos_embed(vit.patch_embed(images))))
        for block in vit.blocks[:start]:
            x = block(x)
    return x
