"""Content hashes used in manifests, caches and the unlearning ledger."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping

import torch


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def tensor_hash(tensors: torch.Tensor | Mapping[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and raw bytes (in sorted name order)."""
    if isinstance(tensors, torch.Tensor):
        tensors = {"": tensors}
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()
