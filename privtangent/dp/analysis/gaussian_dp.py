"""Gaussian differential privacy: conversions between μ and (ε, δ).

Dong, Roth & Su, "Gaussian Differential Privacy", JRSS-B 2022 (arXiv:1905.02383): the Gaussian
mechanism with sensitivity 1 and noise σ is μ-GDP with μ = 1/σ, and T of them compose to
μ = √T/σ (Cor. 3.3). A μ-GDP mechanism is (ε, δ(ε))-DP for every ε ≥ 0 with (Cor. 2.13)

    δ_μ(ε) = Φ(−ε/μ + μ/2) − e^ε · Φ(−ε/μ − μ/2),

and nothing tighter holds, so inverting δ_μ gives the exact ε. The accountant (a claim: never
understate ε) and the audits (a lower bound: never overstate it) invert it from opposite sides.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import brentq
from scipy.special import log_ndtr, ndtri

from privtangent.errors import ConfigError

SIDES = ("upper", "lower")


def gdp_delta(epsilon, mu):
    """δ_μ(ε), vectorized in ε (a float for a scalar ε, else an array of ε's shape).

    Computed as Φ(a)·(1 − exp(ε + log Φ(b) − log Φ(a))) so that it stays accurate (relative
    error ~1e-15) down to δ ~ 1e-300 and does not overflow for large ε.
    """
    mu = float(mu)
    eps = np.asarray(epsilon, dtype=float)
    if mu <= 0.0:
        return np.zeros_like(eps) if eps.ndim else 0.0
    la = log_ndtr(-eps / mu + mu / 2.0)
    lb = log_ndtr(-eps / mu - mu / 2.0)
    out = np.exp(la) * -np.expm1(np.minimum(eps + lb - la, 0.0))
    return out if out.ndim else float(out)


def _check(delta: float, value: float, name: str) -> None:
    if not 0.0 < delta < 1.0:
        raise ConfigError(f"delta must lie strictly between 0 and 1 for a GDP conversion, got {delta!r}")
    if not value >= 0 or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number ≥ 0, got {value!r}")


def gdp_epsilon(mu: float, delta: float, side: str = "upper") -> float:
    """The smallest ε ≥ 0 with δ_μ(ε) ≤ ``delta`` (0 when δ_μ(0) ≤ δ).

    ``side="upper"`` (an accountant's ε): the returned ε satisfies δ_μ(ε) ≤ δ exactly in floating
    point, so it is never below the true root. ``side="lower"`` (an audit's ε lower bound): never
    above it. The two differ by ~1e-13.
    """
    mu, delta = float(mu), float(delta)
    _check(delta, mu, "mu")
    if side not in SIDES:
        raise ConfigError(f"side must be 'upper' or 'lower', got {side!r}")
    if mu == 0.0 or gdp_delta(0.0, mu) <= delta:
        return 0.0
    hi = max(1.0, mu * mu)
    while gdp_delta(hi, mu) > delta:
        hi *= 2.0
    eps = float(brentq(lambda e: gdp_delta(e, mu) - delta, 0.0, hi, xtol=1e-13, rtol=1e-15))
    step = 1e-13
    if side == "upper":
        while gdp_delta(eps, mu) > delta:
            eps, step = eps + step, step * 2
    else:
        while eps > 0 and gdp_delta(eps, mu) < delta:
            eps, step = max(0.0, eps - step), step * 2
    return eps


def gdp_mu(epsilon: float, delta: float) -> float:
    """μ(ε, δ): the μ whose (ε, δ) conversion is exactly ε (ε(μ, δ) increases with μ)."""
    epsilon, delta = float(epsilon), float(delta)
    _check(delta, epsilon, "epsilon")
    if epsilon == 0.0:
        return float(2.0 * ndtri((1.0 + delta) / 2.0))  # the largest μ with δ_μ(0) = 2Φ(μ/2) − 1 ≤ δ
    lo, hi = 0.0, 1.0
    while gdp_delta(epsilon, hi) < delta:
        lo, hi = hi, 2.0 * hi
    return float(brentq(lambda u: gdp_delta(epsilon, u) - delta, lo, hi, xtol=1e-14, rtol=1e-15))


__all__ = ["gdp_delta", "gdp_epsilon", "gdp_mu"]
