"""The Relative Membership Inference Attack, RMIA (Zarifzadeh, Liu, Shokri, Ghosh 2024,
"Low-Cost High-Power Membership Inference Attacks", §3).

RMIA compares the target model's likelihood of x with its likelihood of population samples z,
each normalized by how likely reference models (trained without the target's data) find them::

    LR_θ(x, z) = [Pr(x | θ) / Pr(x)] / [Pr(z | θ) / Pr(z)]
    Score(x; θ) = Pr_{z ~ π}[ LR_θ(x, z) ≥ γ ]            (the fraction of population z's)

Pr(x | θ) is the softmax probability of the true label
(:func:`attacks.signals.true_class_probability`) and Pr(x) = E_θ'[Pr(x | θ')] is averaged over
reference models θ':

- online: Pr(x) = ½ (mean over IN references + mean over OUT references), i.e. the average over
  reference models of which half contain x (the membership prior of the game). An example with
  references on one side only uses that side's mean.
- offline (only the OUT references are used): the paper's linear approximation of the IN mean,
  Pr(x) = ½ ((1 + a) · Pr_OUT(x) + (1 − a)), with a ∈ [0, 1] (``offline_a``; a = 1 is the plain
  OUT mean). An example with no OUT reference uses the mean over all OUT observations of all
  examples (its score then depends on Pr(x | θ) alone).

Population samples z were in no model's training set, so Pr(z) is the mean over all reference
models (online), or the same linear approximation of it (offline, as in the authors' code).
Everything is computed in log space; the fraction is computed by sorting the population ratios
once (O((N + Z) log Z)), not by forming the N × Z matrix of ratios. Scores lie in [0, 1] in
steps of 1/Z: use a population large enough to resolve the FPRs you report.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import logsumexp

from attacks.signals import (
    AttackInputError,
    check_logits_labels,
    check_membership,
    cross_entropy_loss,
    to_numpy,
)

__all__ = ["rmia_scores"]


def _log_mean_prob(log_p: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """log of the mean of exp(log_p) over axis 0 where ``mask``; −inf where no entry is masked."""
    count = mask.sum(axis=0)
    total = logsumexp(np.where(mask, log_p, -np.inf), axis=0)
    return np.where(count > 0, total - np.log(np.maximum(count, 1)), -np.inf)


def _offline_log_prob(log_p_out: np.ndarray, a: float) -> np.ndarray:
    """log Pr(x) = log(½ ((1 + a) · Pr_OUT(x) + (1 − a))), computed in log space."""
    with np.errstate(divide="ignore"):
        return np.logaddexp(np.log1p(a) + log_p_out, np.log1p(-a)) - np.log(2.0)


def _reference_log_prob_x(
    log_p_ref: np.ndarray, ref_in: np.ndarray, online: bool, a: float
) -> np.ndarray:
    """log Pr(x) for the audited examples from their reference log-likelihoods (M, N)."""
    n_in, n_out = ref_in.sum(axis=0), (~ref_in).sum(axis=0)
    log_out = _log_mean_prob(log_p_ref, ~ref_in)
    if online:
        log_in = _log_mean_prob(log_p_ref, ref_in)
        both = np.logaddexp(log_in, log_out) - np.log(2.0)
        return np.where(n_in == 0, log_out, np.where(n_out == 0, log_in, both))
    if n_out.sum() == 0:
        raise AttackInputError("ref_in: offline RMIA needs OUT references, but every entry is True")
    global_out = float(logsumexp(log_p_ref[~ref_in]) - np.log(n_out.sum()))
    return _offline_log_prob(np.where(n_out > 0, log_out, global_out), a)


def _check_shapes(x: np.ndarray, x_ref: np.ndarray, z: np.ndarray, z_ref: np.ndarray) -> int:
    """Check shapes (N, K), (M, N, K), (Z, K), (M, Z, K) with M, Z ≥ 1; return M."""
    if x.ndim != 2:
        raise AttackInputError(f"target_logits: expected shape (N, K), got {x.shape}")
    n, k = x.shape
    if z.ndim != 2 or z.shape[1] != k or z.shape[0] < 1:
        raise AttackInputError(
            f"population_target_logits: expected shape (Z ≥ 1, K={k}), got {z.shape}"
        )
    m = x_ref.shape[0] if x_ref.ndim == 3 else 0
    for name, got, want in [
        ("ref_logits", x_ref.shape, (m, n, k)),
        ("population_ref_logits", z_ref.shape, (m, z.shape[0], k)),
    ]:
        if got != want or m < 1:
            raise AttackInputError(
                f"{name}: expected shape (M ≥ 1, {want[1]}, {k}) with the same M reference "
                f"models for the audited examples and the population, got {got}"
            )
    return m


def rmia_scores(
    target_logits: Any,
    labels: Any,
    ref_logits: Any,
    ref_in: Any,
    population_target_logits: Any,
    population_labels: Any,
    population_ref_logits: Any,
    gamma: float = 1.0,
    online: bool = True,
    offline_a: float = 0.3,
) -> np.ndarray:
    """RMIA membership scores, shape (N,), float64 in [0, 1]; higher = more likely a member.

    Args:
        target_logits: (N, K) logits of the attacked model on the N audited examples x.
        labels: (N,) integer labels of the audited examples.
        ref_logits: (M, N, K) logits of M reference models on the same examples.
        ref_in: (M, N) bool, True where example n was in reference model m's training set.
        population_target_logits: (Z, K) logits of the attacked model on Z population samples z
            (drawn from the data distribution, in no model's training set).
        population_labels: (Z,) integer labels of the population samples.
        population_ref_logits: (M, Z, K) logits of the same M reference models on them.
        gamma: the threshold γ > 0 on the pairwise likelihood ratio LR_θ(x, z).
        online: Pr(x) from IN and OUT references; if False, from OUT references only with the
            linear approximation with parameter ``offline_a``.
        offline_a: a ∈ [0, 1] (offline only). The paper tunes it on a reference model; 0.3 is
            the authors' common default.

    Array arguments may be NumPy arrays or torch tensors. Raises
    :class:`attacks.signals.AttackInputError` (a ``ValueError``) on mismatched shapes, bad labels
    or masks, non-finite logits, or out-of-range ``gamma`` / ``offline_a``.
    """
    if not (np.isfinite(gamma) and gamma > 0):
        raise AttackInputError(f"gamma: must be a finite number > 0, got {gamma}")
    if not 0.0 <= offline_a <= 1.0:
        raise AttackInputError(f"offline_a: must lie in [0, 1], got {offline_a}")
    x, x_ref, z, z_ref = (
        to_numpy(a, name)
        for a, name in [
            (target_logits, "target_logits"),
            (ref_logits, "ref_logits"),
            (population_target_logits, "population_target_logits"),
            (population_ref_logits, "population_ref_logits"),
        ]
    )
    m = _check_shapes(x, x_ref, z, z_ref)
    x, y = check_logits_labels(x, labels, "target_logits")
    z, y_z = check_logits_labels(
        z, population_labels, "population_target_logits", "population_labels"
    )
    x_ref, _ = check_logits_labels(x_ref, y, "ref_logits")
    z_ref, _ = check_logits_labels(z_ref, y_z, "population_ref_logits", "population_labels")
    member = check_membership(ref_in, "ref_in", x_ref.shape[:2])

    log_pr_x = _reference_log_prob_x(-cross_entropy_loss(x_ref, y), member, online, offline_a)
    log_pr_z = logsumexp(-cross_entropy_loss(z_ref, y_z), axis=0) - np.log(m)
    if not online:
        log_pr_z = _offline_log_prob(log_pr_z, offline_a)
    log_ratio_x = -cross_entropy_loss(x, y) - log_pr_x
    log_ratio_z = np.sort(-cross_entropy_loss(z, y_z) - log_pr_z)
    # LR(x, z) ≥ γ  ⇔  log ratio_z ≤ log ratio_x − log γ
    below = np.searchsorted(log_ratio_z, log_ratio_x - np.log(gamma), side="right")
    return below / log_ratio_z.shape[0]
