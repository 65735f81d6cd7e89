"""Count-based lower bounds on ε from a membership-inference attack's confusion matrix.

An (ε, δ)-DP mechanism limits any membership test on one example: TPR ≤ e^ε·FPR + δ and,
testing the other way round, TNR ≤ e^ε·FNR + δ (Kairouz, Oh, Viswanath 2015, Thm. 2.1;
Jagielski, Ullman, Oprea 2020, Sec. 3). Replacing the rates by Clopper–Pearson confidence
bounds turns observed counts into a lower bound on ε that holds at the stated confidence.

Validity assumes the trials are independent: each member/non-member outcome comes from its own
training run (or a canary game that is repeated). Counts from many canaries of ONE training
run are not independent trials; use `audits.privacy.one_run` for those.
"""

from __future__ import annotations

from numbers import Real

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import beta as beta_dist

from audits.privacy.validation import require_confidence, require_count, require_delta
from privtangent.errors import ConfigError

__all__ = ["calibration_split", "clopper_pearson_interval", "epsilon_lower_bound", "threshold_attack_epsilon"]


def _cp_lower(successes: ArrayLike, trials: ArrayLike, tail: float) -> np.ndarray:
    """One-sided Clopper–Pearson lower bound: the `tail` quantile of Beta(x, n − x + 1); 0 at x = 0."""
    x = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        lo = beta_dist.ppf(tail, x, n - x + 1.0)
    return np.where(x > 0, lo, 0.0)


def _cp_upper(successes: ArrayLike, trials: ArrayLike, tail: float) -> np.ndarray:
    """One-sided Clopper–Pearson upper bound: the 1 − `tail` quantile of Beta(x + 1, n − x); 1 at x = n."""
    x = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        hi = beta_dist.isf(tail, x + 1.0, n - x)
    return np.where(x < n, hi, 1.0)


def clopper_pearson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided Clopper–Pearson (1934) interval for a binomial proportion.

    Each end is a one-sided bound at level (1 − confidence)/2: lo = B⁻¹(α/2; x, n − x + 1),
    hi = B⁻¹(1 − α/2; x + 1, n − x), with lo = 0 at x = 0 and hi = 1 at x = n.
    """
    x = require_count(successes, "successes")
    n = require_count(trials, "trials")
    if n == 0:
        raise ConfigError("trials must be at least 1, got 0")
    if x > n:
        raise ConfigError(f"successes ({x}) must not exceed trials ({n})")
    tail = (1.0 - require_confidence(confidence)) / 2.0
    return float(_cp_lower(x, n, tail)), float(_cp_upper(x, n, tail))


def _log_ratio_bound(rate_lo: np.ndarray, other_hi: np.ndarray, delta: float) -> np.ndarray:
    """ln((rate_lo − δ)/other_hi), −∞ where rate_lo ≤ δ (that direction certifies nothing)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log(rate_lo - delta) - np.log(other_hi)
    return np.where(rate_lo > delta, out, -np.inf)


def _epsilon_bounds(tp, fn, fp, tn, delta: float, confidence: float) -> np.ndarray:
    """Vectorized core of `epsilon_lower_bound` (inputs already validated; arrays broadcast)."""
    tail = (1.0 - confidence) / 2.0
    tp, fn, fp, tn = (np.asarray(c, dtype=float) for c in (tp, fn, fp, tn))
    members, nonmembers = tp + fn, fp + tn
    tpr_lo, fnr_hi = _cp_lower(tp, members, tail), _cp_upper(fn, members, tail)
    fpr_hi, tnr_lo = _cp_upper(fp, nonmembers, tail), _cp_lower(tn, nonmembers, tail)
    eps = np.maximum(_log_ratio_bound(tpr_lo, fpr_hi, delta), _log_ratio_bound(tnr_lo, fnr_hi, delta))
    return np.maximum(eps, 0.0)


def epsilon_lower_bound(tp: int, fn: int, fp: int, tn: int, delta: float = 0.0, confidence: float = 0.95) -> float:
    """Lower bound on ε from a membership test's counts, valid with probability ≥ `confidence`.

    ε_lb = max{ln((TPR_lb − δ)/FPR_ub), ln((TNR_lb − δ)/FNR_ub)}, floored at 0, where every
    bound is one end of a two-sided Clopper–Pearson interval at `confidence` (so one-sided at
    (1 − confidence)/2). TNR_lb = 1 − FPR_ub and FNR_ub = 1 − TPR_lb, so both terms rest on
    the same two events and the union bound gives the stated confidence. With 1,000 members
    and 1,000 non-members all classified right, δ = 0, 95 %: ε_lb = 5.60.

    tp, fn: members guessed member / non-member; fp, tn: non-members guessed member / non-member.
    """
    counts = {name: require_count(v, name) for name, v in (("tp", tp), ("fn", fn), ("fp", fp), ("tn", tn))}
    if counts["tp"] + counts["fn"] == 0:
        raise ConfigError("tp + fn must be at least 1: the audit needs at least one member")
    if counts["fp"] + counts["tn"] == 0:
        raise ConfigError("fp + tn must be at least 1: the audit needs at least one non-member")
    d, c = require_delta(delta), require_confidence(confidence)
    return float(_epsilon_bounds(counts["tp"], counts["fn"], counts["fp"], counts["tn"], d, c))


def _as_scores(scores: object, name: str, minimum: int) -> np.ndarray:
    """A 1-D float array of at least `minimum` scores, none NaN."""
    arr = np.asarray(scores, dtype=float)
    if arr.ndim != 1 or arr.size < minimum:
        raise ConfigError(f"{name} must be a 1-D array of at least {minimum} scores, got shape {arr.shape}")
    if np.isnan(arr).any():
        raise ConfigError(f"{name} contains NaN")
    return arr


def _split(n: int, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random (calibration, evaluation) index split of range(n), each side non-empty."""
    n_cal = min(max(int(round(fraction * n)), 1), n - 1)
    order = rng.permutation(n)
    return order[:n_cal], order[n_cal:]


def calibration_split(
    num_members: int, num_nonmembers: int, calibration_fraction: float = 0.5, seed: int = 0
) -> dict[str, np.ndarray]:
    """The index split `threshold_attack_epsilon` uses: it depends on sizes and seed, never on scores.

    Returns index arrays keyed calibration_members, evaluation_members, calibration_nonmembers,
    evaluation_nonmembers; round(fraction·n) of each class calibrates, at least one per side.
    """
    n_m, n_n = require_count(num_members, "num_members"), require_count(num_nonmembers, "num_nonmembers")
    if n_m < 2 or n_n < 2:
        raise ConfigError(f"num_members and num_nonmembers must be at least 2 to split, got {n_m} and {n_n}")
    if isinstance(calibration_fraction, bool) or not isinstance(calibration_fraction, Real) \
            or not 0.0 < calibration_fraction < 1.0:
        raise ConfigError(f"calibration_fraction must lie strictly between 0 and 1, got {calibration_fraction!r}")
    rng = np.random.default_rng(seed)
    cal_m, eval_m = _split(n_m, float(calibration_fraction), rng)
    cal_n, eval_n = _split(n_n, float(calibration_fraction), rng)
    return {"calibration_members": cal_m, "evaluation_members": eval_m,
            "calibration_nonmembers": cal_n, "evaluation_nonmembers": eval_n}


def _counts_at(threshold: float, members: np.ndarray, nonmembers: np.ndarray) -> dict[str, int]:
    """Confusion counts of the test "score ≥ threshold ⇒ member"."""
    tp = int(np.count_nonzero(members >= threshold))
    fp = int(np.count_nonzero(nonmembers >= threshold))
    return {"tp": tp, "fn": members.size - tp, "fp": fp, "tn": nonmembers.size - fp}


def _best_threshold(members: np.ndarray, nonmembers: np.ndarray, delta: float, confidence: float) -> float:
    """The cut whose Clopper–Pearson ε bound on the calibration data is largest.

    Cuts lie midway between consecutive distinct calibration scores (below the lowest one:
    that score itself), so a gap in the calibration data is split in its middle rather than
    hugging the nearest calibration score.
    """
    values = np.unique(np.concatenate([members, nonmembers]))
    tp = members.size - np.searchsorted(np.sort(members), values, side="left")
    fp = nonmembers.size - np.searchsorted(np.sort(nonmembers), values, side="left")
    eps = _epsilon_bounds(tp, members.size - tp, fp, nonmembers.size - fp, delta, confidence)
    j = int(np.argmax(eps))
    if j == 0 or not np.isfinite(values[j - 1] + values[j]):
        return float(values[j])
    return float(0.5 * (values[j - 1] + values[j]))


def threshold_attack_epsilon(
    scores_members: object,
    scores_nonmembers: object,
    delta: float = 0.0,
    confidence: float = 0.95,
    calibration_fraction: float = 0.5,
    seed: int = 0,
) -> dict:
    """ε lower bound of the threshold attack "score ≥ t ⇒ member" (higher score = member).

    The threshold t is chosen on a random calibration split (`calibration_split`; the cut
    maximizing the bound there) and the counts are taken on the other, held-out split, so
    `epsilon_lower_bound` applies to them as to a test fixed in advance. Choosing t on the
    evaluated data would be a max over thresholds and void the confidence statement.

    Returns {"epsilon_lb", "threshold", "counts": {tp, fn, fp, tn}, "split_sizes":
    {calibration_members, calibration_nonmembers, evaluation_members, evaluation_nonmembers},
    "delta", "confidence"}. The ceiling this split can certify is
    `audits.privacy.power.threshold_power(evaluation_members, evaluation_nonmembers, ...)`.
    """
    members = _as_scores(scores_members, "scores_members", 2)
    nonmembers = _as_scores(scores_nonmembers, "scores_nonmembers", 2)
    d, c = require_delta(delta), require_confidence(confidence)
    split = calibration_split(members.size, nonmembers.size, calibration_fraction, seed)
    cal_m, eval_m = split["calibration_members"], split["evaluation_members"]
    cal_n, eval_n = split["calibration_nonmembers"], split["evaluation_nonmembers"]
    threshold = _best_threshold(members[cal_m], nonmembers[cal_n], d, c)
    counts = _counts_at(threshold, members[eval_m], nonmembers[eval_n])
    return {
        "epsilon_lb": epsilon_lower_bound(**counts, delta=d, confidence=c),
        "threshold": threshold,
        "counts": counts,
        "split_sizes": {
            "calibration_members": int(cal_m.size),
            "calibration_nonmembers": int(cal_n.size),
            "evaluation_members": int(eval_m.size),
            "evaluation_nonmembers": int(eval_n.size),
        },
        "delta": d,
        "confidence": c,
    }
