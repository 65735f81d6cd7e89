"""Labelled data sets with stable integer sample IDs: the interface every consumer relies on.

Two implementations share it:

- ``LabeledData`` holds its images in memory (the small built-in tasks, audit populations);
- ``privtangent.data.image_folder.ImageFolderData`` decodes an image folder batch by batch.

Consumers that only need pixels batch by batch (feature extraction) call
``data.iter_images(batch_size, num_workers)``; consumers that need them all in RAM call
``data.materialize()``. Both exist on both classes, so a consumer has one code path.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from privtangent.errors import DataError
from privtangent.io.hashing import tensor_hash


@runtime_checkable
class ImageData(Protocol):
    """What every data set offers: labels, stable IDs, class names, views, hashes, image batches."""

    labels: Tensor  # int64 (N,)
    ids: Tensor  # int64 (N,), unique, stable across runs
    classes: list[str]
    name: str

    def __len__(self) -> int: ...

    @property
    def num_classes(self) -> int: ...

    def subset(self, index: Tensor, name: str | None = None) -> ImageData: ...

    def limit(self, n: int | None) -> ImageData: ...

    def select_ids(self, ids: Tensor | list[int], keep: bool = True) -> ImageData: ...

    def content_hash(self) -> str: ...

    def ids_hash(self) -> str: ...

    def source_hash(self) -> str | None: ...

    def iter_images(self, batch_size: int = 256, num_workers: int = 0) -> Iterator[tuple[Tensor, Tensor]]: ...

    def materialize(self, num_workers: int = 0) -> LabeledData: ...


def id_mask(all_ids: Tensor, ids: Tensor | list[int]) -> Tensor:
    """Boolean mask over ``all_ids``: which of them are in ``ids``."""
    wanted = ids if isinstance(ids, Tensor) else torch.as_tensor(list(ids), dtype=torch.int64)
    return torch.isin(all_ids, wanted)


def check_limit(n: int) -> None:
    if n < 1:
        raise DataError(f"data limit must be ≥ 1, got {n}")


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
    # content hash of the data set this one is a row subset of (if it was known when the subset
    # was taken): lets a feature cache serve the subset's rows from the larger set's features
    _source: str | None = field(default=None, repr=False, compare=False)

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
        return LabeledData(self.images[index], self.labels[index], self.ids[index], self.classes,
                           name or self.name, _source=self._source or self._hash)

    def limit(self, n: int | None) -> "LabeledData":
        """The first ``n`` samples (all when ``n`` is None)."""
        if n is None:
            return self
        check_limit(n)
        return self.subset(torch.arange(min(n, len(self))), f"{self.name}[:{n}]")

    def select_ids(self, ids: Tensor | list[int], keep: bool = True) -> "LabeledData":
        """Samples whose ID is in ``ids`` (``keep=False``: whose ID is not)."""
        mask = id_mask(self.ids, ids)
        return self.subset(mask if keep else ~mask)

    def content_hash(self) -> str:
        """sha256 of IDs, labels and pixels: identifies the data in manifests and caches."""
        if self._hash is None:
            self._hash = tensor_hash({"ids": self.ids, "labels": self.labels, "images": self.images})
        return self._hash

    def ids_hash(self) -> str:
        return tensor_hash({"ids": self.ids})

    def source_hash(self) -> str | None:
        """Content hash of the larger data set these rows were taken from, if it was known."""
        return self._source

    def iter_images(self, batch_size: int = 256, num_workers: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        """``(images, rows)`` batches in order: ``images[i]`` is row ``rows[i]`` (no copy).

        ``num_workers`` is accepted for the common interface; the images are already in memory.
        """
        if batch_size < 1:
            raise DataError(f"batch_size must be ≥ 1, got {batch_size}")
        for start in range(0, len(self), batch_size):
            stop = min(start + batch_size, len(self))
            yield self.images[start:stop], torch.arange(start, stop)

    def materialize(self, num_workers: int = 0) -> "LabeledData":
        """The data with every image in memory: this object itself."""
        return self
