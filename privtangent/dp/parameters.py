"""Validation of the parameters of the Gaussian mechanism and its accounting, in one place.

σ (noise multiplier), q (sample rate), T (steps), δ, the target ε and C (clipping norm): each
checker returns the value as a Python number or raises ``ConfigError`` naming it.
``warn_if_delta_too_large`` flags δ ≥ 1/N, which makes a guarantee meaningless.
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

from privtangent.errors import ConfigError


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


def check_noise_multiplier(noise_multiplier: Any, allow_zero: bool = False) -> float:
    """σ > 0 (an accountant's input), or σ ≥ 0 with ``allow_zero`` (a mechanism may run without
    noise, for tests and broken-DP controls; such a run is not private and says so)."""
    s = _real(noise_multiplier, "noise_multiplier")
    if s < 0.0 or (s == 0.0 and not allow_zero):
        raise ConfigError(f"noise_multiplier must be {'≥' if allow_zero else '>'} 0 (σ = 0 gives no privacy), got {s}")
    return s


def check_max_grad_norm(max_grad_norm: Any) -> float:
    c = _real(max_grad_norm, "max_grad_norm (the clipping norm C)")
    if not c > 0:
        raise ConfigError(f"max_grad_norm (the clipping norm C) must be a positive finite number, got {max_grad_norm!r}")
    return c


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


__all__ = ["PrivacyWarning", "check_delta", "check_epsilon", "check_max_grad_norm", "check_noise_multiplier",
           "check_sample_rate", "check_steps", "warn_if_delta_too_large"]
