"""The Likelihood Ratio Attack, LiRA (Carlini, Chien, Nasr, Song, Terzis, Tramèr 2022,
"Membership Inference Attacks From First Principles", §IV and Algorithm 1).

For each target example (x, y), M shadow models were trained on random subsets of the data;
``shadow_in[m, n]`` says whether example n was in shadow m's training set. The attack looks at the
logit-scaled confidence φ = log(p_y / (1 − p_y)) (:func:`attacks.signals.logit_scaled_confidence`)
and fits, per example, a Gaussian to the φ's of the shadows that trained on it (IN) and another
to those that did not (OUT)::

    Q̃_in(x, y)  = N(μ_in,  σ_in²)        Q̃_out(x, y) = N(μ_out, σ_out²)

The target model's φ_obs is then scored by

- online (Algorithm 1):   Λ = log N(φ_obs; μ_in, σ_in²) − log N(φ_obs; μ_out, σ_out²),
  the log-likelihood ratio of "member" against "non-member";
- offline (OUT shadows only, §IV "offline" variant): the one-sided test of whether φ_obs is
  larger than a non-member's, Λ = −log Pr[Z > φ_obs] with Z ~ N(μ_out, σ_out²), the negative
  log p-value. This is a monotone transform of the paper's Pr[Z ≤ φ_obs] (same ROC) that keeps
  resolution in the upper tail, where members with φ_obs far above μ_out would otherwise all tie
  at a CDF of 1.0.

Both are "higher = more likely a member".

Estimation details (documented choices):

- μ and σ² are the sample mean and unbiased (ddof=1) variance of the shadow φ's (the reference
  code uses the median for μ; with Gaussian φ's both estimate the same quantity).
- ``fixed_variance=True`` (the paper's "global variance", recommended with few shadows): one σ_in²
  and one σ_out² for all examples, the pooled within-example variance
  Σ_n Σ_m (φ_mn − μ_n)² / Σ_n (c_n − 1) over the examples with c_n ≥ 2 observations.
- Fallback for examples with too few shadows on one side: with no shadow on that side, μ is the
  global mean of all that side's observations; with fewer than two, σ is the pooled σ above.
  If no example has two observations on a side, the pooled σ is the standard deviation of all
  that side's observations. σ is floored at ``MIN_STD`` so a degenerate (constant) fit gives
  large but finite scores.

One query per example (no augmentations). Test-time augmentations would add a queries axis:
fit per (query, example) and average the per-query Λ's, as the reference code does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import norm

from attacks.signals import (
    AttackInputError,
    check_logits_labels,
    check_membership,
    logit_scaled_confidence,
    to_numpy,
)

__all__ = ["MIN_STD", "GaussianFit", "fit_gaussians", "lira_scores", "lira_scores_from_confidences"]

MIN_STD = 1e-6
"""Lower bound on every fitted σ (φ is in nats of odds; 1e-6 is far below its resolution)."""


@dataclass(frozen=True)
class GaussianFit:
    """Per-example Gaussian fits of one side (IN or OUT) of the shadow confidences.

    ``mean`` and ``std`` have shape (N,); ``count[n]`` is the number of shadows that contributed
    to example n's fit (0 ⇒ ``mean[n]`` is the global mean, < 2 ⇒ ``std[n]`` is the pooled σ).
    """

    mean: np.ndarray
    std: np.ndarray
    count: np.ndarray


def fit_gaussians(
    phi: np.ndarray, mask: np.ndarray, fixed_variance: bool, side: str
) -> GaussianFit:
    """Fit N(μ_n, σ_n²) to the entries ``phi[:, n]`` where ``mask[:, n]``; see the module notes.

    ``phi`` (M, N) float, ``mask`` (M, N) bool. ``side`` ("IN"/"OUT") only names errors.
    """
    count = mask.sum(axis=0)
    total = int(count.sum())
    if total < 2:
        raise AttackInputError(
            f"shadow_in: LiRA needs at least 2 {side} shadow observations to estimate a variance, "
            f"got {total}"
        )
    global_mean = float(phi[mask].mean())
    sums = np.where(mask, phi, 0.0).sum(axis=0)
    mean = np.where(count > 0, sums / np.maximum(count, 1), global_mean)
    sq_dev = np.where(mask, (phi - mean) ** 2, 0.0).sum(axis=0)
    has_var = count >= 2
    if has_var.any():
        pooled_var = float(sq_dev[has_var].sum() / (count[has_var] - 1).sum())
    else:
        pooled_var = float(phi[mask].var(ddof=1))
    if fixed_variance:
        var = np.full(phi.shape[1], pooled_var)
    else:
        var = np.where(has_var, sq_dev / np.maximum(count - 1, 1), pooled_var)
    std = np.maximum(np.sqrt(var), MIN_STD)
    return GaussianFit(mean=mean, std=std, count=count)


def lira_scores_from_confidences(
    target_phi: Any,
    shadow_phi: Any,
    shadow_in: Any,
    online: bool = True,
    fixed_variance: bool = False,
) -> np.ndarray:
    """LiRA scores (N,) from precomputed confidences: ``target_phi`` (N,), ``shadow_phi`` (M, N).

    Same semantics as :func:`lira_scores`; use it when φ comes from somewhere other than logits.
    """
    t = to_numpy(target_phi, "target_phi").astype(np.float64)
    s = to_numpy(shadow_phi, "shadow_phi").astype(np.float64)
    if t.ndim != 1:
        raise AttackInputError(f"target_phi: expected shape (N,), got {t.shape}")
    if s.ndim != 2 or s.shape[1] != t.shape[0] or s.shape[0] < 1:
        raise AttackInputError(f"shadow_phi: expected shape (M, N={t.shape[0]}), got {s.shape}")
    if not (np.isfinite(t).all() and np.isfinite(s).all()):
        raise AttackInputError("target_phi / shadow_phi: contain NaN or infinite values")
    member = check_membership(shadow_in, "shadow_in", s.shape)
    out = fit_gaussians(s, ~member, fixed_variance, "OUT")
    if not online:
        return -norm.logsf(t, loc=out.mean, scale=out.std)
    inn = fit_gaussians(s, member, fixed_variance, "IN")
    return norm.logpdf(t, loc=inn.mean, scale=inn.std) - norm.logpdf(t, loc=out.mean, scale=out.std)


def lira_scores(
    target_logits: Any,
    labels: Any,
    shadow_logits: Any,
    shadow_in: Any,
    online: bool = True,
    fixed_variance: bool = False,
) -> np.ndarray:
    """LiRA membership scores, shape (N,), float64; higher = more likely a member.

    Args:
        target_logits: (N, K) logits of the attacked model on the N audited examples.
        labels: (N,) integer class labels.
        shadow_logits: (M, N, K) logits of M shadow models on the same N examples.
        shadow_in: (M, N) bool, True where example n was in shadow m's training set.
        online: the likelihood-ratio test with IN and OUT fits (Algorithm 1); if False, the
            offline one-sided test against the OUT fit only (``shadow_in`` still selects OUT).
        fixed_variance: one pooled σ_in and σ_out for all examples instead of per-example σ's.

    All array arguments may be NumPy arrays or torch tensors. Raises
    :class:`attacks.signals.AttackInputError` (a ``ValueError``) on mismatched shapes, bad
    labels or masks, non-finite logits, or fewer than two shadow observations on a needed side.
    """
    t_logits, y = check_logits_labels(target_logits, labels, "target_logits")
    if t_logits.ndim != 2:
        raise AttackInputError(f"target_logits: expected shape (N, K), got {t_logits.shape}")
    s_logits = to_numpy(shadow_logits, "shadow_logits")
    if s_logits.ndim != 3 or s_logits.shape[1:] != t_logits.shape:
        raise AttackInputError(
            f"shadow_logits: expected shape (M, N={t_logits.shape[0]}, K={t_logits.shape[1]}), "
            f"got {s_logits.shape}"
        )
    s_logits, _ = check_logits_labels(s_logits, y, "shadow_logits")
    return lira_scores_from_confidences(
        logit_scaled_confidence(t_logits, y),
        logit_scaled_confidence(s_logits, y),
        shadow_in,
        online=online,
        fixed_variance=fixed_variance,
    )
