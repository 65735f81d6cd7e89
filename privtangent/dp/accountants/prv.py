"""The default accountant: privacy random variables (PRV), via Microsoft's `prv-accountant`.

Gopi, Lee & Wutschitz, "Numerical Composition of Differential Privacy", NeurIPS 2021
(arXiv:2106.02848). The privacy loss of one subsampled-Gaussian step is discretized on a mesh,
composed T times by FFT, and ε is read off with rigorous error bars: the package returns
(lower, estimate, upper) with upper − estimate ≤ eps_error (+ the effect of delta_error). We
report the upper bound.

Choices made here (the package leaves them to the caller):
- eps_error is relative, `REL_EPS_ERROR` × the RDP ε (an upper bound of the true ε), so the
  reported ε sits ≈0.3–0.4 % above the estimate at any scale; the mesh is coarsened when the
  domain would exceed `MAX_DOMAIN` points (large T with small ε, or very large σ: the bound is
  then looser, e.g. +0.5 % at ε = 1, T = 14062, never wrong).
- delta_error = δ/1000, as the package's own `Accountant` does.
- The domain half-width follows the package's `compute_safe_domain_size` (Remark 5.6 of the
  paper), from one RDP object (over `RDP_ORDERS`; any orders give a valid tail bound) that also
  gives the rough ε; it is widened to an FFT-friendly size and passed as `eps_max`.
- prv-accountant 0.2.0 fails for very large ε (≈25+: "Discrete mean differs from continuous mean
  significantly", "Cannot compute epsilon", overflow), and for δ so small (≲1e-13) that
  long-double rounding dominates. Any such failure means ε = ∞ (conservative, never a crash).
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np
from numpy.typing import ArrayLike
from prv_accountant import PoissonSubsampledGaussianMechanism
from prv_accountant import PRVAccountant as _PRVComposer
from prv_accountant.other_accountants import RDP

from privtangent.dp.accountants.base import Accountant, register

REL_EPS_ERROR = 0.003
MIN_EPS_ERROR = 1e-4
DELTA_ERROR_FRACTION = 1e-3
MAX_DOMAIN = 2**20
APPROX_COARSENING = 10.0  # the search's cheap estimate uses a mesh this much coarser
# RDP orders for the rough ε and the domain size: any orders give a valid bound; integer orders
# are cheap to evaluate (the package's 99 fractional ones cost up to 1 s at q = 0.5, large σ).
RDP_ORDERS: tuple[float, ...] = tuple(
    [1.5, 1.75, 2.5, 3.5]
    + list(range(2, 17))
    + [20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 128, 160, 192, 256]
)

_FAILURES = (
    RuntimeError, ValueError, OverflowError, FloatingPointError, ZeroDivisionError, MemoryError
)

Bounds = tuple[float, float, float]
_INF_BOUNDS: Bounds = (math.inf, math.inf, math.inf)


class _SharedEdgeMechanism(PoissonSubsampledGaussianMechanism):
    """The package's subsampled-Gaussian PRV, with the cell probabilities P(a_i < t ≤ b_i) of a
    mesh computed from one CDF evaluation per edge (b_i = a_{i+1}) instead of two; this halves
    the cost of the long-double CDF, the largest part of building the PRV."""

    def probability(self, a: ArrayLike, b: ArrayLike) -> np.ndarray:
        a, b = np.asarray(a), np.asarray(b)
        if a.ndim == 1 and a.shape == b.shape and a.size > 2:
            cell = abs(b[1] - a[1])
            if np.all(np.abs(a[1:] - b[:-1]) <= 1e-6 * cell):
                c = self.cdf(np.concatenate([a, b[-1:]]))
                return c[1:] - c[:-1]
        return super().probability(a, b)


def _fast_size(n: int) -> int:
    """The smallest FFT-friendly even size >= n (long-double FFTs crawl on sizes like 5^8)."""
    return min(m << k for m in (8, 9, 10, 12, 15) for k in range(28) if m << k >= n)


def _composer(
    noise_multiplier: float, sample_rate: float, steps: int, delta: float, coarsening: float
) -> tuple[_PRVComposer, float] | None:
    """The package's PRV composer for T steps and its eps_error (None means ε = ∞)."""
    prv = _SharedEdgeMechanism(sampling_probability=sample_rate, noise_multiplier=noise_multiplier)
    delta_error = delta * DELTA_ERROR_FRACTION
    rdp = RDP(prvs=[prv], orders=list(RDP_ORDERS))
    rough = rdp.compute_epsilon(delta=delta, num_self_compositions=[steps])[2]
    # compute_safe_domain_size (Gopi et al. Remark 5.6), sharing one RDP object
    half_width = max(
        rdp.compute_epsilon(delta=delta_error / 4, num_self_compositions=[steps])[2],
        rdp.compute_epsilon(delta=delta_error / 8 / steps, num_self_compositions=[1])[2],
    )
    if not (math.isfinite(rough) and math.isfinite(half_width)):
        return None
    eps_error = max(REL_EPS_ERROR * rough, MIN_EPS_ERROR)
    half_width = max(half_width, eps_error) + 3
    # the package's mesh is eps_error / spread (Theorem 5.5 of the paper)
    spread = math.sqrt(steps / 2 * math.log(12 / delta_error))
    eps_error = max(eps_error, 2 * half_width * spread / (MAX_DOMAIN - 4))
    # widen the domain to an FFT-friendly size: the package builds 2·ceil(L/mesh) + 2 points
    mesh = eps_error * coarsening / spread
    size = _fast_size(2 * math.ceil(half_width / mesh) + 2)
    half_width = (size / 2 - 1.5) * mesh
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Assuming that true epsilon < L", numpy overflow
        composer = _PRVComposer(
            prvs=[prv],
            max_self_compositions=[steps],
            eps_error=eps_error * coarsening,
            delta_error=delta_error,
            eps_max=half_width,
        )
    return composer, eps_error


def _clean(bounds: Bounds) -> Bounds:
    lo, est, up = (float(b) for b in bounds)
    if not (math.isfinite(est) and math.isfinite(up)):
        return _INF_BOUNDS
    return (max(lo, 0.0) if math.isfinite(lo) else 0.0, max(est, 0.0), max(up, 0.0))


@functools.lru_cache(maxsize=512)
def prv_bounds(noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> Bounds:
    """(lower, estimate, upper) bounds on ε from the PRV accountant; all ∞ when it fails."""
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            built = _composer(noise_multiplier, sample_rate, steps, delta, coarsening=1.0)
            if built is None:
                return _INF_BOUNDS
            composer, _ = built
            return _clean(composer.compute_epsilon(delta=delta, num_self_compositions=[steps]))
    except _FAILURES:
        return _INF_BOUNDS


@functools.lru_cache(maxsize=512)
def prv_upper_approx(
    noise_multiplier: float, sample_rate: float, steps: int, delta: float
) -> float:
    """A cheap stand-in for `prv_bounds(...)[2]`: the same read-out on a coarser mesh.

    Not a bound (the mesh error is not added); it tracks the upper bound to ≈0.05 %.
    """
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            built = _composer(noise_multiplier, sample_rate, steps, delta, APPROX_COARSENING)
            if built is None:
                return math.inf
            composer, eps_error = built
            composed = composer.compute_composition(num_self_compositions=[steps])
            bounds = composed.compute_epsilon(delta, composer.delta_error, eps_error)
            return _clean(bounds)[2]
    except _FAILURES:
        return math.inf


class PRVAccountant(Accountant):
    """The upper bound of the PRV accountant (Gopi et al. 2021) for Poisson-subsampled DP-SGD."""

    name = "prv"
    method = "privacy random variables, upper bound (Gopi, Lee & Wutschitz 2021; prv-accountant)"

    def epsilon(
        self, noise_multiplier: float, sample_rate: float, steps: int, delta: float
    ) -> float:
        return prv_bounds(float(noise_multiplier), float(sample_rate), int(steps), float(delta))[2]

    def approx_epsilon(
        self, noise_multiplier: float, sample_rate: float, steps: int, delta: float
    ) -> float:
        return prv_upper_approx(
            float(noise_multiplier), float(sample_rate), int(steps), float(delta)
        )


PRV = register(PRVAccountant())
