"""Privacy profiles of the Poisson-subsampled Gaussian mechanism, in both neighbour directions.

The accountant's curve: `steps` Poisson-subsampled Gaussian steps (sensitivity 1, noise
multiplier σ, sampling rate q), the default accountant of privtangent (prv-accountant,
Gopi, Lee, Wutschitz 2021). Its composed privacy random variable gives, for either neighbour
direction, δ(ε) ≤ δ̂(ε − eps_error) + delta_error (their Thm 5.5; `PRVAccountant.compute_delta`),
an upper bound on the true profile. The "remove" direction (the run with the canary is the
mixture) is prv-accountant's own PRV; the "add" direction is the same loss seen from the
other side, ℓ' = −log(1 − q + q·e^{(2x−1)/(2σ²)}), x ~ N(0, σ²), defined below. The audits' f-DP bound needs
their average; both are computed, nothing is assumed about which dominates.
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache

import numpy as np
from prv_accountant import PRVAccountant
from prv_accountant.privacy_random_variables import PoissonSubsampledGaussianMechanism, PrivacyRandomVariable
from scipy.special import ndtr

from privtangent.errors import ConfigError

PRV_EPS_ERROR = 0.02
PRV_DELTA_ERROR = 1e-10


def _add_direction_prv(q: float, sigma: float) -> PrivacyRandomVariable:
    class _AddDirection(PrivacyRandomVariable):
        """Privacy loss log(Q'/P') under Q' = N(0, σ²) with P' = (1 − q)N(0, σ²) + qN(1, σ²)."""

        def __init__(self) -> None:
            self._remove = PoissonSubsampledGaussianMechanism(q, sigma)

        def cdf(self, t):
            t = np.asarray(t, dtype=float)
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                ok = (-t > math.log1p(-q)) if q < 1 else np.ones(t.shape, dtype=bool)
                z = np.where(ok, np.log((np.exp(-t) - (1.0 - q)) / q), np.inf)
                x = sigma * sigma * z + 0.5  # ℓ'(x) ≤ t ⟺ x ≥ x(t)
                out = ndtr(-x / sigma)
            return np.where(ok, out, 1.0)

        def rdp(self, alpha: float) -> float:
            # used only to size the discretization domain; Mironov, Talwar, Zhang (2019, Thm 5):
            # the Rényi divergence of this direction is at most that of the remove direction
            return self._remove.rdp(alpha)

    return _AddDirection()


@lru_cache(maxsize=128)
def _composed_prvs(sigma: float, q: float, steps: int):
    out = []
    for prv in (PoissonSubsampledGaussianMechanism(q, sigma), _add_direction_prv(q, sigma)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            acc = PRVAccountant([prv], eps_error=PRV_EPS_ERROR, delta_error=PRV_DELTA_ERROR, max_self_compositions=[steps])
            out.append((acc, acc.compute_composition([steps])))
    return tuple(out)


def _delta_estimates(composed, eps: np.ndarray) -> np.ndarray:
    """prv-accountant's δ̂(ε) = E[(1 − e^{ε − L})_+] of a composed discrete PRV, vectorized over ε."""
    t = composed.domain.ts()
    p = composed.pmf
    order_eps = np.asarray(eps, dtype=float)
    # suffix sums: Σ_{t_i ≥ ε} p_i and Σ_{t_i ≥ ε} p_i e^{−t_i}
    s1 = np.concatenate([np.cumsum(p[::-1])[::-1], [0.0]])
    s2 = np.concatenate([np.cumsum((p * np.exp(-t))[::-1])[::-1], [0.0]])
    idx = np.searchsorted(t, order_eps, side="left")
    fin = s1[idx] - np.exp(order_eps) * s2[idx]
    d_inf = 1.0 - math.exp(composed.log_pmc_inf)
    return np.clip(fin, 0.0, None) * (1.0 - d_inf) + d_inf


def subsampled_gaussian_profile(noise_multiplier: float, sample_rate: float, steps: int, epsilons) -> tuple[np.ndarray, np.ndarray]:
    """Upper bounds (δ_remove(ε), δ_add(ε)) of `steps` Poisson-subsampled Gaussian steps.

    From prv-accountant: δ̂(ε − eps_error) + delta_error with eps_error = 0.02 and
    delta_error = 1e-10 (Gopi et al. 2021, Thm 5.5). With sample_rate = 1 both equal the μ-GDP
    profile with μ = √steps/σ up to those errors (checked in the tests). Cached per (σ, q, T).
    """
    sigma, q, T = float(noise_multiplier), float(sample_rate), int(steps)
    if not sigma > 0 or not 0 < q <= 1 or T < 1:
        raise ConfigError(f"need noise_multiplier > 0, 0 < sample_rate ≤ 1, steps ≥ 1; got {sigma}, {q}, {steps}")
    eps = np.atleast_1d(np.asarray(epsilons, dtype=float))
    (_, rem), (_, add) = _composed_prvs(sigma, q, T)
    shifted = eps - PRV_EPS_ERROR
    return (
        np.minimum(_delta_estimates(rem, shifted) + PRV_DELTA_ERROR, 1.0),
        np.minimum(_delta_estimates(add, shifted) + PRV_DELTA_ERROR, 1.0),
    )


def subsampled_gaussian_epsilon(noise_multiplier: float, sample_rate: float, steps: int, delta: float, *, bound: str = "lower") -> float:
    """ε at δ of the accountant's curve (the larger of the two directions), from prv-accountant.

    bound="lower" (used to report an audit's ε_lb: never overstates), "estimate" or "upper".
    """
    i = {"lower": 0, "estimate": 1, "upper": 2}[bound]
    out = 0.0
    for acc, _ in _composed_prvs(float(noise_multiplier), float(sample_rate), int(steps)):
        try:
            e = acc.compute_epsilon(float(delta), [int(steps)])[i]
        except (RuntimeError, ValueError):  # prv-accountant fails for very large ε (ε ≈ 25 and above)
            e = math.inf if bound != "lower" else 0.0
        out = max(out, float(e))
    return max(0.0, out)


__all__ = ["PRV_DELTA_ERROR", "PRV_EPS_ERROR", "subsampled_gaussian_epsilon", "subsampled_gaussian_profile"]
