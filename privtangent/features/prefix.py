"""The frozen prefix of a ViT: its weights (the cache key) and its output (the cached features)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def prefix_state(model: nn.Module, start: int) -> dict[str, Tensor]:
    """Weights of a ViT's frozen prefix (everything before block ``start``)."""
    keep = ("patch_embed.", "cls_token", "reg_token", "pos_embed", "norm_pre.")
    blocks = tuple(f"blocks.{i}." for i in range(start))
    return {k: v for k, v in model.state_dict().items() if k.startswith(keep) or k.startswith(blocks)}


def run_prefix(model: nn.Module, start: int, images: Tensor) -> Tensor:
    """Tokens entering block ``start`` (B, tokens, D), no tangent, no grad."""
    with torch.no_grad():
        x = model.norm_pre(model.patch_drop(model._pos_embed(model.patch_embed(images))))
        for block in model.blocks[:start]:
            x = block(x)
    return x
