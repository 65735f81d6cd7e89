"""ε for DP-SGD / DP-GD: `epsilon` (public contract) and `epsilon_report` (for run manifests).

The mechanism is `steps` rounds of the Gaussian mechanism with noise multiplier σ (noise std
σ·C for clipping norm C) on a Poisson sample of rate q (q = 1: full-batch DP-GD), under
add/remove-one-record adjacency. Accountants (see `privtangent.dp.accountants`):
- "prv" (default): Gopi, Lee & Wutschitz 2021, numerical PRV composition, upper bound;
  replaced by the exact "gdp" when q == 1;
- "rdp": Mironov 2017 Rényi DP via Opacus, a looser cross-check;
- "gdp": Dong, Roth & Su 2022 Gaussian DP, exact for q == 1 only.
"""

from __future__ import annotations

import functools
from typing import Any

from privtangent.dp.accountants import available, get_accountant
from privtangent.dp.accountants.prv import prv_bounds
from privtangent.dp.parameters import (
    PrivacyWarning,
    check_delta,
    check_noise_multiplier,
    check_sample_rate,
    check_steps,
    warn_if_delta_too_large,
)

DEFAULT_ACCOUNTANT = "prv"


def epsilon(
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    delta: float,
    accountant: str = DEFAULT_ACCOUNTANT,
    *,
    dataset_size: int | None = None,
) -> float:
    """The (conservative) ε after `steps` subsampled-Gaussian steps; `math.inf` if unbounded.

    Args:
        noise_multiplier: σ, noise std divided by the clipping norm (> 0).
        sample_rate: q, Poisson sampling probability in (0, 1]; 1 = full-batch DP-GD.
        steps: T, number of noisy gradient steps (integer >= 1).
        delta: δ in (0, 1).
        accountant: "prv" (default; the exact "gdp" when q == 1), "rdp" or "gdp".
        dataset_size: N; when given, warns (`PrivacyWarning`) if δ >= 1/N.

    Returns:
        The accountant's upper bound on ε: for "prv" the upper end of the PRV accountant's
        (lower, estimate, upper), ≈0.3–0.4 % above its estimate; for "gdp" the exact value.

    Raises:
        ConfigError: an input is out of range, or the accountant does not cover `sample_rate`.
    """
    sigma = check_noise_multiplier(noise_multiplier)
    q = check_sample_rate(sample_rate)
    t = check_steps(steps)
    d = check_delta(delta)
    warn_if_delta_too_large(d, dataset_size)
    return float(get_accountant(accountant, q).epsilon(sigma, q, t, d))


def epsilon_report(
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    delta: float,
    *,
    dataset_size: int | None = None,
) -> dict[str, Any]:
    """ε from every applicable accountant, for a run's manifest.

    Returns a JSON-ready dict (ε may be `math.inf`, which `json.dumps` writes as `Infinity`):
    ``{"noise_multiplier", "sample_rate", "steps", "delta", "accountant", "epsilon",
    "prv", "prv_bounds" (q < 1), "rdp", "gdp" (q == 1), "methods"}``, where "epsilon" is the
    value the default accountant ("prv"; exact "gdp" when q == 1, when "prv" holds the same
    exact value) reports, "prv_bounds" is the PRV (lower, estimate, upper) triple and "methods"
    names the method and paper behind each number.
    """
    sigma = check_noise_multiplier(noise_multiplier)
    q = check_sample_rate(sample_rate)
    t = check_steps(steps)
    d = check_delta(delta)
    warn_if_delta_too_large(d, dataset_size)
    default = get_accountant(DEFAULT_ACCOUNTANT, q)
    names = ["prv", "rdp"] + (["gdp"] if q == 1.0 else [])
    report: dict[str, Any] = {
        "noise_multiplier": sigma,
        "sample_rate": q,
        "steps": t,
        "delta": d,
        "accountant": default.name,
        "epsilon": float(default.epsilon(sigma, q, t, d)),
    }
    methods: dict[str, str] = {}
    for name in names:
        acc = get_accountant(name, q)
        report[name] = float(acc.epsilon(sigma, q, t, d))
        methods[name] = acc.method
    if q < 1.0:
        report["prv_bounds"] = list(prv_bounds(sigma, q, t, d))
    report["methods"] = methods
    return report


@functools.lru_cache(maxsize=4096)
def epsilon_spent(noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> float:
    """ε after the first ``steps`` steps, for progress displays (online accounting).

    Exact Gaussian DP for full batch (q = 1); RDP otherwise (milliseconds a call, an upper bound
    slightly above PRV's: the final manifest's ε comes from the run's own accountant).
    """
    accountant = "gdp" if sample_rate == 1.0 else "rdp"
    return epsilon(noise_multiplier, sample_rate, steps, delta, accountant)


__all__ = ["DEFAULT_ACCOUNTANT", "PrivacyWarning", "available", "epsilon", "epsilon_report", "epsilon_spent"]
