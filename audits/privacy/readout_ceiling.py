"""How much of a canary's signal can any reading of the FINAL model keep, given the optimizer?

The white-box audit observes the privatized gradients; a black-box audit observes the released
model, which is the optimizer's output. A canary adds the same clipped gradient c·u at each of
the T steps, against Gaussian noise of std σ·C per step; the noisy gradient sums separate "in"
from "out" with μ = √T·C/(σ·C) per unit of c = C (the claim's μ for full-batch DP-GD).

- **SGD** makes Δw_T a fixed linear map of the noisy gradients: without momentum every step
  weighs the same and reading Δw along the canary keeps all of μ; with momentum β the last
  steps' gradients weigh less, (1 − β^(T−s+1))/(1 − β), a small loss.
- **Adam** (Kingma & Ba 2015, Algorithm 1) divides each coordinate's first moment by √v̂, its
  running second moment. In DP training v̂ is the noise's own second moment (measured on the
  embedded default at ε = 3 and 8: the final √v̂ is 0.77 / 0.99 / 1.23 × σC/N at the 1st / 50th /
  99th percentile of coordinates, as √(χ²₅₀/50) for pure noise, BENCHMARKS.md), so the update is
  a nonlinear function of the noise: at step 1 it is sign(g), and a small constant push moves a
  sign by √(2/π) ≈ 0.80 of what it moves a sum. Later steps average more squares into v̂ and
  lose less.

``readout_efficiency(optimizer, steps, drift=…)`` measures, by running the optimizer itself
(``privtangent.dp.optimizer.make_torch_optimizer``) on many independent coordinates, the SNR of
the final coordinate about the push, (E ∂Δw_T/∂c) / (sd Δw_T · √T), whose gradient per step is
drift + c + N(0, 1). Coordinates are independent under the Gaussian mechanism, so the best
linear score of Δw keeps exactly this fraction of μ for a canary on coordinates of that drift
(its square is the sum of the per-coordinate ones); the final coordinate is close to Gaussian
(excess kurtosis ≈ −0.16 at T = 50, drift 0, checked in the tests), so even reading single
coordinates nonlinearly could gain little. A data gradient (drift) in v̂ lowers it: Adam's update saturates near ±lr and a push cannot
move it. So the value at drift 0 bounds what an input-canary audit of an Adam-trained model
can read: μ_eff/μ ≤ readout_efficiency("adam", T).

Measured with this function (200,000 coordinates, BENCHMARKS.md): Adam, default betas, drift
0: 0.89 at T = 50, 0.94 at 100, 0.97 at 200.
"""

from __future__ import annotations

import math

import torch

from privtangent.dp.optimizer import make_torch_optimizer
from privtangent.errors import ConfigError

DEFAULT_COORDINATES = 200_000
DEFAULT_STEP = 0.05  # the push ±h for the central difference, in noise std units


def final_coordinates(optimizer: str, steps: int, push: float, *, drift: float = 0.0,
                      coordinates: int = DEFAULT_COORDINATES, seed: int = 0, lr: float = 1e-2,
                      momentum: float = 0.0) -> torch.Tensor:
    """Δw_T (float64) of ``coordinates`` independent parameters trained from 0 by ``optimizer``
    on gradients drift + push + N(0, 1), the noise seeded by ``seed`` (the same for every push)."""
    weights = torch.zeros(coordinates, dtype=torch.float64, requires_grad=True)
    opt = make_torch_optimizer([weights], optimizer, lr, momentum=momentum)
    noise = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        weights.grad = drift + push + torch.randn(coordinates, generator=noise, dtype=torch.float64)
        opt.step()
    return weights.detach()


def readout_efficiency(optimizer: str, steps: int, *, drift: float = 0.0, coordinates: int = DEFAULT_COORDINATES,
                       push: float = DEFAULT_STEP, seed: int = 0, lr: float = 1e-2, momentum: float = 0.0) -> float:
    """(E ∂Δw_T/∂c) / (sd Δw_T · √T): the fraction of μ that reading the final Δw keeps.

    The derivative is the central difference ±``push`` with the same noise; both moments are
    averaged over ``coordinates``. 1 for SGD (linear); below 1 for Adam (see the module).
    """
    if not (isinstance(steps, int) and steps >= 1):
        raise ConfigError(f"steps must be an integer ≥ 1, got {steps!r}")
    if not (isinstance(coordinates, int) and coordinates >= 2):
        raise ConfigError(f"coordinates must be an integer ≥ 2, got {coordinates!r}")
    if not push > 0:
        raise ConfigError(f"push must be > 0, got {push!r}")

    def final(c: float) -> torch.Tensor:
        return final_coordinates(optimizer, steps, c, drift=drift, coordinates=coordinates, seed=seed, lr=lr,
                                 momentum=momentum)

    slope = (final(push) - final(-push)).mean() / (2 * push)
    spread = final(0.0).std()
    return float(slope.abs() / (spread * math.sqrt(steps)))


__all__ = ["DEFAULT_COORDINATES", "final_coordinates", "readout_efficiency"]
