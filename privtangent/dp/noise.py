"""The Gaussian mechanism of DP-SGD, and where its randomness comes from.

The noise (and the Poisson sample, which is part of the same mechanism) is drawn from a
generator of its own, **never derived from the data or training seed**: a published training
seed must not let anyone subtract the noise. By default the generator is seeded from the
operating system's entropy (``secrets``), so two runs with the same training seed draw
different noise. ``noise_seed`` seeds it explicitly, for tests and for reproducing a run;
a run with a seeded mechanism is flagged "not for release" in its privacy manifest.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from privtangent.dp.parameters import check_noise_multiplier
from privtangent.errors import ConfigError


@dataclass
class MechanismRandomness:
    """The generator of the DP mechanism (noise and Poisson sampling)."""

    generator: torch.Generator
    seeded: bool  # True: seeded by the caller (reproducible, not for release)
    seed: int | None  # the caller's noise_seed; None when drawn from OS entropy (never recorded)

    def manifest(self) -> dict:
        out: dict = {"noise_seeded": self.seeded, "noise_source": "noise_seed (explicit)" if self.seeded
                     else "OS entropy (secrets.randbits), independent of the training seed",
                     "sampling_source": "the noise generator (Poisson sampling is part of the mechanism)"}
        if self.seeded:
            out["noise_seed"] = self.seed
            out["release"] = "NOT FOR RELEASE: the DP noise was seeded (noise_seed); anyone with the seed can remove it"
        return out


def mechanism_randomness(noise_seed: int | None = None, device: str | torch.device = "cpu") -> MechanismRandomness:
    """A fresh generator for the mechanism: OS entropy by default, ``noise_seed`` if given."""
    generator = torch.Generator(device=device)
    if noise_seed is None:
        generator.manual_seed(secrets.randbits(63))
        return MechanismRandomness(generator, False, None)
    if isinstance(noise_seed, bool) or not isinstance(noise_seed, int) or noise_seed < 0:
        raise ConfigError(f"noise_seed must be a non-negative integer or null, got {noise_seed!r}")
    generator.manual_seed(noise_seed)
    return MechanismRandomness(generator, True, noise_seed)


def gaussian_noise(like: Mapping[str, Tensor], std: float, generator: torch.Generator) -> dict[str, Tensor]:
    """Independent N(0, std²) noise of the shape of each tensor (in a fixed name order)."""
    out = {}
    for name, t in like.items():
        if std == 0:
            out[name] = torch.zeros_like(t)
        else:
            noise = torch.randn(t.shape, generator=generator, dtype=t.dtype, device=generator.device)
            out[name] = noise.to(t.device).mul_(std)
    return out


def privatize(clipped_sum: Mapping[str, Tensor], noise_multiplier: float, max_grad_norm: float,
              expected_batch_size: float, generator: torch.Generator) -> dict[str, Tensor]:
    """(Σ_i g̃_i + N(0, σ²C² I)) / (q·N): the privatized gradient of one DP-SGD step.

    Dividing by the *expected* batch size (a public constant) rather than the realized one
    keeps the sensitivity at C / (q·N) under Poisson sampling.
    """
    sigma = check_noise_multiplier(noise_multiplier, allow_zero=True)
    if not expected_batch_size > 0:
        raise ConfigError(f"expected_batch_size must be > 0, got {expected_batch_size!r}")
    std = sigma * max_grad_norm
    out = {}
    for name, t in clipped_sum.items():  # same draws, in the same order, as gaussian_noise
        if std == 0:
            out[name] = t / expected_batch_size
            continue
        noise = torch.randn(t.shape, generator=generator, dtype=t.dtype, device=generator.device).to(t.device)
        out[name] = noise.mul_(std).add_(t).div_(expected_batch_size)  # in place: one buffer per tensor
    return out


__all__ = ["MechanismRandomness", "gaussian_noise", "mechanism_randomness", "privatize"]
