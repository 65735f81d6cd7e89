"""Composition of tangent models: a weighted average of their Δw (paper eq. 13).

For tangent models linearized around the same point w,

    Σᵢ λᵢ f_lin(x; Δwᵢ) = f_w(x) + J_w f(x) · Σᵢ λᵢ Δwᵢ      (Σᵢ λᵢ = 1)

so averaging Δw *is* ensembling the outputs, at the inference cost of one model. The same
average of non-linear fine-tuned weights is Model Soup (``baselines.model_soup``), which
has no such guarantee.

The sum is accumulated in float64 in a fixed order (the order of ``deltas``) and cast back
to the inputs' dtype, so composing the same dicts always gives the same bits. Removing a
shard is done by composing the remaining ones from scratch (never by subtracting it from
the average): the result is then bit-identical to a model that never saw the shard, with
no rounding residue of the removed Δw left in it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor

from privtangent.errors import PrivtangentError


def normalize_weights(weights: Sequence[float] | Tensor | None, n: int) -> list[float]:
    """Non-negative weights scaled to sum to 1 (uniform when ``weights`` is None)."""
    if n < 1:
        raise PrivtangentError("compose needs at least one Δw dict, got none")
    if weights is None:
        return [1.0 / n] * n
    values = weights.tolist() if isinstance(weights, Tensor) else list(weights)
    if len(values) != n:
        raise PrivtangentError(f"compose: {len(values)} weights for {n} Δw dicts; give one weight per dict")
    out = []
    for i, w in enumerate(values):
        if isinstance(w, bool) or not isinstance(w, numbers.Real):
            raise PrivtangentError(f"compose: weight {i} is {w!r}, not a number")
        if not math.isfinite(w) or w < 0:
            raise PrivtangentError(f"compose: weight {i} is {w!r}; weights must be finite and non-negative")
        out.append(float(w))
    total = math.fsum(out)
    if total <= 0:
        raise PrivtangentError("compose: the weights sum to 0; at least one must be positive")
    return [w / total for w in out]


def check_compatible(deltas: Sequence[Mapping[str, Tensor]]) -> None:
    """Every dict must have the same names, shapes and dtypes as the first."""
    first = deltas[0]
    if not first:
        raise PrivtangentError("compose: Δw dict 0 is empty")
    for i, d in enumerate(deltas[1:], start=1):
        missing, extra = sorted(set(first) - set(d)), sorted(set(d) - set(first))
        if missing or extra:
            raise PrivtangentError(
                f"compose: Δw dict {i} does not match dict 0: missing {missing[:4]}, unexpected {extra[:4]} "
                "(were the shards trained with the same regime and blocks?)"
            )
        for name, ref in first.items():
            t = d[name]
            if not isinstance(t, Tensor):
                raise PrivtangentError(f"compose: Δw dict {i}[{name!r}] is a {type(t).__name__}, not a tensor")
            if tuple(t.shape) != tuple(ref.shape):
                raise PrivtangentError(
                    f"compose: {name!r} has shape {tuple(t.shape)} in dict {i} but {tuple(ref.shape)} in dict 0"
                )
            if t.dtype != ref.dtype:
                raise PrivtangentError(f"compose: {name!r} is {t.dtype} in dict {i} but {ref.dtype} in dict 0")


def compose(deltas: Sequence[Mapping[str, Tensor]], weights: Sequence[float] | Tensor | None = None) -> dict[str, Tensor]:
    """Weighted average of Δw dicts (keyed by base parameter names), paper eq. 13.

    Args:
        deltas: the shard models' Δw, e.g. ``TangentViT.delta_state_dict()`` of each.
        weights: one non-negative weight per dict, normalized to sum to 1; uniform if None.

    Returns:
        a new dict with the same names: Σᵢ λᵢ Δwᵢ, in the inputs' dtype.

    Raises:
        PrivtangentError: no dicts, mismatched names/shapes/dtypes, or invalid weights.
    """
    if isinstance(deltas, Mapping):
        raise PrivtangentError("compose expects a sequence of Δw dicts (e.g. [d1, d2, ...]), got one dict")
    deltas = list(deltas)
    lambdas = normalize_weights(weights, len(deltas))
    check_compatible(deltas)
    with _one_thread():
        return _weighted_sum(deltas, lambdas)


@contextmanager
def _one_thread():
    """Element-wise sums are memory-bound: intra-op threads only slow them down (by 10-100×
    on a busy machine, measured). The sum is element-wise, so the bits do not depend on it."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _weighted_sum(deltas: list[Mapping[str, Tensor]], lambdas: list[float]) -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    for name, ref in deltas[0].items():
        if not ref.is_floating_point():
            raise PrivtangentError(f"compose: {name!r} is {ref.dtype}; Δw must be floating point")
        acc = torch.zeros(ref.shape, dtype=torch.float64, device=ref.device)
        for lam, d in zip(lambdas, deltas):
            if lam:
                acc.add_(d[name].detach(), alpha=lam)  # computed in float64 (type promotion), no copy
        out[name] = acc.to(ref.dtype)
    return out
