"""Per-sample cache of the frozen prefix's output.

The frozen prefix of a tangent model (and of non-linear fine-tuning of the same last
blocks) is a fixed function, so its output is computed once per data set and reused by
every epoch, every shard, every shadow model. The key is the prefix's weights plus the
data's content hash; a disk copy (safetensors) survives across processes.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from tqdm.auto import tqdm

from privtangent.data.dataset import LabeledData
from privtangent.io.atomic import atomic_write_bytes
from privtangent.io.hashing import sha256_bytes, tensor_hash


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


class FeatureCache:
    """Cache of prefix features keyed by (prefix weights, start block, data content)."""

    def __init__(self, directory: str | Path | None = None, batch_size: int = 256) -> None:
        self.directory = Path(directory) if directory else None
        self.batch_size = batch_size
        self._memory: dict[str, Tensor] = {}
        self.hits = 0
        self.misses = 0

    def key(self, model: nn.Module, start: int, data: LabeledData) -> str:
        weights = tensor_hash(prefix_state(model, start))
        return sha256_bytes(f"{weights}|{start}|{data.content_hash()}".encode())[:32]

    def features(self, model: nn.Module, start: int, data: LabeledData, progress: bool = False) -> Tensor:
        """Prefix output for every sample of ``data`` (N, tokens, D), computed at most once."""
        key = self.key(model, start, data)
        if key in self._memory:
            self.hits += 1
            return self._memory[key]
        path = self.directory / f"{key}.safetensors" if self.directory else None
        if path is not None and path.exists():
            self.hits += 1
            feats = load_file(str(path))["features"]
        else:
            self.misses += 1
            feats = self._compute(model, start, data, progress)
            if path is not None:
                self._write(path, feats)
        self._memory[key] = feats
        return feats

    def _compute(self, model: nn.Module, start: int, data: LabeledData, progress: bool) -> Tensor:
        was_training = model.training
        model.eval()
        chunks = []
        for i in tqdm(range(0, len(data), self.batch_size), desc=f"caching features of {data.name}",
                      disable=not progress, unit="batch"):
            chunks.append(run_prefix(model, start, data.images[i : i + self.batch_size]))
        model.train(was_training)
        return torch.cat(chunks) if chunks else torch.empty(0)

    @staticmethod
    def _write(path: Path, feats: Tensor) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        save_file({"features": feats.contiguous()}, str(tmp))
        atomic_write_bytes(path, tmp.read_bytes())
        tmp.unlink()
