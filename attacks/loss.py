"""The LOSS attack (Yeom, Giacomelli, Fredrikson, Jha 2018, "Privacy Risk in Machine Learning:
Analyzing the Connection to Overfitting"): training examples tend to have lower loss, so the
membership score is the negated per-example loss, score(x, y) = −ℓ(f_θ(x), y).

It uses no shadow models and is the baseline that calibrated attacks (LiRA, RMIA) must beat.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attacks.signals import AttackInputError, check_logits_labels, cross_entropy_loss

__all__ = ["loss_scores"]


def loss_scores(target_logits: Any, labels: Any) -> np.ndarray:
    """Membership scores −ℓ = log p_y, shape (N,); higher = more likely a member.

    ``target_logits`` (N, K) and ``labels`` (N,), NumPy arrays or torch tensors.
    """
    z, y = check_logits_labels(target_logits, labels, "target_logits")
    if z.ndim != 2:
        raise AttackInputError(f"target_logits: expected shape (N, K), got {z.shape}")
    return -cross_entropy_loss(z, y)
