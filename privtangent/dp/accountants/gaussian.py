"""Exact accounting for full-batch DP-GD (sample rate 1) through Gaussian DP.

Dong, Roth & Su, "Gaussian Differential Privacy", JRSS-B 2022 (arXiv:1905.02383): the Gaussian
mechanism with sensitivity 1 and noise σ is μ-GDP with μ = 1/σ, and T of them compose to
μ = √T/σ (Cor. 3.3). A μ-GDP mechanism is (ε, δ(ε))-DP for every ε ≥ 0 with (Cor. 2.13)

    δ(ε) = Φ(−ε/μ + μ/2) − e^ε · Φ(−ε/μ − μ/2),

and nothing tighter holds, so inverting δ(ε) for ε gives the exact ε (no discretization error);
the conversion lives in ``privtangent.dp.analysis.gaussian_dp``, shared with the audits.
"""

from __future__ import annotations

import math

from privtangent.dp.accountants.base import Accountant, register
from privtangent.dp.analysis.gaussian_dp import gdp_epsilon
from privtangent.errors import ConfigError


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
