"""``LabeledData``: images, labels and stable integer sample IDs, in memory."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from privtangent.errors import DataError
from privtangent.io.hashing import tensor_hash


@dataclass
class LabeledData:
    """A labelled image data set held in memory.

    ``ids`` are stable integers (the same sample has the same ID in every run); forget
    requests, shard maps and membership audits refer to samples by ID.
    """

    images: Tensor  # float32 (N, C, H, W), normalized
    labels: Tensor  # int64 (N,)
    ids: Tensor  # int64 (N,), unique
    classes: list[str]
    name: str
    _hash: str | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self.labels)
        if self.images.shape[0] != n or self.ids.shape[0] != n:
            raise DataError(f"{self.name}: images, labels and ids must have the same length")
        if n and torch.unique(self.ids).numel() != n:
            raise DataError(f"{self.name}: sample IDs must be unique")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, index: Tensor, name: str | None = None) -> "LabeledData":
        """Rows selected by an index tensor or a boolean mask."""
        return LabeledData(
            self.images[index], self.labels[index], self.ids[index], self.classes, name or self.name
        )

    def limit(self, n: int | None) -> "LabeledData":
        """The first ``n`` samples (all when ``n`` is None)."""
        if n is None:
            return self
        if n < 1:
            raise DataError(f"data limit must be ≥ 1, got {n}")
        return self.subset(torch.arange(min(n, len(self))), f"{self.name}[:{n}]")

    def select_ids(self, ids: Tensor | list[int], keep: bool = True) -> "LabeledData":
        """Samples whose ID is in ``ids`` (``keep=False``: whose ID is not)."""
        mask = torch.isin(self.ids, torch.as_tensor(list(ids) if not isinstance(ids, Tensor) else ids))
        return self.subset(mask if keep else ~mask)

    def content_hash(self) -> str:
        """sha256 of IDs, labels and pixels: identifies the data in manifests and caches."""
        if self._hash is None:
            self._hash = tensor_hash({"ids": self.ids, "labels": self.labels, "images": self.images})
        return self._hash

    def ids_hash(self) -> str:
        return tensor_hash({"ids": self.ids})
