"""Gradient (Dirac) canaries for white-box audits of privtangent's DP optimizer.

A **Dirac canary** is a per-sample gradient along one coordinate of the flattened trained
vector Δw: canary i contributes ``norm · e_{c_i}`` (``norm`` > C, so that the clipping is
exercised and an included canary adds exactly ``C · e_{c_i}`` to the clipped sum of a correct
implementation). The coordinates c_1..c_m are distinct and drawn uniformly at random from all
trained coordinates, so the canary directions are exactly orthonormal: no cross-terms between
canaries, and the noise each canary sees is independent of the noise every other canary sees.

Each canary is included in the (separate, never released) canary training run independently
with probability ½; these are the secret bits of the one-run game (Steinke, Nasr, Jagielski
2023). An included canary enters a step's clipped sum whenever it is sampled: in every step
for full-batch DP-GD (q = 1), with probability q per step, independently, under Poisson
sampling. The canaries of one step reach ``DPOptimizer`` as a ``DiracBatch``: an implicit
per-sample gradient object (``norms()``, ``weighted_sum(factors)``) that the optimizer clips
with the same ``clip_factors`` rule and the same C as every record, without ever forming an
M × |Δw| tensor (5,000 canaries × 200k coordinates would be 4 GB per step).

Everything here draws its randomness from its own seeded generators; nothing reads or
influences the DP mechanism's generator.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from privtangent.errors import ConfigError

__all__ = ["CanarySet", "CanarySchedule", "DiracBatch", "ParameterLayout", "make_canaries"]

DEFAULT_NORM_FACTOR = 10.0  # ‖canary gradient‖ = 10·C: far above the clipping norm


@dataclass(frozen=True)
class ParameterLayout:
    """Where each trained tensor lies in the flattened Δw (the order of ``trainable(model)``)."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    offsets: tuple[int, ...]  # start of each tensor in the flat vector
    size: int  # |Δw|

    @classmethod
    def of(cls, params: Mapping[str, Tensor]) -> "ParameterLayout":
        names, shapes, offsets, at = [], [], [], 0
        for name, p in params.items():
            names.append(name)
            shapes.append(tuple(p.shape))
            offsets.append(at)
            at += int(p.numel())
        if at == 0:
            raise ConfigError("the model has no trained coordinate to put canaries on")
        return cls(tuple(names), tuple(shapes), tuple(offsets), at)

    def locate(self, coords: np.ndarray) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """[(name, positions in ``coords``, flat index inside that tensor)] for the tensors hit."""
        coords = np.asarray(coords, dtype=np.int64)
        starts = np.asarray(self.offsets, dtype=np.int64)
        which = np.searchsorted(starts, coords, side="right") - 1
        out = []
        for k in np.unique(which):
            pos = np.nonzero(which == k)[0]
            out.append((self.names[k], pos, coords[pos] - starts[k]))
        return out

    def gather(self, tensors: Mapping[str, Tensor], coords: np.ndarray) -> np.ndarray:
        """The values of a {name: tensor shaped like the parameter} dict at flat ``coords`` (float64)."""
        out = np.empty(len(coords), dtype=np.float64)
        for name, pos, local in self.locate(coords):
            flat = tensors[name].detach().reshape(-1)
            out[pos] = flat[torch.from_numpy(local)].double().cpu().numpy()
        return out


@dataclass(frozen=True)
class CanarySet:
    """m Dirac canaries: directions (distinct flat coordinates of Δw), norm, secret bits."""

    layout: ParameterLayout
    coords: np.ndarray  # (m,) distinct flat coordinates
    included: np.ndarray  # (m,) bool: the secret bits (canary i is in the canary run)
    norm: float  # ‖canary gradient‖ before clipping
    seed: int
    # (name, canary positions, flat index in that tensor) per tensor hit; set from ``coords`` by __post_init__
    _located: list[tuple[str, np.ndarray, np.ndarray]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_located", self.layout.locate(self.coords))

    @property
    def num_canaries(self) -> int:
        return int(len(self.coords))

    def batch(self, active: np.ndarray | None = None) -> "DiracBatch | None":
        """The per-sample gradients of the canaries ``active`` (bool (m,); default: the included ones)."""
        mask = self.included if active is None else np.asarray(active, dtype=bool)
        if not mask.any():
            return None
        return DiracBatch(self, mask)

    def describe(self) -> dict:
        per_tensor = {name: int(len(pos)) for name, pos, _ in self._located}
        return {"num_canaries": self.num_canaries, "num_included": int(self.included.sum()),
                "canary_norm": self.norm, "directions": "distinct random coordinates of the flattened Δw "
                "(Dirac gradients; exactly orthonormal)", "trained_coordinates": self.layout.size,
                "canaries_per_tensor": per_tensor}


class DiracBatch:
    """The canaries of one step as implicit per-sample gradients (the ``DPOptimizer`` hook).

    Row j is ``norm · e_{c_j}`` for the active canaries j. ``norms()`` are their L2 norms,
    ``weighted_sum(f)`` is Σ_j f_j · norm · e_{c_j} as {name: tensor} for the tensors hit.
    """

    def __init__(self, canaries: CanarySet, mask: np.ndarray) -> None:
        self.canaries = canaries
        self.mask = np.asarray(mask, dtype=bool)
        self.count = int(self.mask.sum())
        # per tensor: (row index among the active canaries, flat index inside the tensor)
        rank = np.cumsum(self.mask) - 1
        self._parts = []
        for name, pos, local in canaries._located:
            keep = self.mask[pos]
            if keep.any():
                self._parts.append((name, torch.from_numpy(rank[pos[keep]]), torch.from_numpy(local[keep])))

    def __len__(self) -> int:
        return self.count

    def norms(self) -> Tensor:
        return torch.full((self.count,), float(self.canaries.norm), dtype=torch.float32)

    def weighted_sum(self, factors: Tensor) -> dict[str, Tensor]:
        factors = factors.detach().reshape(-1)
        if factors.numel() != self.count:
            raise ConfigError(f"weighted_sum: {factors.numel()} factors for {self.count} canaries")
        out = {}
        layout = self.canaries.layout
        for name, rows, local in self._parts:
            shape = layout.shapes[layout.names.index(name)]
            flat = torch.zeros(int(np.prod(shape)) if shape else 1, dtype=factors.dtype)
            flat.index_add_(0, local, factors[rows] * float(self.canaries.norm))
            out[name] = flat.reshape(shape)
        return out


def make_canaries(params: Mapping[str, Tensor], num_canaries: int, *, norm: float, seed: int = 0,
                  inclusion_probability: float = 0.5) -> CanarySet:
    """m Dirac canaries on distinct random coordinates of ``params`` (name → tensor, the trained Δw).

    ``norm``: the canaries' gradient norm (choose it above the clipping norm C).
    The coordinates and the secret bits come from two independent streams of ``seed``.
    """
    if isinstance(num_canaries, bool) or not isinstance(num_canaries, (int, np.integer)) or num_canaries < 1:
        raise ConfigError(f"num_canaries must be an integer ≥ 1, got {num_canaries!r}")
    if not (np.isfinite(norm) and norm > 0):
        raise ConfigError(f"canary norm must be a positive finite number, got {norm!r}")
    if not 0.0 < inclusion_probability < 1.0:
        raise ConfigError(f"inclusion_probability must lie in (0, 1), got {inclusion_probability!r}")
    layout = ParameterLayout.of(params)
    if num_canaries > layout.size:
        raise ConfigError(f"num_canaries ({num_canaries}) exceeds the number of trained coordinates ({layout.size}); "
                          "Dirac canaries need one coordinate each")
    directions, bits = np.random.default_rng([int(seed), 0]), np.random.default_rng([int(seed), 1])
    coords = np.sort(directions.choice(layout.size, size=int(num_canaries), replace=False)).astype(np.int64)
    included = bits.random(int(num_canaries)) < inclusion_probability
    return CanarySet(layout, coords, included, float(norm), int(seed))


class CanarySchedule:
    """``fit_dp``'s ``extra_per_sample_grads`` callable: step → the canaries in that step.

    Full batch (``sample_rate`` = 1): every included canary in every step. Poisson sampling:
    each included canary independently with probability ``sample_rate`` per step, drawn from
    the schedule's own generator (never read by the scorer: which steps a canary was sampled
    in is part of the mechanism's secret randomness, like the data's Poisson sample).
    """

    def __init__(self, canaries: CanarySet, sample_rate: float, seed: int = 0) -> None:
        if not 0.0 < sample_rate <= 1.0:
            raise ConfigError(f"sample_rate must be in (0, 1], got {sample_rate!r}")
        self.canaries, self.sample_rate = canaries, float(sample_rate)
        self._rng = np.random.default_rng([int(seed), 2])
        self._full = canaries.batch() if sample_rate == 1.0 else None
        self.calls = 0

    def __call__(self, step: int) -> DiracBatch | None:
        self.calls += 1
        if self.sample_rate == 1.0:
            return self._full
        sampled = self._rng.random(self.canaries.num_canaries) < self.sample_rate
        return self.canaries.batch(self.canaries.included & sampled)
