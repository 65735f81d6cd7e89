"""Checks of the inputs every audit bound takes: counts, the one-run game, confidence, δ.

Each returns the value as a Python number or raises ``ConfigError`` naming the argument.
"""

from __future__ import annotations

from numbers import Integral, Real

from privtangent.errors import ConfigError


def require_count(value: object, name: str) -> int:
    """``value`` as a non-negative int."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ConfigError(f"{name} must be a non-negative integer count, got {value!r}")
    if isinstance(value, Integral):
        count = int(value)
    elif float(value).is_integer():
        count = int(float(value))
    else:
        raise ConfigError(f"{name} must be a non-negative integer count, got {value!r}")
    if count < 0:
        raise ConfigError(f"{name} must be a non-negative integer count, got {value!r}")
    return count


def require_confidence(confidence: object) -> float:
    """``confidence`` as a float in the open interval (0, 1)."""
    if isinstance(confidence, bool) or not isinstance(confidence, Real) or not 0.0 < float(confidence) < 1.0:
        raise ConfigError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")
    return float(confidence)


def require_delta(delta: object) -> float:
    """``delta`` as a float in [0, 1)."""
    if isinstance(delta, bool) or not isinstance(delta, Real) or not 0.0 <= float(delta) < 1.0:
        raise ConfigError(f"delta must lie in [0, 1), got {delta!r}")
    return float(delta)


def require_game(num_canaries: object, num_guesses: object, num_correct: object) -> tuple[int, int, int]:
    """(m, r, v) of a one-run game as ints with 0 ≤ v ≤ r ≤ m and m ≥ 1.

    m counts every canary of the game, including those the auditor abstained on: passing the
    number of guesses as m over-claims.
    """
    m = require_count(num_canaries, "num_canaries")
    r = require_count(num_guesses, "num_guesses")
    v = require_count(num_correct, "num_correct")
    if m == 0:
        raise ConfigError("num_canaries must be at least 1, got 0")
    if r > m:
        raise ConfigError(f"num_guesses ({r}) must not exceed num_canaries ({m}); num_canaries counts every "
                          "canary, including those the auditor abstained on")
    if v > r:
        raise ConfigError(f"num_correct ({v}) must not exceed num_guesses ({r})")
    return m, r, v


__all__ = ["require_confidence", "require_count", "require_delta", "require_game"]
