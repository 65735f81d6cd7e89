"""Training losses: the rescaled square loss (paper eq. 2), cross-entropy, MSE.

All are batch means and ``vmap``-safe (no ``F.one_hot``, whose output size depends on data).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from privtangent.errors import ConfigError


def one_hot(y: Tensor, num_classes: int, dtype: torch.dtype) -> Tensor:
    return (y.unsqueeze(-1) == torch.arange(num_classes, device=y.device)).to(dtype)


def rescaled_square_loss(logits: Tensor, y: Tensor, alpha: float = 1.0, kappa: float = 15.0,
                         reduction: str = "mean") -> Tensor:
    """Paper eq. 2, averaged over the batch (``reduction="none"``: one value per sample):

        L = (1/K) · ( α (f_y − κ)² + Σ_{i≠y} f_i² )

    Convex (a sum of squares) in the logits, hence in Δw for a tangent model.
    """
    if reduction not in ("mean", "none"):
        raise ConfigError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    k = logits.shape[-1]
    target = one_hot(y, k, logits.dtype)
    weight = 1.0 + (alpha - 1.0) * target
    per_sample = (weight * (logits - kappa * target).pow(2)).sum(-1) / k
    return per_sample if reduction == "none" else per_sample.mean()


def cross_entropy(logits: Tensor, y: Tensor) -> Tensor:
    return F.cross_entropy(logits, y)


def mse(logits: Tensor, y: Tensor) -> Tensor:
    """Mean over the batch of Σ_i (f_i − 1[i=y])² / K."""
    target = one_hot(y, logits.shape[-1], logits.dtype)
    return (logits - target).pow(2).mean(-1).mean()


LOSSES = ("rsl", "ce", "mse")


def make_loss(name: str, alpha: float = 1.0, kappa: float = 15.0) -> Callable[[Tensor, Tensor], Tensor]:
    """The loss called ``name`` as a function (logits, y) → scalar batch mean."""
    if name == "rsl":
        return lambda logits, y: rescaled_square_loss(logits, y, alpha=alpha, kappa=kappa)
    if name == "ce":
        return cross_entropy
    if name == "mse":
        return mse
    raise ConfigError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
