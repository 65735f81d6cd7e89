"""Per-example membership signals computed from a model's logits.

Every function takes ``logits`` of shape ``(..., N, K)`` (one row of K class logits per example,
with any number of leading axes, e.g. ``(M, N, K)`` for M shadow models) and integer ``labels``
of shape ``(N,)``, as NumPy arrays or torch tensors, and returns a NumPy float64 array of shape
``(..., N)``. All computations are done in float64 from the logits, never from rounded
probabilities.

The main signal is the *logit-scaled confidence* of Carlini et al. 2022, "Membership Inference
Attacks From First Principles", §IV ("logit scaling" of the model's confidence)::

    φ(f(x)_y) = log( p_y / (1 − p_y) )          with p = softmax(z)

Computed naively, ``1 − p_y`` cancels to 0 once p_y is within 1e-16 of 1 (a confidently
memorized example, exactly the case that matters) and φ becomes +inf. Here it is computed
as in the paper's reference code, from the logits::

    φ = log p_y − log Σ_{y'≠y} p_{y'} = z_y − logsumexp_{y'≠y} z_{y'}

(the softmax normalizer cancels), which is finite for all finite logits.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
from scipy.special import logsumexp

from privtangent.errors import PrivtangentError

__all__ = [
    "AttackInputError",
    "to_numpy",
    "check_logits_labels",
    "check_membership",
    "logit_scaled_confidence",
    "cross_entropy_loss",
    "true_class_probability",
]


class AttackInputError(PrivtangentError, ValueError):
    """Inputs to an attack or metric have the wrong shape, dtype or values."""


def to_numpy(x: Any, name: str) -> np.ndarray:
    """Return ``x`` (NumPy array, torch tensor or nested sequence) as a NumPy array.

    Torch tensors are detached and moved to the CPU; floating-point tensors (including
    bfloat16/float16, which NumPy cannot hold) are converted to float64. torch is not imported
    here: a tensor can only exist if the caller already imported it.
    """
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        t = x.detach().cpu()
        if t.is_floating_point():
            t = t.to(torch.float64)
        return t.numpy()
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise AttackInputError(f"{name}: cannot be converted to an array ({exc})") from exc


def check_logits_labels(
    logits: Any, labels: Any, name: str = "logits", labels_name: str = "labels"
) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert ``logits`` (..., N, K) and ``labels`` (N,).

    Returns float64 logits and int64 labels. Raises :class:`AttackInputError` (a ValueError) on
    a wrong rank, mismatched N, fewer than two classes, non-finite logits, non-integer labels or
    labels outside ``[0, K)``.
    """
    z = to_numpy(logits, name)
    y = to_numpy(labels, labels_name)
    if z.ndim < 2:
        raise AttackInputError(f"{name}: expected shape (..., N, K), got {z.shape}")
    if not (np.issubdtype(z.dtype, np.floating) or np.issubdtype(z.dtype, np.integer)):
        raise AttackInputError(f"{name}: expected real numbers, got dtype {z.dtype}")
    if y.ndim != 1:
        raise AttackInputError(f"{labels_name}: expected shape (N,), got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise AttackInputError(
            f"{labels_name}: expected integer class indices, got dtype {y.dtype}"
        )
    n, k = z.shape[-2], z.shape[-1]
    if y.shape[0] != n:
        raise AttackInputError(
            f"{name} has N={n} examples (shape {z.shape}) but {labels_name} has {y.shape[0]}"
        )
    if k < 2:
        raise AttackInputError(f"{name}: need at least 2 classes, got K={k}")
    if y.size and (y.min() < 0 or y.max() >= k):
        raise AttackInputError(
            f"{labels_name}: values must lie in [0, K={k}) (K from {name} {z.shape}), "
            f"got [{y.min()}, {y.max()}]"
        )
    z = z.astype(np.float64, copy=False)
    if not np.all(np.isfinite(z)):
        raise AttackInputError(f"{name}: contains NaN or infinite values")
    return z, y.astype(np.int64, copy=False)


def check_membership(x: Any, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """Validate a membership mask (True = member / IN) of the given shape; return it as bool.

    Accepts a bool array, or an integer array holding only 0 and 1.
    """
    m = to_numpy(x, name)
    if m.shape != tuple(shape):
        raise AttackInputError(f"{name}: expected shape {tuple(shape)}, got {m.shape}")
    if m.dtype == np.bool_:
        return m
    if not np.issubdtype(m.dtype, np.integer) or not np.isin(m, (0, 1)).all():
        raise AttackInputError(f"{name}: expected a bool mask (or 0/1 integers), got {m.dtype}")
    return m.astype(bool)


def _label_index(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Index array of shape ``z.shape[:-1] + (1,)`` selecting each example's label column."""
    return np.broadcast_to(y[:, None], z.shape[:-1] + (1,))


def logit_scaled_confidence(logits: Any, labels: Any) -> np.ndarray:
    """φ = log p_y − log Σ_{y'≠y} p_{y'} = z_y − logsumexp_{y'≠y} z_{y'} (Carlini et al. 2022, §IV).

    Equal to log(p_y / (1 − p_y)) wherever that is computable, and finite for any finite logits
    (for p_y ≈ 1 it is the logit margin, not +inf).
    """
    z, y = check_logits_labels(logits, labels)
    idx = _label_index(z, y)
    z_y = np.take_along_axis(z, idx, axis=-1)[..., 0]
    others = z.copy()
    np.put_along_axis(others, idx, -np.inf, axis=-1)
    return z_y - logsumexp(others, axis=-1)


def cross_entropy_loss(logits: Any, labels: Any) -> np.ndarray:
    """Per-example cross-entropy ℓ = −log p_y = logsumexp_{y'} z_{y'} − z_y (no reduction)."""
    z, y = check_logits_labels(logits, labels)
    z_y = np.take_along_axis(z, _label_index(z, y), axis=-1)[..., 0]
    return logsumexp(z, axis=-1) - z_y


def true_class_probability(logits: Any, labels: Any) -> np.ndarray:
    """p_y = softmax(z)_y = exp(−ℓ), the signal Pr(x | θ) used by RMIA (Zarifzadeh et al. 2024)."""
    return np.exp(-cross_entropy_loss(logits, labels))
