"""One-run ε lower bounds: Steinke, Nasr, Jagielski (2023), "Privacy Auditing with One (1)
Training Run" (NeurIPS 2023, arXiv:2305.08846).

The game: m canaries, each included in the single training run independently with
probability 1/2 (secret bit S_i). After training, the auditor guesses "in" or "out" for r of
them and abstains on the rest. Their main theorem: if training is (ε, δ)-DP, the number W of
correct guesses satisfies, for every v,

    P[W ≥ v] ≤ P[W' ≥ v] + 2mδ · max_{i ∈ {1..m}} P[v > W' ≥ v − i] / i,
    W' ~ Binomial(r, e^ε / (1 + e^ε)),

i.e. W is dominated by ε-randomized response up to an O(mδ) slack. The right side is the
p-value of "training is (ε, δ)-DP" (computed as in their Appendix D); the ε lower bound is
the largest ε rejected at level 1 − confidence, found by bisection.

The guesses (which canaries, how many) must be fixed before the secret bits are looked at:
picking the number of guesses that maximizes ε_lb is a max over tests and voids the bound.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit
from scipy.stats import binom

from audits.privacy.validation import require_confidence, require_count, require_delta, require_game
from privtangent.errors import ConfigError

__all__ = ["one_run_p_value", "one_run_epsilon_lower_bound", "one_run_guesses"]

_EPS_TOLERANCE = 1e-7  # bisection stops when the bracket is this narrow
_EPS_CEILING = 1e3  # no finite count certifies more; bisection never needs to look further


def _p_value(m: int, r: int, v: int, epsilon: float, delta: float) -> float:
    """The main theorem's tail bound at (ε, δ) for ≥ v correct out of r (inputs validated)."""
    q = float(expit(epsilon))  # accuracy of ε-randomized response
    tail = float(binom.sf(v - 1, r, q))  # P[W' ≥ v]
    if delta == 0.0 or v == 0:
        return min(tail, 1.0)
    below = np.cumsum(binom.pmf(np.arange(v - 1, -1, -1), r, q))  # P[v > W' ≥ v − i], i = 1..v
    slack = float(np.max(below / np.arange(1, v + 1)))  # i > v only grows the divisor
    return min(tail + 2.0 * m * delta * slack, 1.0)


def one_run_p_value(num_canaries: int, num_guesses: int, num_correct: int, epsilon: float, delta: float = 0.0) -> float:
    """p-value of the hypothesis "training is (ε, δ)-DP" after `num_correct` right guesses.

    Steinke et al. (2023), main theorem, computed as in their Appendix D:
    P[W' ≥ v] + 2mδ · max_i P[v > W' ≥ v − i]/i with W' ~ Binomial(r, e^ε/(1 + e^ε)).
    """
    m, r, v = require_game(num_canaries, num_guesses, num_correct)
    if not np.isfinite(epsilon) or epsilon < 0:
        raise ConfigError(f"epsilon must be a finite number ≥ 0, got {epsilon!r}")
    return _p_value(m, r, v, float(epsilon), require_delta(delta))


def one_run_epsilon_lower_bound(
    num_canaries: int, num_guesses: int, num_correct: int, delta: float = 0.0, confidence: float = 0.95
) -> float:
    """Largest ε whose one-run p-value is below 1 − confidence (0.0 when even ε = 0 is not rejected).

    Steinke et al. (2023), Appendix D: bisection on ε of the main theorem's p-value, which
    grows with ε. The returned value is the rejected end of the final bracket, so the bound
    errs low by at most 1e-7. All guesses right out of 100 / 1,000 / 5,000 (δ = 0, 95 %)
    gives 3.49 / 5.81 / 7.42.
    """
    m, r, v = require_game(num_canaries, num_guesses, num_correct)
    d, level = require_delta(delta), 1.0 - require_confidence(confidence)
    if _p_value(m, r, v, 0.0, d) >= level:
        return 0.0
    lo, hi = 0.0, 1.0  # invariant: p(lo) < level ≤ p(hi)
    while _p_value(m, r, v, hi, d) < level:
        lo, hi = hi, 2.0 * hi
        if hi > _EPS_CEILING:
            return lo
    while hi - lo > _EPS_TOLERANCE:
        mid = 0.5 * (lo + hi)
        if _p_value(m, r, v, mid, d) < level:
            lo = mid
        else:
            hi = mid
    return lo


def one_run_guesses(
    scores: object,
    included: object,
    num_guesses: int | None = None,
    *,
    k_pos: int | None = None,
    k_neg: int | None = None,
) -> tuple[int, int]:
    """(num_guesses, num_correct) of the top-k_pos / bottom-k_neg guessing rule.

    The k_pos highest-scoring canaries are guessed "in", the k_neg lowest "out", the rest
    abstain (Steinke et al. 2023, Sec. 5: guesses from a score, abstaining in the middle).
    Give either `num_guesses` (k_pos = num_guesses // 2, k_neg = the rest) or both k_pos
    and k_neg, fixed in advance: never search k against the result. Ties in `scores` are
    broken by canary index (stable sort), which is independent of the secret bits.

    scores: (m,) higher = more likely included; included: (m,) bool, the secret bits.
    """
    s = np.asarray(scores, dtype=float)
    bits = np.asarray(included)
    if s.ndim != 1 or s.size == 0:
        raise ConfigError(f"scores must be a non-empty 1-D array, got shape {s.shape}")
    if np.isnan(s).any():
        raise ConfigError("scores contains NaN")
    if bits.shape != s.shape or not np.isin(bits, (0, 1)).all():
        raise ConfigError(f"included must be a boolean array of shape {s.shape}, got {bits.dtype} {bits.shape}")
    if (num_guesses is None) == (k_pos is None and k_neg is None):
        raise ConfigError("give either num_guesses or both k_pos and k_neg")
    if num_guesses is not None:
        k = require_count(num_guesses, "num_guesses")
        k_pos, k_neg = k // 2, k - k // 2
    elif k_pos is None or k_neg is None:
        raise ConfigError("k_pos and k_neg must be given together")
    kp, kn = require_count(k_pos, "k_pos"), require_count(k_neg, "k_neg")
    if kp + kn > s.size:
        raise ConfigError(f"k_pos + k_neg ({kp + kn}) must not exceed the number of canaries ({s.size})")
    order = np.argsort(s, kind="stable")
    bits = bits.astype(bool)
    correct = int(np.count_nonzero(bits[order[s.size - kp:]])) + int(np.count_nonzero(~bits[order[:kn]]))
    return kp + kn, correct
