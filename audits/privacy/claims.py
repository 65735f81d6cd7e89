"""The claim a privacy audit tests, and the broken-DP variants that must fail it.

A ``Claim`` is what the accountant says about a DP run: ε at δ for (σ, C, q, T). Under it, a
record's view of full-batch DP-GD is the Gaussian mechanism with μ = √T/σ (μ-GDP, Dong, Roth &
Su 2022), and of Poisson-subsampled DP-SGD the subsampled-Gaussian curve the accountant composes.
``claim_for`` derives the claim of a ``DPConfig`` and the configuration a canary run executes,
optionally with an injected bug (``BUGS``): the audit's own positive controls.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from audits.choices import WHITEBOX_BUGS
from privtangent.dp.accounting import epsilon
from privtangent.dp.calibration import calibrate_noise
from privtangent.dp.config import DPConfig
from privtangent.errors import ConfigError

BUGS = WHITEBOX_BUGS
CLIP_OFF_NORM = 1e6  # "clipping off": C so large that no gradient is ever clipped
WRONG_STEPS_FACTOR = 10  # wrong-steps: σ calibrated for T / 10 steps
WRONG_RATE_FACTOR = 10  # wrong-sample-rate: σ calibrated for q / 10 (q = 1 → 0.1)


@dataclass(frozen=True)
class Claim:
    """What the accountant says about a run: ε at δ for (σ, C, q, T)."""

    epsilon: float
    delta: float
    noise_multiplier: float
    max_grad_norm: float
    sample_rate: float
    steps: int
    accountant: str
    target_epsilon: float | None = None

    @property
    def mu(self) -> float | None:
        """μ of the accountant's μ-GDP curve (full batch); None for Poisson sampling."""
        return math.sqrt(self.steps) / self.noise_multiplier if self.sample_rate == 1.0 else None

    def curve(self) -> str:
        if self.mu is not None:
            return (f"μ-GDP with μ = √T/σ = √{self.steps}/{self.noise_multiplier:.4g} = {self.mu:.4g} "
                    f"(full-batch DP-GD: each record's view is the Gaussian mechanism; the accountant's own curve)")
        return (f"f-DP with the Poisson-subsampled Gaussian curve of q = {self.sample_rate:g}, σ = "
                f"{self.noise_multiplier:.4g}, T = {self.steps} (the curve the accountant composes)")

    def hypothesis(self) -> str:
        return (f"H0: the DP training is {self.curve()}, hence (ε = {self.epsilon:.4g}, δ = {self.delta:g})-DP as "
                f"claimed (accountant {self.accountant}). The f-DP bound tests the curve, the binomial bound tests "
                "(ε, δ)-DP. A lower bound above the claimed ε refutes the claim at the stated confidence; a bound "
                "below it does not prove (ε, δ)-DP.")

    def to_dict(self) -> dict[str, Any]:
        return {"epsilon": self.epsilon, "delta": self.delta, "noise_multiplier": self.noise_multiplier,
                "max_grad_norm": self.max_grad_norm, "sample_rate": self.sample_rate, "steps": self.steps,
                "accountant": self.accountant, "mu": self.mu, "target_epsilon": self.target_epsilon}


def general_hypothesis(claims: Sequence[Claim]) -> str:
    """The null hypothesis of an audit of several claims (one per ε)."""
    if len(claims) == 1:
        return claims[0].hypothesis()
    curves = "; ".join(f"ε = {c.epsilon:.4g}: μ = √{c.steps}/{c.noise_multiplier:.4g} = {c.mu:.4g}" if c.mu is not None
                       else f"ε = {c.epsilon:.4g}: q = {c.sample_rate:g}, σ = {c.noise_multiplier:.4g}, T = {c.steps}"
                       for c in claims)
    return ("H0, for each claimed ε: the DP training is f-DP with the accountant's own curve — μ-GDP with μ = √T/σ for "
            "full-batch DP-GD (each record's view is the Gaussian mechanism), the Poisson-subsampled Gaussian curve "
            f"for q < 1 ({curves}) — hence (ε, δ = {claims[0].delta:g})-DP as claimed. The f-DP bound tests the curve, "
            "the binomial bound tests (ε, δ)-DP. A lower bound above the claimed ε refutes the claim at the stated "
            "confidence; a bound below it does not prove (ε, δ)-DP.")


def claim_for(dp_config: DPConfig, dataset_size: int, bug: str | None = None) -> tuple[Claim, DPConfig]:
    """(the claim, the ``DPConfig`` the canary run executes) for ``dp_config`` with an optional bug.

    The run config always carries an explicit ``noise_multiplier`` (the σ the claim was made for,
    or the bug's σ), so the canary run and the claim cannot drift apart by a second calibration.
    """
    if bug is not None and bug not in BUGS:
        raise ConfigError(f"unknown bug {bug!r}; choose one of {', '.join(BUGS)}")
    cfg = dp_config
    q_claim, steps_claim = float(cfg.sample_rate), int(cfg.steps)
    if bug == "wrong-steps":
        steps_claim = max(1, steps_claim // WRONG_STEPS_FACTOR)
    if bug == "wrong-sample-rate":
        q_claim = q_claim / WRONG_RATE_FACTOR
    if cfg.noise_multiplier is not None:
        sigma = float(cfg.noise_multiplier)
    else:
        assert cfg.target_epsilon is not None  # DPConfig refuses neither being given
        sigma = float(calibrate_noise(cfg.target_epsilon, cfg.delta, q_claim, steps_claim, cfg.accountant,
                                      dataset_size=dataset_size))
    if not sigma > 0:
        raise ConfigError("the white-box audit needs a private configuration (noise_multiplier > 0)")
    eps = float(epsilon(sigma, q_claim, steps_claim, cfg.delta, cfg.accountant))
    claim = Claim(eps, float(cfg.delta), sigma, float(cfg.max_grad_norm), q_claim, steps_claim, cfg.accountant,
                  cfg.target_epsilon)
    run_sigma, run_clip = sigma, float(cfg.max_grad_norm)
    if bug == "noise-half":
        run_sigma = sigma / 2.0
    elif bug == "clip-off":
        run_clip, run_sigma = CLIP_OFF_NORM, sigma * float(cfg.max_grad_norm) / CLIP_OFF_NORM
    return claim, cfg.replace(target_epsilon=None, noise_multiplier=run_sigma, max_grad_norm=run_clip)


__all__ = ["BUGS", "CLIP_OFF_NORM", "Claim", "WRONG_RATE_FACTOR", "WRONG_STEPS_FACTOR", "claim_for",
           "general_hypothesis"]
