"""Which pixels a model sees: timm's evaluation transform, resolved from the model's data config.

``resolve_transform(model)`` asks timm (``timm.data.resolve_data_config``) for the model's
interpolation, normalization and crop, and takes the input shape from the model itself
(``patch_embed``): a model built with ``img_size=32`` keeps the 224-px ``pretrained_cfg`` of its
architecture, but takes 32-px images. The caller may override the mean and std (a config's
``data.mean`` / ``data.std``). Without a model, the caller names the input size, the image is
resized whole (no centre crop) and normalized with mean = std = 0.5 unless told otherwise.
The transform itself is ``timm.data.create_transform(..., is_training=False)``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from timm.data import create_transform, resolve_data_config
from torch import Tensor, nn

from privtangent.errors import DataError

# without a model, the normalization privtangent has always used for image folders
DEFAULT_MEAN = 0.5
DEFAULT_STD = 0.5


@dataclass(frozen=True)
class ImageTransform:
    """timm's evaluation transform for one input shape, as plain values (hashable, printable)."""

    input_size: tuple[int, int, int]  # (channels, height, width)
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str
    crop_pct: float
    crop_mode: str

    @property
    def mode(self) -> str:
        """The PIL mode an image is converted to before the transform ("L" or "RGB")."""
        return "L" if self.input_size[0] == 1 else "RGB"

    def build(self) -> Callable[[Any], Tensor]:
        """PIL image → normalized float32 tensor (C, H, W)."""
        return create_transform(input_size=self.input_size, interpolation=self.interpolation, mean=self.mean,
                                std=self.std, crop_pct=self.crop_pct, crop_mode=self.crop_mode, is_training=False)

    def describe(self) -> dict[str, Any]:
        return asdict(self)

    def fingerprint(self) -> str:
        """A canonical JSON string of every value (part of a folder's content hash)."""
        return json.dumps(self.describe(), sort_keys=True)


def _channels(value: float | Sequence[float] | None, in_chans: int, field_name: str) -> tuple[float, ...] | None:
    """One value per channel from a scalar, a one-element list or a per-channel list."""
    if value is None:
        return None
    values = (float(value),) if isinstance(value, (int, float)) else tuple(float(v) for v in value)
    if len(values) == 1:
        return values * in_chans
    if len(values) != in_chans:
        raise DataError(f"data.{field_name}: {len(values)} values for {in_chans}-channel images "
                        f"(give one value or {in_chans})")
    return values


def _fit_channels(values: Sequence[float], in_chans: int) -> tuple[float, ...]:
    """A model config's per-channel statistics for a model with ``in_chans`` channels.

    A 1-channel model whose architecture's config carries RGB statistics gets their average.
    """
    values = tuple(float(v) for v in values)
    if len(values) == in_chans:
        return values
    if in_chans == 1:
        return (sum(values) / len(values),)
    if len(values) == 1:
        return values * in_chans
    raise DataError(f"the model's data config has {len(values)} normalization values for {in_chans} channels; "
                    "give data.mean and data.std")


def model_input_shape(model: nn.Module) -> tuple[int, int, int]:
    """(channels, height, width) that a timm VisionTransformer takes, read from its patch embedding."""
    patch_embed = getattr(model, "patch_embed", None)
    if patch_embed is None or not hasattr(patch_embed, "img_size"):
        raise DataError(f"{type(model).__name__} has no patch_embed.img_size: pass img_size and in_chans")
    height, width = patch_embed.img_size
    return int(patch_embed.proj.in_channels), int(height), int(width)


def resolve_transform(model: nn.Module | None = None, *, img_size: int | None = None, in_chans: int | None = None,
                      mean: float | Sequence[float] | None = None,
                      std: float | Sequence[float] | None = None) -> ImageTransform:
    """The evaluation transform for ``model`` (timm data config), or for an explicit input size.

    ``img_size`` / ``in_chans`` override the model's input shape; ``mean`` / ``std`` (one value or
    one per channel) override its normalization.
    """
    if model is not None:
        chans, height, width = model_input_shape(model)
        chans = in_chans or chans
        if img_size is not None:
            height = width = img_size
        config = resolve_data_config({"input_size": (chans, height, width)}, model=model)
        config["mean"] = _channels(mean, chans, "mean") or _fit_channels(config["mean"], chans)
        config["std"] = _channels(std, chans, "std") or _fit_channels(config["std"], chans)
    else:
        if img_size is None or in_chans is None:
            raise DataError("an image folder needs a model, or both img_size and in_chans")
        chans, height, width = in_chans, img_size, img_size
        config = resolve_data_config({"input_size": (chans, height, width), "crop_pct": 1.0,
                                      "mean": _channels(DEFAULT_MEAN if mean is None else mean, chans, "mean"),
                                      "std": _channels(DEFAULT_STD if std is None else std, chans, "std")})
    if chans not in (1, 3):
        raise DataError(f"images are read as grayscale (1 channel) or RGB (3 channels), not {chans} channels")
    if any(s <= 0 for s in config["std"]):
        raise DataError(f"data.std must be > 0, got {config['std']}")
    return ImageTransform(input_size=(chans, height, width), mean=tuple(config["mean"]), std=tuple(config["std"]),
                          interpolation=str(config["interpolation"]), crop_pct=float(config["crop_pct"]),
                          crop_mode=str(config["crop_mode"]))
