"""Simulated one-run audits: the ideal white-box game, and a worst-case f-DP mechanism.

The ideal game (what a perfect white-box audit of full-batch DP-GD sees): m canaries, bits
S_i ~ Bernoulli(1/2); canary i's gradient is a unit vector orthogonal to everything else, so
its white-box score — the sum over the T steps of the noisy update's component along it,
divided by σ√T — is N(μ·S_i, 1) with μ = √T/σ, independently across canaries. The auditor
guesses "in" for the top ⌊k/2⌋ scores and "out" for the bottom k − ⌊k/2⌋, with k fixed in
advance. `ideal_tightness` runs a bound on it: the median over seeds of ε_lb / ε is the best
tightness that bound can show on a correct implementation with these m, k, σ, T.

The Gaussian mechanism is *not* the worst case of its own f-DP class for this game.
`two_mode_counts` simulates one that is μ-GDP for every canary yet makes many more right
guesses with probability θ: a public coin Z ~ Bernoulli(θ); if Z = 0 nothing is released; if
Z = 1 every canary independently shows "looks in" with probability a = Φ(μ − t)/θ and "looks
out" with probability b = Φ(−t)/θ when it is in (swapped when out), nothing otherwise, with t
chosen so that a + b = `rate`. Its privacy profile for each canary is θ·(a − e^ε b)_+ =
(Φ(μ − t) − e^ε Φ(−t))_+ ≤ δ_μ(ε) (the event {Y > t} of the Gaussian pair), in both directions,
so it is μ-GDP; but when Z = 1 its k guesses are as accurate as the Gaussian's would be at guess
rate θ·rate instead of rate. No bound that is valid for all μ-GDP mechanisms can certify more
than this mechanism allows (`two_mode_tail`); a bound that treats the Gaussian mechanism as the
null would over-claim on it.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable

import numpy as np
from scipy.optimize import brentq
from scipy.special import ndtr
from scipy.stats import binom

from privtangent.dp.analysis.gaussian_dp import gdp_mu
from privtangent.errors import ConfigError

__all__ = [
    "white_box_scores",
    "full_batch_dpgd_white_box_scores",
    "subsampled_dpgd_white_box_scores",
    "guess_counts",
    "simulate_ideal_counts",
    "ideal_tightness",
    "two_mode_counts",
    "two_mode_tail",
]


def white_box_scores(num_canaries: int, mu: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(scores, bits) of the ideal game: bits ~ Bernoulli(1/2), scores ~ N(μ·bit, 1)."""
    bits = rng.integers(0, 2, size=int(num_canaries)).astype(bool)
    scores = rng.standard_normal(int(num_canaries)) + float(mu) * bits
    return scores, bits


def full_batch_dpgd_white_box_scores(
    num_canaries: int, noise_multiplier: float, steps: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Scores of gradient canaries in full-batch DP-GD, simulated step by step.

    Canary i's clipped gradient is the basis vector e_i (norm 1 = clipping norm C), present at
    every step iff its bit is 1; each step adds N(0, σ²C² I). The score is the sum over steps of
    the update's i-th coordinate divided by σ√T, i.e. exactly N(√T/σ · bit, 1) — the claim the
    KS test in tests/test_fdp_bound.py checks.
    """
    m, T, sigma = int(num_canaries), int(steps), float(noise_multiplier)
    bits = rng.integers(0, 2, size=m).astype(bool)
    total = np.zeros(m)
    for _ in range(T):
        total += bits + sigma * rng.standard_normal(m)  # one noisy sum of clipped gradients
    return total / (sigma * math.sqrt(T)), bits


def subsampled_dpgd_white_box_scores(
    num_canaries: int, noise_multiplier: float, sample_rate: float, steps: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """As `full_batch_dpgd_white_box_scores` with Poisson sampling: canary i is in step t's batch
    with probability `sample_rate` (only if its bit is 1). Score = Σ_t update_i / (σ√T)."""
    m, T, sigma, q = int(num_canaries), int(steps), float(noise_multiplier), float(sample_rate)
    bits = rng.integers(0, 2, size=m).astype(bool)
    sampled = rng.binomial(T, q, size=m) * bits  # how many of the T batches held canary i
    noise = math.sqrt(T) * sigma * rng.standard_normal(m)  # sum of T independent N(0, σ²)
    return (sampled + noise) / (sigma * math.sqrt(T)), bits


def guess_counts(scores: np.ndarray, bits: np.ndarray, num_guesses: int) -> int:
    """Right guesses of the rule fixed in advance: top ⌊k/2⌋ "in", bottom k − ⌊k/2⌋ "out".

    Ties are broken by canary index (stable sort), which does not depend on the bits.
    """
    s = np.asarray(scores, dtype=float)
    b = np.asarray(bits, dtype=bool)
    k = int(num_guesses)
    if k > s.size:
        raise ConfigError(f"num_guesses ({k}) exceeds the number of canaries ({s.size})")
    kp, kn = k // 2, k - k // 2
    order = np.argsort(s, kind="stable")
    return int(b[order[s.size - kp :]].sum() + (~b[order[:kn]]).sum())


def simulate_ideal_counts(num_canaries: int, num_guesses: int, mu: float, seeds: Iterable[int]) -> np.ndarray:
    """Right-guess counts of the ideal game, one per seed (numpy default_rng(seed))."""
    out = []
    for seed in seeds:
        scores, bits = white_box_scores(num_canaries, mu, np.random.default_rng(seed))
        out.append(guess_counts(scores, bits, num_guesses))
    return np.asarray(out, dtype=int)


def ideal_tightness(
    bound: Callable[[int, int, int], float],
    epsilon: float,
    num_canaries: int,
    num_guesses: int,
    delta: float = 1e-5,
    seeds: int | Iterable[int] = 20,
    *,
    mu: float | None = None,
    return_all: bool = False,
):
    """Median over seeds of bound(m, k, W)/ε on the ideal game of the μ-GDP mechanism with ε(μ, δ) = ε.

    `bound(num_canaries, num_guesses, num_correct)` returns an ε lower bound. `mu` overrides
    the μ (e.g. √T/σ of a given run). With return_all, returns (median, ratios, counts).
    """
    if mu is None:
        mu = gdp_mu(epsilon, delta)
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    counts = simulate_ideal_counts(num_canaries, num_guesses, mu, seed_list)
    cache: dict[int, float] = {}
    ratio_list: list[float] = []
    for c in counts:
        if c not in cache:
            cache[int(c)] = float(bound(num_canaries, num_guesses, int(c)))
        ratio_list.append(cache[int(c)] / float(epsilon))
    ratios = np.asarray(ratio_list)
    med = float(np.median(ratios))
    return (med, ratios, counts) if return_all else med


# --------------------------------------------------------------------------- a worst case


def _two_mode_params(mu: float, theta: float, rate: float) -> tuple[float, float]:
    """(a, b): per-canary probabilities of a right / wrong label in the released mode."""
    total = theta * rate
    if not 0 < total < 1:
        raise ConfigError(f"need 0 < theta·rate < 1, got {total}")
    t = brentq(lambda t: ndtr(mu - t) + ndtr(-t) - total, -40.0, 40.0, xtol=1e-14)
    a, b = ndtr(mu - t) / theta, ndtr(-t) / theta
    if a + b > 1 + 1e-12:
        raise ConfigError("rate too large for this theta")
    return float(a), float(b)


def two_mode_counts(
    num_canaries: int, num_guesses: int, mu: float, theta: float, rate: float, seeds: Iterable[int]
) -> np.ndarray:
    """Right-guess counts of the two-mode μ-GDP mechanism of the module docstring (one per seed).

    The auditor guesses on the released labels (a random k of them if more), and guesses the
    rest by fair coins (independent of the bits), always exactly k guesses.
    """
    m, k = int(num_canaries), int(num_guesses)
    a, b = _two_mode_params(mu, theta, rate)
    out = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        if rng.random() >= theta:  # Z = 0: nothing released, k fair-coin guesses
            out.append(int(rng.binomial(k, 0.5)))
            continue
        n_right = rng.binomial(m, a)  # labels that point the right way
        n_wrong = rng.binomial(m - n_right, b / (1 - a)) if a < 1 else 0
        n = n_right + n_wrong
        used = min(n, k)
        right_used = rng.hypergeometric(n_right, n_wrong, used) if used else 0
        out.append(int(right_used + rng.binomial(k - used, 0.5)))
    return np.asarray(out, dtype=int)


def two_mode_tail(num_canaries: int, num_guesses: int, num_correct: int, mu: float, theta: float, rate: float) -> float:
    """Exact P[W ≥ num_correct] for `two_mode_counts` (a μ-GDP mechanism): a lower bound on the
    worst case that any valid bound must respect."""
    m, k, c = int(num_canaries), int(num_guesses), int(num_correct)
    a, b = _two_mode_params(mu, theta, rate)
    p = a / (a + b)
    # N ~ Binomial(m, a + b) released labels, each right w.p. p independently
    lo = int(max(0, binom.ppf(1e-12, m, a + b)))
    hi = int(min(m, binom.isf(1e-12, m, a + b)))
    Ns = np.arange(lo, hi + 1)
    wN = binom.pmf(Ns, m, a + b)
    tail_released = 0.0
    for n, w in zip(Ns, wN):
        u = min(int(n), k)
        d = np.convolve(binom.pmf(np.arange(u + 1), u, p), binom.pmf(np.arange(k - u + 1), k - u, 0.5))
        tail_released += w * float(d[c:].sum())
    # N outside [lo, hi] (probability < 2e-12) is left out: the result errs low, as a lower bound should
    tail_off = float(binom.sf(c - 1, k, 0.5))
    return float(theta * min(tail_released, 1.0) + (1 - theta) * tail_off)
