"""Which records each DP step sees: Poisson sampling, full batch, physical micro-batches.

- **Poisson sampling** (rate q < 1): every record is in a step's batch independently with
  probability q, so batch sizes are Binomial(N, q) and may be 0 (an empty batch is a
  legitimate step: the update is pure noise). This is the sampling the accountants assume.
- **Full batch** (q = 1): every step uses the whole data set (full-batch DP-GD, the paper's
  setting: 50 epochs = 50 steps).
- **Micro-batches**: a logical batch is processed in physical pieces of at most
  ``physical_batch_size`` records; the clipped sums add up, so the result is the same.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor

from privtangent.dp.parameters import check_sample_rate
from privtangent.errors import ConfigError


def steps_for_epochs(epochs: int | float, sample_rate: float) -> int:
    """Steps T so that the expected number of passes over the data is ``epochs`` (T = epochs / q)."""
    q = check_sample_rate(sample_rate)
    if not epochs > 0:
        raise ConfigError(f"epochs must be > 0, got {epochs!r}")
    return max(1, math.ceil(epochs / q - 1e-9))


def sampling_scheme(sample_rate: float) -> str:
    return "full-batch" if check_sample_rate(sample_rate) == 1.0 else "poisson"


def poisson_sample(n: int, sample_rate: float, generator: torch.Generator) -> Tensor:
    """Indices of the records in one Poisson-sampled batch (possibly empty), in increasing order."""
    q = check_sample_rate(sample_rate)
    if q == 1.0:
        return torch.arange(n)
    mask = torch.rand(n, generator=generator, device=generator.device) < q
    return mask.nonzero().flatten().cpu()


class BatchSampler:
    """``steps`` batches of record indices: Poisson(q) or, for q = 1, the full data set."""

    def __init__(self, n: int, sample_rate: float, steps: int, generator: torch.Generator) -> None:
        if n < 1:
            raise ConfigError(f"the data set is empty (n={n})")
        self.n, self.sample_rate, self.steps, self.generator = n, check_sample_rate(sample_rate), int(steps), generator
        self.scheme = sampling_scheme(sample_rate)

    @property
    def expected_batch_size(self) -> float:
        return self.sample_rate * self.n

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[Tensor]:
        for _ in range(self.steps):
            yield poisson_sample(self.n, self.sample_rate, self.generator)


def micro_batches(indices: Tensor, physical_batch_size: int) -> list[Tensor]:
    """Split a logical batch into physical pieces of at most ``physical_batch_size``."""
    if physical_batch_size < 1:
        raise ConfigError(f"physical_batch_size must be ≥ 1, got {physical_batch_size}")
    return list(torch.split(indices, physical_batch_size)) if len(indices) else []


__all__ = ["BatchSampler", "micro_batches", "poisson_sample", "sampling_scheme",
           "steps_for_epochs"]
