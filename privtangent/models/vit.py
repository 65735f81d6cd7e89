"""Building timm ViTs by name and loading local ``.safetensors`` checkpoints (never pickle).

timm's ``pretrained=True`` downloads from a hub, which this product never does: models
are built with ``pretrained=False`` and weights come from a local file.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import timm
import torch
from safetensors.torch import load_file
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from privtangent.errors import CheckpointError, ConfigError

PICKLE_SUFFIXES = {".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle"}


def build_vit(name: str, **kwargs: Any) -> VisionTransformer:
    """A timm VisionTransformer by name with ``pretrained=False``; kwargs go to timm."""
    if kwargs.pop("pretrained", False):
        raise ConfigError("pretrained=True downloads weights from a hub; give a local checkpoint instead")
    try:
        model = timm.create_model(name, pretrained=False, **kwargs)
    except RuntimeError as err:  # timm: "Unknown model (...)"
        raise ConfigError(f"model.name: {err}") from None
    except TypeError as err:
        raise ConfigError(f"model.kwargs: {err}") from None
    if not isinstance(model, VisionTransformer):
        raise ConfigError(f"model.name: {name!r} is a {type(model).__name__}, not a timm VisionTransformer")
    return model.eval()


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors from a ``.safetensors`` file; pickle-based formats are refused."""
    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise CheckpointError(
            f"{path}: pickle-based checkpoints ({path.suffix}) are never loaded (unpickling runs code). "
            "Convert it once, in a trusted environment, with "
            "safetensors.torch.save_file(torch.load(path, weights_only=True), 'model.safetensors')"
        )
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        return load_file(str(path))
    except Exception as err:  # safetensors raises its own error types for corrupt headers
        raise CheckpointError(f"{path} is not a valid .safetensors file: {err}") from None


def load_checkpoint(model: nn.Module, path: str | Path, allow_new_head: bool = True) -> dict[str, Any]:
    """Load a state dict into ``model``; returns what was done (for the report).

    Every tensor must match the model's shapes, except the classification head when
    ``allow_new_head``: a checkpoint with another number of classes keeps the model's
    (fresh) head, and the returned info says so.
    """
    state = read_safetensors(path)
    own = model.state_dict()
    unknown = sorted(set(state) - set(own))
    missing = sorted(set(own) - set(state))
    mismatched = sorted(k for k in set(state) & set(own) if state[k].shape != own[k].shape)
    head_replaced = False
    if allow_new_head and mismatched and all(k.startswith("head.") for k in mismatched):
        for k in mismatched:
            del state[k]
        head_replaced = True
        mismatched = []
    if unknown or missing or mismatched:
        detail = "; ".join(
            f"{label}: {', '.join(items[:4])}{' …' if len(items) > 4 else ''}"
            for label, items in (("unexpected", unknown), ("missing", missing),
                                 ("shape mismatch", [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in mismatched]))
            if items
        )
        raise CheckpointError(f"checkpoint {path} does not fit the model: {detail}")
    model.load_state_dict(state, strict=not head_replaced)
    return {"checkpoint": str(path), "head_replaced": head_replaced}


def replace_head(model: VisionTransformer, num_classes: int, seed: int = 0) -> VisionTransformer:
    """Give ``model`` a fresh head for ``num_classes`` (PyTorch default init, seeded)."""
    head = nn.Linear(model.embed_dim if isinstance(model.fc_norm, nn.Identity) else model.fc_norm.normalized_shape[0], num_classes)
    generator = torch.Generator().manual_seed(seed)
    bound = 1.0 / math.sqrt(head.in_features)
    with torch.no_grad():
        head.weight.uniform_(-bound, bound, generator=generator)
        head.bias.uniform_(-bound, bound, generator=generator)
    model.head = head.to(next(model.parameters()).dtype)
    model.num_classes = num_classes
    return model
