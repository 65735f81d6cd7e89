"""The embedded base models: small ViTs pretrained on Fashion-MNIST classes 0–4.

They stand in for an ImageNet-pretrained ViT-L/16 where no weights can be downloaded and
no GPU is present. Each is trained deterministically (fixed seeds, fixed data order) and
cached on disk under a key that hashes its architecture and recipe, with a manifest; a
cache whose manifest does not match is rebuilt.

- ``default``: embed 128, depth 4 (the last block has 0.2 M parameters). The embedded default.
- ``wide``: embed 384, depth 6, 6 heads (the last block has 1.8 M parameters), pretrained
  with the same recipe. It exists to measure whether results that depend on the size of
  the fine-tuned block (DP noise grows with the number of trained coordinates) change
  with that size: the paper's ViT-L/16 block has 12.6 M parameters.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from timm.models.vision_transformer import VisionTransformer

from privtangent.data import load_task
from privtangent.errors import ConfigError
from privtangent.io.atomic import atomic_write_bytes, atomic_write_json
from privtangent.io.hashing import sha256_file
from privtangent.models.vit import build_vit, read_safetensors
from privtangent.paths import cache_dir
from privtangent.progress import Progress

DEFAULT_MODEL: dict[str, Any] = {
    "name": "vit_tiny_patch16_224",
    "kwargs": {
        "img_size": 28, "patch_size": 7, "in_chans": 1, "embed_dim": 128, "depth": 4,
        "num_heads": 4, "mlp_ratio": 4.0, "qkv_bias": True, "num_classes": 5,
    },
}
DEFAULT_RECIPE: dict[str, Any] = {"task": "fashion-pretrain", "epochs": 4, "batch_size": 128, "lr": 1e-3,
                  "weight_decay": 0.05, "seed": 0, "version": 1}
WIDE_MODEL: dict[str, Any] = {
    "name": "vit_tiny_patch16_224",
    "kwargs": {
        "img_size": 28, "patch_size": 7, "in_chans": 1, "embed_dim": 384, "depth": 6,
        "num_heads": 6, "mlp_ratio": 4.0, "qkv_bias": True, "num_classes": 5,
    },
}
BASES: dict[str, tuple[dict, dict]] = {"default": (DEFAULT_MODEL, DEFAULT_RECIPE), "wide": (WIDE_MODEL, DEFAULT_RECIPE)}


def _key(model_cfg: dict, recipe: dict) -> str:
    blob = json.dumps({"model": model_cfg, "recipe": recipe}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def evaluate(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 512) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(labels), batch_size):
            correct += (model(images[i : i + batch_size]).argmax(-1) == labels[i : i + batch_size]).sum().item()
    return correct / len(labels)


def pretrain(model_cfg: dict | None = None, recipe: dict | None = None,
             progress: bool = True) -> tuple[VisionTransformer, dict[str, Any]]:
    """Train the base model from scratch; returns (model, info)."""
    model_cfg, recipe = model_cfg or DEFAULT_MODEL, recipe or DEFAULT_RECIPE
    torch.manual_seed(recipe["seed"])
    model = build_vit(model_cfg["name"], **model_cfg["kwargs"])
    train, test = load_task(recipe["task"], "train"), load_task(recipe["task"], "test")
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe["lr"], weight_decay=recipe["weight_decay"])
    steps = recipe["epochs"] * ((len(train) + recipe["batch_size"] - 1) // recipe["batch_size"])
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe["lr"], total_steps=steps, pct_start=0.1)
    generator = torch.Generator().manual_seed(recipe["seed"])
    start = time.perf_counter()
    bar = Progress(steps, "pretraining base model", unit="step", enabled=progress)
    for _ in range(recipe["epochs"]):
        model.train()
        order = torch.randperm(len(train), generator=generator)
        for i in range(0, len(order), recipe["batch_size"]):
            idx = order[i : i + recipe["batch_size"]]
            loss = F.cross_entropy(model(train.images[idx]), train.labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            bar.update(1)
        bar.report(loss=round(loss.item(), 3))  # plain output: at most one line per 10 s
    bar.close()
    seconds = time.perf_counter() - start
    accuracy = evaluate(model.eval(), test.images, test.labels)
    info = {"test_accuracy": accuracy, "train_seconds": seconds, "train_data_hash": train.content_hash(),
            "model": model_cfg, "recipe": recipe, "torch": torch.__version__}
    return model.eval(), info


def base_spec(name: str) -> tuple[dict, dict]:
    """(model config, pretraining recipe) of the embedded base called ``name`` (``BASES``)."""
    if name not in BASES:
        raise ConfigError(f"base: unknown embedded base {name!r} (choose from {', '.join(BASES)})")
    return BASES[name]


def pretrained_base(progress: bool = True, rebuild: bool = False, directory: Path | None = None,
                    base: str = "default") -> tuple[VisionTransformer, dict[str, Any]]:
    """The cached embedded base model ``base`` (default: the embedded default), built on first
    use; returns (model, info). Each base has its own cache key (architecture + recipe)."""
    model_cfg, recipe = base_spec(base)
    directory = Path(directory or cache_dir()) / "base"
    key = _key(model_cfg, recipe)
    weights, manifest = directory / f"{key}.safetensors", directory / f"{key}.json"
    if not rebuild and weights.exists() and manifest.exists():
        info = json.loads(manifest.read_text())
        if info.get("sha256") == sha256_file(weights):
            model = build_vit(model_cfg["name"], **model_cfg["kwargs"])
            model.load_state_dict(read_safetensors(weights))
            return model.eval(), {**info, "path": str(weights), "cached": True, "base": base}
    model, info = pretrain(model_cfg, recipe, progress=progress)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    tmp = weights.with_suffix(".tmp")
    directory.mkdir(parents=True, exist_ok=True)
    save_file(state, str(tmp))
    atomic_write_bytes(weights, tmp.read_bytes())
    tmp.unlink()
    info["sha256"] = sha256_file(weights)
    atomic_write_json(manifest, info)
    return model, {**info, "path": str(weights), "cached": False, "base": base}


def describe(info: dict[str, Any]) -> str:
    return (f"base model {info['model']['name']} {info['model']['kwargs']}: "
            f"{100 * info['test_accuracy']:.1f}% on {info['recipe']['task']} test, "
            f"{info['train_seconds']:.0f} s to build")
