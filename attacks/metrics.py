"""How well membership scores separate members from non-members: ROC, AUC, TPR at low FPR, and
bootstrap confidence intervals (no plotting; plots live in ``reports/``).

Following Carlini et al. 2022 ("Membership Inference Attacks From First Principles", §III), the
headline number is the true-positive rate at a low false-positive rate (0.1 %, 1 %), read off
the ROC curve *conservatively*: TPR@FPR=f is the largest TPR among the ROC points whose FPR ≤ f
(no interpolation between points, which would credit the attack with a threshold it does not
have). With n non-members, FPRs below 1/n are only resolved as FPR = 0.

Confidence intervals are percentile bootstrap intervals: each replicate resamples the members
and the non-members separately, with replacement and at their original sizes (so every
replicate has both classes and the same class balance), from a seeded
``numpy.random.default_rng``. Percentile intervals of a conservative, step-shaped statistic like
TPR@low FPR are skewed and need not contain the point estimate; read them as the spread of the
estimate, not a guarantee.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from sklearn.metrics import auc as _trapezoid_auc
from sklearn.metrics import roc_auc_score, roc_curve

from attacks.signals import AttackInputError, check_membership, to_numpy

__all__ = [
    "DEFAULT_FPRS",
    "AttackMetrics",
    "check_scores",
    "roc",
    "tpr_at_fpr",
    "bootstrap_ci",
    "attack_metrics",
]

DEFAULT_FPRS: tuple[float, ...] = (0.001, 0.01)


def check_scores(scores: Any, is_member: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate membership ``scores`` (N,) and ground truth ``is_member`` (N,); return float64/bool.

    Scores must be finite and both classes present.
    """
    s = to_numpy(scores, "scores")
    numeric = np.issubdtype(s.dtype, np.floating) or np.issubdtype(s.dtype, np.integer)
    if s.ndim != 1 or not numeric:
        raise AttackInputError(f"scores: expected a 1-D array of numbers, got {s.shape} {s.dtype}")
    s = s.astype(np.float64, copy=False)
    if not np.isfinite(s).all():
        raise AttackInputError("scores: contain NaN or infinite values")
    m = check_membership(is_member, "is_member", s.shape)
    if m.all() or not m.any():
        raise AttackInputError(
            f"is_member: need both members and non-members, got {int(m.sum())} of {m.size}"
        )
    return s, m


def roc(scores: Any, is_member: Any) -> tuple[np.ndarray, np.ndarray]:
    """ROC curve (fpr, tpr), both starting at 0 and ending at 1 (sklearn ``roc_curve``,
    collinear points dropped; for plotting)."""
    s, m = check_scores(scores, is_member)
    fpr, tpr, _ = roc_curve(m, s)
    return fpr, tpr


def _tpr_at(fpr: np.ndarray, tpr: np.ndarray, targets: Sequence[float]) -> np.ndarray:
    """Largest TPR at FPR ≤ target, for each target, from a full ROC (fpr nondecreasing)."""
    idx = np.searchsorted(fpr, np.asarray(targets, dtype=np.float64), side="right") - 1
    return np.maximum.accumulate(tpr)[idx]


def tpr_at_fpr(scores: Any, is_member: Any, fprs: Sequence[float] = DEFAULT_FPRS) -> np.ndarray:
    """Conservative TPR at each FPR in ``fprs``: the largest TPR over ROC points with FPR ≤ it."""
    s, m = check_scores(scores, is_member)
    _check_fprs(fprs)
    fpr, tpr, _ = roc_curve(m, s, drop_intermediate=False)
    return _tpr_at(fpr, tpr, fprs)


def _check_fprs(fprs: Sequence[float]) -> None:
    if len(fprs) == 0 or not all(0.0 <= f <= 1.0 for f in fprs):
        raise AttackInputError(f"fprs: expected one or more rates in [0, 1], got {list(fprs)}")


def bootstrap_ci(
    scores: Any,
    is_member: Any,
    fprs: Sequence[float] = DEFAULT_FPRS,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[tuple[float, float], dict[float, tuple[float, float]]]:
    """Percentile bootstrap intervals for the AUC and for TPR@FPR at each of ``fprs``.

    Returns ``((auc_low, auc_high), {fpr: (tpr_low, tpr_high)})``. Members and non-members are
    resampled separately (see the module notes); the same ``seed`` gives the same intervals.
    """
    s, m = check_scores(scores, is_member)
    _check_fprs(fprs)
    if n_bootstrap < 1:
        raise AttackInputError(f"n_bootstrap: must be ≥ 1, got {n_bootstrap}")
    if not 0.0 < confidence < 1.0:
        raise AttackInputError(f"confidence: must lie in (0, 1), got {confidence}")
    pos, neg = s[m], s[~m]
    labels = np.concatenate([np.ones(pos.size, bool), np.zeros(neg.size, bool)])
    rng = np.random.default_rng(seed)
    aucs = np.empty(n_bootstrap)
    tprs = np.empty((n_bootstrap, len(fprs)))
    for b in range(n_bootstrap):
        sample = np.concatenate(
            [pos[rng.integers(0, pos.size, pos.size)], neg[rng.integers(0, neg.size, neg.size)]]
        )
        fpr, tpr, _ = roc_curve(labels, sample, drop_intermediate=False)
        aucs[b] = _trapezoid_auc(fpr, tpr)
        tprs[b] = _tpr_at(fpr, tpr, fprs)
    q = [(1.0 - confidence) / 2.0, (1.0 + confidence) / 2.0]
    auc_lo, auc_hi = np.quantile(aucs, q)
    tpr_q = np.quantile(tprs, q, axis=0)
    return (
        (float(auc_lo), float(auc_hi)),
        {float(f): (float(tpr_q[0, i]), float(tpr_q[1, i])) for i, f in enumerate(fprs)},
    )


@dataclass(frozen=True)
class AttackMetrics:
    """Evaluation of one attack's scores; :meth:`to_dict` gives a JSON-ready dict.

    ``tpr_at_fpr`` and ``tpr_at_fpr_ci`` are keyed by the FPR (a float). The CI fields are
    ``None`` when no bootstrap was run.
    """

    auc: float
    tpr_at_fpr: dict[float, float]
    roc_fpr: list[float]
    roc_tpr: list[float]
    n_members: int
    n_nonmembers: int
    auc_ci: tuple[float, float] | None
    tpr_at_fpr_ci: dict[float, tuple[float, float]] | None
    n_bootstrap: int
    confidence: float
    seed: int

    def to_dict(self) -> dict[str, Any]:
        """Plain lists, floats, ints and str keys (FPR keys written as ``f"{fpr:g}"``)."""
        ci = self.tpr_at_fpr_ci
        return {
            "auc": self.auc,
            "auc_ci": None if self.auc_ci is None else list(self.auc_ci),
            "tpr_at_fpr": {f"{f:g}": t for f, t in self.tpr_at_fpr.items()},
            "tpr_at_fpr_ci": None if ci is None else {f"{f:g}": list(v) for f, v in ci.items()},
            "roc": {"fpr": list(self.roc_fpr), "tpr": list(self.roc_tpr)},
            "n_members": self.n_members,
            "n_nonmembers": self.n_nonmembers,
            "bootstrap": {
                "n": self.n_bootstrap,
                "confidence": self.confidence,
                "seed": self.seed,
                "method": "percentile; members and non-members resampled separately",
            },
        }


def attack_metrics(
    scores: Any,
    is_member: Any,
    fprs: Sequence[float] = DEFAULT_FPRS,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> AttackMetrics:
    """AUC (sklearn ``roc_auc_score``), conservative TPR at each FPR in ``fprs``, the ROC curve,
    and (if ``n_bootstrap`` > 0) seeded percentile bootstrap intervals for the AUC and TPRs.

    ``scores`` (N,): higher = more likely a member; ``is_member`` (N,) bool ground truth.
    """
    s, m = check_scores(scores, is_member)
    if n_bootstrap < 0:
        raise AttackInputError(f"n_bootstrap: must be ≥ 0, got {n_bootstrap}")
    fpr, tpr = roc(s, m)
    auc_ci, tpr_ci = (None, None)
    if n_bootstrap > 0:
        auc_ci, tpr_ci = bootstrap_ci(s, m, fprs, n_bootstrap, confidence, seed)
    return AttackMetrics(
        auc=float(roc_auc_score(m, s)),
        tpr_at_fpr={float(f): float(t) for f, t in zip(fprs, tpr_at_fpr(s, m, fprs))},
        roc_fpr=fpr.tolist(),
        roc_tpr=tpr.tolist(),
        n_members=int(m.sum()),
        n_nonmembers=int((~m).sum()),
        auc_ci=auc_ci,
        tpr_at_fpr_ci=tpr_ci,
        n_bootstrap=int(n_bootstrap),
        confidence=float(confidence),
        seed=int(seed),
    )
