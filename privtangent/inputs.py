"""The base model and the data a command runs on, from a config's ``model:`` and ``data:`` sections.

- ``load_base``: the embedded default (no name), or a timm ``VisionTransformer`` built by name with
  ``pretrained=False`` and its weights from a local ``.safetensors`` checkpoint (never a pickle;
  a checkpoint without a name is the embedded default's architecture with those weights). Its
  record (for manifests and reports) is derived from what was actually loaded.
- ``load_data``: a named task of the embedded default, or image folders resized to the model's
  input (streamed, with timm's evaluation transform); ``train_limit`` / ``test_limit`` keep a
  seeded random subset (never the first N: image folders are sorted by class, and the first N
  would drop classes).
"""

from __future__ import annotations

from typing import Any

import torch
from timm.models.vision_transformer import VisionTransformer

from privtangent.config.schema import DataSpec, ModelSpec
from privtangent.data.dataset import ImageData
from privtangent.data.image_folder import LARGE_IMAGE_PIXELS, large_images, open_image_folder
from privtangent.data.tasks import load_task
from privtangent.errors import ConfigError
from privtangent.io.hashing import sha256_file, tensor_hash
from privtangent.models.pretrain import DEFAULT_MODEL, pretrained_base
from privtangent.models.vit import build_vit, load_checkpoint


def load_base(spec: ModelSpec, *, progress: bool = True,
              require_checkpoint: bool = False) -> tuple[VisionTransformer, dict[str, Any]]:
    """(the base model in eval mode, its record). ``require_checkpoint``: a named model without
    weights is refused (training a random-init base is rarely what a user meant)."""
    model: VisionTransformer
    if spec.name is None and spec.checkpoint is None:
        model, info = pretrained_base(progress=progress)
        record = {"name": DEFAULT_MODEL["name"], "kwargs": dict(DEFAULT_MODEL["kwargs"]), "embedded_default": True,
                  "checkpoint": info.get("path"), "checkpoint_sha256": info.get("sha256"), "head_replaced": False,
                  "source": "embedded default (pretrained on Fashion-MNIST 0–4)",
                  "description": f"{describe_vit(DEFAULT_MODEL['name'], DEFAULT_MODEL['kwargs'])}, pretrained by "
                                 f"privtangent on Fashion-MNIST 0–4 ({100 * info['test_accuracy']:.1f} % test accuracy)",
                  "pretrain_test_accuracy": info.get("test_accuracy"), "cached": info.get("cached")}
    else:
        if spec.checkpoint is None and require_checkpoint:
            raise ConfigError(f"--model {spec.name}: needs --checkpoint FILE (a local .safetensors state dict; "
                              "weights are never downloaded)")
        name = spec.name or DEFAULT_MODEL["name"]
        kwargs = dict(spec.kwargs) if spec.name else {**DEFAULT_MODEL["kwargs"], **dict(spec.kwargs)}
        model = build_vit(name, **kwargs)
        loaded = load_checkpoint(model, spec.checkpoint) if spec.checkpoint else {"head_replaced": False}
        record = {"name": name, "kwargs": kwargs, "embedded_default": False, "checkpoint": spec.checkpoint,
                  "checkpoint_sha256": sha256_file(spec.checkpoint) if spec.checkpoint else None,
                  "head_replaced": loaded["head_replaced"],
                  "source": spec.checkpoint or "random initialization (no checkpoint)",
                  "description": describe_vit(name, kwargs)}
    model = model.eval()
    record["weights_sha256"] = tensor_hash(model.state_dict())
    return model, record


def describe_vit(name: str, kwargs: dict[str, Any]) -> str:
    """``vit_tiny_patch16_224 (img_size=28, patch_size=7, ...)``: a model as a reader sees it."""
    return f"{name} ({', '.join(f'{k}={v}' for k, v in kwargs.items())})" if kwargs else name


def expected_input(model: VisionTransformer) -> tuple[int, int, int]:
    """(channels, height, width) a timm ViT takes."""
    embed = model.patch_embed
    size = embed.img_size if isinstance(embed.img_size, (tuple, list)) else (embed.img_size, embed.img_size)
    return int(embed.proj.in_channels), int(size[0]), int(size[1])


def random_subset(data: ImageData, limit: int | None, seed: int) -> ImageData:
    """``limit`` samples of ``data`` drawn at random (seeded), kept in their original order."""
    if limit is None or limit >= len(data):
        return data
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:limit]
    return data.subset(torch.sort(order).values, f"{data.name}[{limit}]")


def load_data(spec: DataSpec, model: VisionTransformer, *, seed: int = 0) -> tuple[ImageData, ImageData, dict[str, Any]]:
    """(train, test, record): the task or image folders of ``spec``, shaped for ``model``.

    Image folders stream (``open_image_folder``: nothing is decoded until a batch is read), with
    timm's evaluation transform for the model unless ``data.mean`` / ``data.std`` override the
    normalization. The record says what was loaded: the source, the transform, empty class
    folders, test-only class folders (which the model cannot predict), and the subset rule."""
    chans, height, width = expected_input(model)
    train: ImageData
    test: ImageData
    if spec.folders:
        assert spec.train is not None and spec.test is not None
        train = open_image_folder(spec.train, mean=spec.mean, std=spec.std, model=model)
        test = open_image_folder(spec.test, mean=spec.mean, std=spec.std, classes=train.classes, model=model)
        record: dict[str, Any] = {
            "train_folder": spec.train, "test_folder": spec.test, "mean": spec.mean, "std": spec.std,
            "transform": train.transform.describe(),
            "description": f"image folders {spec.train} (train) and {spec.test} (test), {height}×{width} "
                           f"({train.transform.mode})",
            "empty_classes": sorted(set(train.empty_classes)),
            "test_only_classes": sorted(test.ignored_classes)}
        large = large_images(train.paths + test.paths)
        if large:
            path, w, h = large[0]
            record["warnings"] = [f"{len(large)} image(s) larger than {LARGE_IMAGE_PIXELS:,} pixels (largest: {path}, "
                                  f"{w}×{h}): each is decoded in full, then resized to {height}×{width}; resizing "
                                  f"them once beforehand makes every pass over the data faster"]
    else:
        task_train = load_task(spec.task, "train")
        train, test = task_train, load_task(spec.task, "test")
        record = {"task": spec.task, "description": f"the embedded default's task {spec.task}"}
        shape = tuple(task_train.images.shape[1:])
        if shape != (chans, height, width):
            raise ConfigError(f"data: {train.name} has {shape[0]}×{shape[1]}×{shape[2]} images, but the model takes "
                              f"{chans}×{height}×{width}; choose a model built for this data "
                              "(model.kwargs img_size/in_chans)")
    record.update({"limit": spec.train_limit, "test_limit": spec.test_limit,
                   "subset": "seeded random subset" if spec.train_limit or spec.test_limit else "all samples"})
    return random_subset(train, spec.train_limit, seed), random_subset(test, spec.test_limit, seed + 1), record


__all__ = ["expected_input", "load_base", "load_data", "random_subset"]
