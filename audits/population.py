"""The audit population: the samples a membership audit asks about, and their shared features.

An audit looks at a fixed **audit population** of N samples. Each of M **replicas** is a model
trained by the audited procedure on a random subset of the population: every sample is in it
independently with probability ½ (seeded; ``membership_masks``). A fraction of the population
may be *canaries*: samples with a wrong label, which a model that is not private memorizes.

The frozen prefix of the base model is computed once for the whole population
(``PopulationFeatureCache``); every replica's training subset is served as rows of that tensor
instead of running the prefix again (a subset of the population has another content hash, so a
plain ``FeatureCache`` would miss).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from privtangent.data.dataset import ImageData, LabeledData
from privtangent.errors import ConfigError
from privtangent.features import FeatureCache, Features


@dataclass
class Population:
    """The audited samples: ``data`` (canary labels applied), which are canaries, true labels."""

    data: LabeledData
    is_canary: Tensor  # bool (N,)
    true_labels: Tensor  # int64 (N,), the labels before the canaries' were changed
    seed: int

    def __len__(self) -> int:
        return len(self.data)

    @property
    def num_canaries(self) -> int:
        return int(self.is_canary.sum())

    def describe(self) -> dict[str, Any]:
        return {"name": self.data.name, "size": len(self.data), "num_canaries": self.num_canaries,
                "canaries": "population samples whose label was replaced by a uniformly drawn wrong class "
                            "(a model that memorizes them predicts the wrong class)",
                "seed": self.seed, "content_sha256": self.data.content_hash()}


def make_population(data: ImageData, size: int, num_canaries: int = 0, seed: int = 0,
                    name: str | None = None) -> Population:
    """``size`` samples of ``data`` drawn without replacement (seeded), the first
    ``num_canaries`` of them (in that random order) relabelled with a wrong class.

    Mislabelled samples are the standard black-box canaries: a model that is not private
    memorizes them, and whether it did is visible in its output.
    """
    for label, value in (("population size", size), ("number of canaries", num_canaries)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{label} must be an integer, got {value!r}")
    if size < 8:
        raise ConfigError(f"population size must be at least 8, got {size}")
    if size > len(data):
        raise ConfigError(f"population size {size} exceeds the {len(data)} samples of {data.name}")
    if not 0 <= num_canaries <= size:
        raise ConfigError(f"number of canaries must lie in [0, population size {size}], got {num_canaries}")
    if data.num_classes < 2 and num_canaries:
        raise ConfigError(f"{data.name}: canaries need at least 2 classes")
    generator = torch.Generator().manual_seed(int(seed))
    index = torch.randperm(len(data), generator=generator)[:size]
    chosen = data.subset(index).materialize()  # a small population: its pixels in memory
    is_canary = torch.zeros(size, dtype=torch.bool)
    is_canary[:num_canaries] = True
    labels = chosen.labels.clone()
    if num_canaries:
        shift = torch.randint(1, data.num_classes, (num_canaries,), generator=generator)
        labels[is_canary] = (labels[is_canary] + shift) % data.num_classes
    pop = LabeledData(chosen.images, labels, chosen.ids, list(chosen.classes),
                      name or f"{data.name} audit population ({size}, {num_canaries} canaries)")
    return Population(pop, is_canary, chosen.labels.clone(), int(seed))


def membership_masks(num_models: int, size: int, seed: int = 0) -> Tensor:
    """(M, N) bool: sample n is in replica m's training set, independently with probability ½.

    Every row has at least one member and one non-member (redrawn otherwise; with N ≥ 8 this
    almost never happens).
    """
    if isinstance(num_models, bool) or not isinstance(num_models, int) or num_models < 1:
        raise ConfigError(f"number of models must be an integer ≥ 1, got {num_models!r}")
    generator = torch.Generator().manual_seed(int(seed) * 7919 + 17)
    rows: list[Tensor] = []
    while len(rows) < num_models:
        row = torch.rand(size, generator=generator) < 0.5
        if 0 < int(row.sum()) < size:
            rows.append(row)
    return torch.stack(rows)


class PopulationFeatureCache(FeatureCache):
    """A ``FeatureCache`` that serves any row-subset of known data sets from their features.

    ``universes`` are the data sets whose subsets will be asked for (the audit population,
    an RMIA reference set, a test split). Asked for ``data`` whose IDs all belong to one
    universe and whose images are that universe's rows, it returns those rows of the
    universe's features (computed once, by ``inner``); anything else goes to ``inner``.
    ``subset_hits`` counts the prefix passes saved.
    """

    def __init__(self, universes: Sequence[ImageData], inner: FeatureCache | None = None) -> None:
        inner = inner if inner is not None else FeatureCache()
        super().__init__(inner.directory, inner.batch_size)
        self.inner = inner
        self.universes = list(universes)
        self._positions = [{int(i): k for k, i in enumerate(u.ids.tolist())} for u in self.universes]
        self.subset_hits = 0

    def _rows(self, data: ImageData) -> tuple[int, Tensor] | None:
        ids = data.ids.tolist()
        for u, (universe, position) in enumerate(zip(self.universes, self._positions)):
            if ids and all(int(i) in position for i in ids):
                rows = torch.tensor([position[int(i)] for i in ids], dtype=torch.long)
                if (isinstance(data, LabeledData) and isinstance(universe, LabeledData)
                        and torch.equal(universe.images[rows], data.images)):
                    return u, rows
        return None

    def features(self, model: nn.Module, start: int, data: ImageData, progress: bool = False) -> Features:
        found = self._rows(data) if len(data) else None
        if found is None:
            return self.inner.features(model, start, data, progress=progress)
        u, rows = found
        full = self.inner.features(model, start, self.universes[u], progress=progress)
        if len(rows) == len(self.universes[u]) and torch.equal(rows, torch.arange(len(rows))):
            return full
        self.subset_hits += 1
        return full[rows]


def shared_cache(universes: Sequence[ImageData], cache: FeatureCache | None) -> PopulationFeatureCache:
    """A PopulationFeatureCache over ``universes`` that shares ``cache``'s computed features."""
    if isinstance(cache, PopulationFeatureCache):
        return PopulationFeatureCache(universes, cache.inner)
    return PopulationFeatureCache(universes, cache)

__all__ = ["Population", "PopulationFeatureCache", "make_population", "membership_masks", "shared_cache"]
