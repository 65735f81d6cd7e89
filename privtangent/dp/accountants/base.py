"""The accountant interface and the name -> accountant registry.

An accountant answers one question: after `steps` rounds of the (Poisson-subsampled) Gaussian
mechanism with noise multiplier σ and sampling rate q, what is the smallest ε such that the
composition is (ε, δ)-DP? Accountants are stateless and pure; they assume their inputs are
already validated (`privtangent.dp.accounting` validates them).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from privtangent.errors import ConfigError


class Accountant(ABC):
    """(ε, δ) accounting for `steps` compositions of the subsampled Gaussian mechanism."""

    name: ClassVar[str]
    """The registry name (``"prv"``, ``"rdp"``, ``"gdp"``)."""
    method: ClassVar[str]
    """One line naming the method and the paper it comes from (recorded in manifests)."""
    cheap: ClassVar[bool] = False
    """True when one `epsilon` call costs milliseconds (calibration then searches more tightly)."""

    @abstractmethod
    def epsilon(
        self, noise_multiplier: float, sample_rate: float, steps: int, delta: float
    ) -> float:
        """The accountant's conservative ε (an upper bound); ``math.inf`` when it cannot tell."""

    def approx_epsilon(
        self, noise_multiplier: float, sample_rate: float, steps: int, delta: float
    ) -> float:
        """A cheaper estimate of `epsilon`, used only to steer the noise search.

        The search always verifies its answer with `epsilon`, so this need not be a bound;
        it only has to track `epsilon` closely (≈0.1 %). Default: `epsilon` itself.
        """
        return self.epsilon(noise_multiplier, sample_rate, steps, delta)

    def check_supported(self, sample_rate: float) -> None:
        """Raise `ConfigError` when this accountant's analysis does not cover `sample_rate`."""


_REGISTRY: dict[str, Accountant] = {}
_FULL_BATCH_EXACT: dict[str, str] = {}


def register(
    accountant: Accountant, *, exact_at_full_batch_for: tuple[str, ...] = ()
) -> Accountant:
    """Add `accountant` under its `name`.

    `exact_at_full_batch_for` names accountants that this one replaces when sample_rate == 1
    (full-batch DP-GD), because it is exact there.
    """
    _REGISTRY[accountant.name] = accountant
    for other in exact_at_full_batch_for:
        _FULL_BATCH_EXACT[other] = accountant.name
    return accountant


def available() -> tuple[str, ...]:
    """The registered accountant names, sorted."""
    return tuple(sorted(_REGISTRY))


def get_accountant(name: str, sample_rate: float | None = None) -> Accountant:
    """The accountant registered as `name`, or the exact one that replaces it at sample_rate == 1.

    Raises `ConfigError` for an unknown name or a sample rate the accountant does not cover.
    """
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ConfigError(f"unknown accountant {name!r}; choose one of {', '.join(available())}")
    if sample_rate == 1.0 and name in _FULL_BATCH_EXACT:
        name = _FULL_BATCH_EXACT[name]
    acc = _REGISTRY[name]
    if sample_rate is not None:
        acc.check_supported(sample_rate)
    return acc
