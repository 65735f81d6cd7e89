"""Rényi-DP accounting through Opacus (the cross-check accountant).

Mironov, "Rényi Differential Privacy", CSF 2017, with the subsampled-Gaussian RDP of Mironov,
Talwar & Zhang, "Rényi Differential Privacy of the Sampled Gaussian Mechanism", 2019, and the
RDP → (ε, δ) conversion of Balle et al. 2020 as Opacus implements it. RDP is a valid upper bound
but loose: on this project's reference settings it is 8–15 % above the PRV accountant.
"""

from __future__ import annotations

import math
import warnings

from opacus.accountants import RDPAccountant as _OpacusRDP

from privtangent.dp.accountants.base import Accountant, register

# Opacus's default orders, plus larger ones so that small-ε settings (large σ) are not cut off
# at α = 63 (Opacus then warns "Optimal order is the largest alpha" and the bound is loose).
ORDERS: tuple[float, ...] = (
    tuple(1 + x / 10.0 for x in range(1, 100))
    + tuple(float(a) for a in range(12, 64))
    + (64.0, 80.0, 96.0, 128.0, 192.0, 256.0, 384.0, 512.0, 768.0, 1024.0)
)


class RDPAccountant(Accountant):
    """Opacus's `RDPAccountant` over `ORDERS`."""

    name = "rdp"
    method = "Rényi DP of the subsampled Gaussian mechanism, via Opacus (Mironov 2017)"
    cheap = True

    def epsilon(
        self, noise_multiplier: float, sample_rate: float, steps: int, delta: float
    ) -> float:

        acc = _OpacusRDP()
        acc.history = [(float(noise_multiplier), float(sample_rate), int(steps))]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Optimal order is the largest alpha", overflow
            eps = float(acc.get_epsilon(delta=delta, alphas=list(ORDERS)))
        return max(eps, 0.0) if math.isfinite(eps) else math.inf


RDP = register(RDPAccountant())
