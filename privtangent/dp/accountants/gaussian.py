"""Exact accounting for full-batch DP-GD (sample rate 1) through Gaussian DP.

Dong, Roth & Su, "Gaussian Differential Privacy", JRSS-B 2022 (arXiv:1905.02383): the Gaussian
mechanism with sensitivity 1 and noise σ is μ-GDP with μ = 1/σ, and T of them compose to
μ = √T/σ (Cor. 3.3). A μ-GDP mechanism is (ε, δ(ε))-DP for every ε ≥ 0 with (Cor. 2.13)

    δ(ε) = Φ(−ε/μ + μ/2) − e^ε · Φ(−ε/μ − μ/2),

and nothing tighter holds, so inverting δ(ε) for ε gives the exact ε (no discretization error).
"""

from __future__ import annotations

import math

from scipy.optimize import brentq
from scipy.special import log_ndtr, ndtr

from privtangent.dp.accountants.base import Accountant, register
from privtangent.errors import ConfigError


def gdp_delta(epsilon: float, mu: float) -> float:
    """δ(ε) of a μ-GDP mechanism (Dong–Roth–Su Cor. 2.13)."""
    return float(
        ndtr(-epsilon / mu + mu / 2) - math.exp(epsilon + log_ndtr(-epsilon / mu - mu / 2))
    )


def gdp_epsilon(mu: float, delta: float) -> float:
    """The smallest ε ≥ 0 with δ(ε) ≤ `delta` for a μ-GDP mechanism (exact, to ~1e-12)."""
    if gdp_delta(0.0, mu) <= delta:
        return 0.0
    hi = mu * mu / 2 + mu * math.sqrt(2 * math.log(1 / delta)) + 1.0
    while gdp_delta(hi, mu) > delta:  # the guess above is an upper bound already; be safe
        hi *= 2
    eps = brentq(lambda e: gdp_delta(e, mu) - delta, 0.0, hi, xtol=1e-13, rtol=1e-14)
    step = 1e-13
    while gdp_delta(eps, mu) > delta:  # the root finder landed a hair below: stay conservative
        eps, step = eps + step, step * 2
    return float(eps)


def gdp_mu(epsilon: float, delta: float) -> float:
    """The μ for which a μ-GDP mechanism is exactly (ε, δ)-DP (δ(ε) increases with μ)."""
    hi = 1.0
    while gdp_delta(epsilon, hi) < delta:
        hi *= 2
    return float(brentq(lambda m: gdp_delta(epsilon, m) - delta, 0.0 + 1e-12, hi, xtol=1e-14))


class GaussianAccountant(Accountant):
    """μ-GDP with μ = √T/σ: exact for full-batch DP-GD (sample rate 1), undefined otherwise."""

    name = "gdp"
    method = "Gaussian DP, exact for full-batch DP-GD: μ = √T/σ (Dong, Roth & Su 2022)"
    cheap = True

    def check_supported(self, sample_rate: float) -> None:
        if sample_rate != 1.0:
            raise ConfigError(
                f"accountant 'gdp' is exact only for full-batch DP-GD (sample_rate == 1), "
                f"got sample_rate={sample_rate}; use accountant='prv' for subsampled DP-SGD"
            )

    def epsilon(
        self, noise_multiplier: float, sample_rate: float, steps: int, delta: float
    ) -> float:
        self.check_supported(sample_rate)
        return gdp_epsilon(math.sqrt(steps) / noise_multiplier, delta)


GAUSSIAN = register(GaussianAccountant(), exact_at_full_batch_for=("prv",))
