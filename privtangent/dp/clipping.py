"""Flat per-sample clipping: g̃_i = g_i · min(1, C / ‖g_i‖₂), the norm over *all* trainable tensors.

``clipped_grad_sum`` is what one DP step needs from a (micro-)batch: Σ_i g̃_i and the
per-sample norms. For a TangentViT or NonLinearViT it runs the linear-site ("ghost") engine
of ``privtangent.dp.per_sample``: one forward and one backward pass, ghost norms, and the
clipped sum as one reweighted matmul per site; no per-sample gradient is ever formed. With
``method="vmap"``/``"loop"`` (or a model the engine does not know) it forms per-sample
gradients ``chunk_size`` samples at a time, clips them and adds them up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from privtangent.dp.parameters import check_max_grad_norm
from privtangent.dp.per_sample import (
    DEFAULT_CHUNK,
    GhostUnsupported,
    LossFn,
    check_output,
    per_sample_grads,
    resolve_method,
    site_gradients,
    trainable,
)
from privtangent.errors import ConfigError


def clip_factors(norms: Tensor, max_grad_norm: float) -> Tensor:
    """min(1, C / ‖g_i‖) for each sample (1 for a zero gradient)."""
    c = check_max_grad_norm(max_grad_norm)
    return c / norms.clamp(min=c)


def per_sample_norms(grads: Mapping[str, Tensor]) -> Tensor:
    """‖g_i‖₂ over all tensors of a per-sample gradient dict {name: (B, ...)}."""
    tensors = list(grads.values())
    if not tensors:
        raise ConfigError("no per-sample gradients (the model has no trainable parameter)")
    squares = [t.flatten(1).pow(2).sum(1) for t in tensors]
    return torch.sqrt(sum(squares[1:], start=squares[0]))


def clip_per_sample(grads: Mapping[str, Tensor], max_grad_norm: float) -> dict[str, Tensor]:
    """Each sample's gradient scaled to norm ≤ C (flat clipping)."""
    factors = clip_factors(per_sample_norms(grads), max_grad_norm)
    return {n: t * factors.view(-1, *([1] * (t.dim() - 1))).to(t.dtype) for n, t in grads.items()}


def clip_and_sum(grads: Mapping[str, Tensor], max_grad_norm: float) -> tuple[dict[str, Tensor], Tensor]:
    """(Σ_i g̃_i, ‖g_i‖) from materialized per-sample gradients."""
    norms = per_sample_norms(grads)
    factors = clip_factors(norms, max_grad_norm)
    return {n: torch.tensordot(factors.to(t.dtype), t, dims=1) for n, t in grads.items()}, norms


@dataclass
class ClippedSum:
    """Σ_i min(1, C/‖g_i‖) g_i over a batch, with the (unclipped) per-sample norms."""

    grads: dict[str, Tensor]
    norms: Tensor  # (B,) ‖g_i‖ before clipping; private: for tests and diagnostics only
    count: int

    def add_(self, other: "ClippedSum") -> "ClippedSum":
        for n, t in other.grads.items():
            self.grads[n] = self.grads[n] + t
        self.norms = torch.cat([self.norms, other.norms])
        self.count += other.count
        return self

    @classmethod
    def zeros(cls, params: Mapping[str, Tensor]) -> "ClippedSum":
        first = next(iter(params.values()))
        return cls({n: torch.zeros_like(p) for n, p in params.items()}, first.new_zeros(0), 0)


def clipped_grad_sum(model: nn.Module, loss_fn: LossFn, features: Tensor, y: Tensor, max_grad_norm: float, *,
                     output: str = "full", method: str = "auto", chunk_size: int = DEFAULT_CHUNK) -> ClippedSum:
    """Σ_i of the clipped per-sample gradients of ``model`` on cached prefix ``features``.

    ``method``: "auto" (the ghost engine for TangentViT / NonLinearViT, else vmap), "ghost", "vmap", "loop".
    """
    check_max_grad_norm(max_grad_norm)
    output = check_output(model, output)
    params = trainable(model)
    if len(y) == 0:
        return ClippedSum.zeros(params)
    chosen = resolve_method(model, method)
    if chosen == "ghost":
        try:
            grads, _ = site_gradients(model, loss_fn, features, y, output)
        except GhostUnsupported:
            if method != "auto":
                raise
            chosen = "vmap"
        else:
            norms = grads.norms()
            summed = grads.weighted_sum(clip_factors(norms, max_grad_norm))
            return ClippedSum({n: summed[n].detach() for n in params}, norms.detach(), len(y))
    total = ClippedSum.zeros(params)
    for i in range(0, len(y), chunk_size):
        per = per_sample_grads(model, loss_fn, features[i : i + chunk_size], y[i : i + chunk_size], features=True,
                               output=output, method=chosen, chunk_size=chunk_size)
        summed, norms = clip_and_sum(per, max_grad_norm)
        total.add_(ClippedSum(summed, norms, len(norms)))
    return total


__all__ = ["ClippedSum", "clip_and_sum", "clip_factors", "clip_per_sample",
           "clipped_grad_sum", "per_sample_norms"]
