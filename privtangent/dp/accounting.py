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

import math
import numbers
import warnings
from typing import Any

from privtangent.dp.accountants import available, get_accountant
from privtangent.errors import ConfigError

DEFAULT_ACCOUNTANT = "prv"


class PrivacyWarning(UserWarning):
    """A privacy parameter is legal but unsafe (e.g. δ not much smaller than 1/N)."""


def _real(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{what} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ConfigError(f"{what} must be finite, got {value}")
    return value


def check_delta(delta: Any) -> float:
    d = _real(delta, "delta")
    if not 0.0 < d < 1.0:
        raise ConfigError(f"delta must be in (0, 1), got {d}; typical: 1e-5, well below 1/N")
    return d


def check_sample_rate(sample_rate: Any) -> float:
    q = _real(sample_rate, "sample_rate")
    if not 0.0 < q <= 1.0:
        raise ConfigError(
            f"sample_rate must be in (0, 1] (batch size / N; 1 = full batch), got {q}"
        )
    return q


def check_steps(steps: Any) -> int:
    ok = not isinstance(steps, bool) and (
        isinstance(steps, numbers.Integral) or (isinstance(steps, float) and steps.is_integer())
    )
    if not ok:
        raise ConfigError(f"steps must be a whole number of steps, got {steps!r}")
    if int(steps) < 1:
        raise ConfigError(f"steps must be >= 1, got {int(steps)}")
    return int(steps)


def check_noise_multiplier(noise_multiplier: Any) -> float:
    s = _real(noise_multiplier, "noise_multiplier")
    if s <= 0.0:
        raise ConfigError(f"noise_multiplier must be > 0 (σ = 0 gives no privacy), got {s}")
    return s


def check_epsilon(target_epsilon: Any) -> float:
    e = _real(target_epsilon, "target_epsilon")
    if e <= 0.0:
        raise ConfigError(f"target_epsilon must be > 0, got {e}")
    return e


def warn_if_delta_too_large(delta: float, dataset_size: Any) -> None:
    """Warn (`PrivacyWarning`) when δ ≥ 1/N: such a δ lets a whole record be released."""
    if dataset_size is None:
        return
    integral = isinstance(dataset_size, numbers.Integral) and not isinstance(dataset_size, bool)
    if not integral or dataset_size < 1:
        raise ConfigError(f"dataset_size must be a positive integer, got {dataset_size!r}")
    if delta >= 1.0 / dataset_size:
        warnings.warn(
            f"PRIVACY: delta={delta:g} >= 1/N = 1/{dataset_size} = {1.0 / dataset_size:g}. "
            "A mechanism that publishes one random record verbatim is (0, 1/N)-DP, so this "
            f"guarantee is meaningless: delta should be << 1/N (e.g. <= {0.1 / dataset_size:.1g}).",
            PrivacyWarning,
            stacklevel=3,
        )


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
        from privtangent.dp.accountants.prv import prv_bounds

        report["prv_bounds"] = list(prv_bounds(sigma, q, t, d))
    report["methods"] = methods
    return report


__all__ = ["DEFAULT_ACCOUNTANT", "PrivacyWarning", "available", "epsilon", "epsilon_report"]
