"""Noise calibration: `calibrate_noise` (public contract), the smallest σ (to 1 %) with ε ≤ target.

ε(σ) decreases in σ and log ε is close to linear in log σ, so the search works in log σ:
1. Start at the σ that the Gaussian-DP central limit theorem predicts (Bu, Dong, Long & Su 2020,
   "Deep learning with Gaussian differential privacy": μ ≈ q·√(T·(e^{1/σ²} − 1)); exact,
   μ = √T/σ, when q = 1), with the model's local slope for the first step.
2. Bracket the root, then shrink the bracket by log-log interpolation, probing just either side
   of the interpolated root so that two probes close it (bisection when that stalls).
3. For the PRV accountant, steps 1–2 run on its cheap coarse-mesh estimate (≈0.1 % from the
   bound, 5–10× faster); the answer is then verified with the real bound and, if it overshoots,
   the search goes on with the real bound. The σ returned always satisfies ε(σ) ≤ target for
   the accountant asked for, and ε(σ/1.01) > target (for PRV, as far as the estimate's ≈0.01 %
   accuracy goes).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from privtangent.dp.accountants import Accountant, get_accountant
from privtangent.dp.accounting import DEFAULT_ACCOUNTANT
from privtangent.dp.analysis.gaussian_dp import gdp_epsilon, gdp_mu
from privtangent.dp.parameters import (
    check_delta,
    check_epsilon,
    check_sample_rate,
    check_steps,
    warn_if_delta_too_large,
)
from privtangent.errors import ConfigError

REL_TOL = 0.01  # the contract: within 1 % of the smallest σ
CHEAP_REL_TOL = 1e-4  # accountants that cost milliseconds get a tighter answer
APPROX_REL_TOL = 1e-3  # bracket width on the cheap estimate
APPROX_MARGIN = 2e-3  # step above the estimate's bracket before verifying with the bound
SIGMA_MIN, SIGMA_MAX = 1e-3, 1e5
_MAX_EVALS = 60

EpsilonFn = Callable[[float], float]


def _clt_sigma(target_epsilon: float, delta: float, sample_rate: float, steps: int) -> float:
    """σ at which the GDP central-limit approximation gives ε = target (exact when q = 1)."""
    mu = gdp_mu(target_epsilon, delta)
    if sample_rate == 1.0:
        return math.sqrt(steps) / mu
    x = mu * mu / (sample_rate * sample_rate * steps)
    return 1.0 / math.sqrt(math.log1p(x))


def _clt_epsilon(sigma: float, delta: float, sample_rate: float, steps: int) -> float:
    if sample_rate == 1.0:
        return gdp_epsilon(math.sqrt(steps) / sigma, delta)
    mu = sample_rate * math.sqrt(steps * math.expm1(min(1.0 / (sigma * sigma), 700.0)))
    return gdp_epsilon(mu, delta)


def _clt_slope(sigma: float, delta: float, sample_rate: float, steps: int) -> float:
    """−d log ε / d log σ of the CLT model at σ, clamped to [0.5, 10] (1 if undefined)."""
    try:
        e1 = _clt_epsilon(sigma, delta, sample_rate, steps)
        e2 = _clt_epsilon(sigma * 1.01, delta, sample_rate, steps)
        k = (math.log(e1) - math.log(e2)) / math.log(1.01)
    except (ValueError, OverflowError, ZeroDivisionError):
        return 1.0
    return min(max(k, 0.5), 10.0) if math.isfinite(k) else 1.0


def _search(
    f: EpsilonFn,
    target: float,
    rel_tol: float,
    start: float,
    slope: float = 1.0,
    known: dict[float, float] | None = None,
) -> tuple[float, float]:
    """(lo, hi) with f(lo) > target ≥ f(hi) and hi/lo ≤ 1 + rel_tol; f decreasing in σ.

    Works on u = log σ. `known` maps σ to already computed f(σ).
    """
    h = math.log1p(rel_tol)
    s = 0.45 * h  # probes at u* ± s close the bracket when u* is within 0.05·h of the root
    lt = math.log(target)
    pts: dict[float, float] = {math.log(k): v for k, v in (known or {}).items()}
    widths: list[float] = []

    def evaluate(u: float) -> None:
        if not math.log(SIGMA_MIN) <= u <= math.log(SIGMA_MAX):
            raise ConfigError(
                f"target_epsilon={target:g} is out of reach: it needs a noise multiplier outside "
                f"[{SIGMA_MIN:g}, {SIGMA_MAX:g}]"
            )
        pts[u] = float(f(math.exp(u)))

    if not pts:
        evaluate(math.log(start))
    k = slope
    jump = 0.5
    for _ in range(_MAX_EVALS):
        los = [u for u, e in pts.items() if e > target]
        lo = max(los) if los else None
        his = [u for u, e in pts.items() if e <= target and (lo is None or u > lo)]
        hi = min(his) if his else None
        if lo is not None and hi is not None:
            w = hi - lo
            if w <= h:
                return math.exp(lo), math.exp(hi)
            widths.append(w)
            e_lo, e_hi = pts[lo], pts[hi]
            stalled = len(widths) >= 3 and widths[-1] > 0.5 * widths[-3]
            if stalled or not math.isfinite(e_lo) or e_hi <= 0.0:
                evaluate((lo + hi) / 2)
                continue
            l_lo, l_hi = math.log(e_lo), math.log(e_hi)
            root = lo + (l_lo - lt) / (l_lo - l_hi) * w
            evaluate(root + s if hi - root >= root - lo else root - s)
            continue
        # one side only: step along the slope, past the predicted root by s
        finite = sorted((u, math.log(e)) for u, e in pts.items() if 0.0 < e < math.inf)
        if len(finite) >= 2:
            (u1, l1), (u2, l2) = finite[0], finite[-1]
            if u2 > u1 and l1 > l2:
                k = min(max((l1 - l2) / (u2 - u1), 0.5), 10.0)
        if lo is None:  # every point has f ≤ target: go down
            u = min(pts)
            e = pts[u]
            step = (lt - math.log(e)) / k + s if e > 0.0 else jump
            evaluate(u - min(max(step, h), 3.0))
        else:  # every point has f > target: go up
            u = lo
            e = pts[u]
            step = (math.log(e) - lt) / k + s if math.isfinite(e) else jump
            evaluate(u + min(max(step, h), 3.0))
        jump *= 2
    raise RuntimeError(f"noise search did not converge for target_epsilon={target:g}")


def calibrate_noise(
    target_epsilon: float,
    delta: float,
    sample_rate: float,
    steps: int,
    accountant: str = DEFAULT_ACCOUNTANT,
    *,
    dataset_size: int | None = None,
) -> float:
    """The smallest noise multiplier σ, within 1 %, whose ε (by `accountant`) is ≤ target.

    Args:
        target_epsilon: ε to reach (> 0, finite).
        delta: δ in (0, 1).
        sample_rate: q in (0, 1]; 1 = full-batch DP-GD (then "prv" uses the exact GDP).
        steps: T, number of noisy steps (integer >= 1).
        accountant: "prv" (default), "rdp" or "gdp" (q == 1 only).
        dataset_size: N; when given, warns (`PrivacyWarning`) if δ >= 1/N.

    Returns:
        σ with `epsilon(σ, q, T, δ, accountant) <= target_epsilon` (always checked) and
        `epsilon(σ / 1.01, ...) > target_epsilon` (for "prv", up to the ≈0.01 % accuracy of
        its cheap estimate, which the search uses to locate σ).

    Raises:
        ConfigError: an input is out of range, or the target needs σ outside [1e-3, 1e5].
    """
    target = check_epsilon(target_epsilon)
    d = check_delta(delta)
    q = check_sample_rate(sample_rate)
    t = check_steps(steps)
    warn_if_delta_too_large(d, dataset_size)
    acc: Accountant = get_accountant(accountant, q)

    start = min(max(_clt_sigma(target, d, q, t), SIGMA_MIN * 1.01), SIGMA_MAX / 1.01)
    slope = _clt_slope(start, d, q, t)

    def exact(sigma: float) -> float:
        return acc.epsilon(sigma, q, t, d)

    if acc.cheap:
        return _search(exact, target, CHEAP_REL_TOL, start, slope)[1]
    if type(acc).approx_epsilon is Accountant.approx_epsilon:
        return _search(exact, target, REL_TOL * 0.99, start, slope)[1]

    def approx(sigma: float) -> float:
        return acc.approx_epsilon(sigma, q, t, d)

    sigma = _search(approx, target, APPROX_REL_TOL, start, slope)[1] * (1 + APPROX_MARGIN)
    eps = exact(sigma)
    if eps <= target:
        return sigma
    # the estimate misled us (rare): finish the search on the bound itself
    return _search(exact, target, REL_TOL * 0.99, sigma, slope, known={sigma: eps})[1]


__all__ = ["calibrate_noise"]
