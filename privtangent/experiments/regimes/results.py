"""The typed results of a regime comparison (accuracies in percent, 0–100).

- ``CellResult``: one (regime, kind, ε) over seeds, with the (lr, C) it trained with;
- ``Difference``: Ours − Reg in one (regime, ε), paired by seed, and its verdict;
- ``BestChoice``: the most accurate (regime, kind) at one ε, and its margin over the runner-up;
- ``TuningTrial`` / ``TuningResult``: the hyperparameter search on public data;
- ``RegimeComparison``: all of the above for one data set and size, plus the recipe and
  one plain sentence saying what was found. ``to_dict()`` is JSON-ready.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from privtangent.experiments.regimes.grid import Hyperparameters
from privtangent.experiments.regimes.stats import Interval


@dataclass(frozen=True)
class CellResult:
    """Test accuracy (%) of one (regime, kind, ε) over seeds."""

    regime: str
    kind: str  # "Ours" (tangent) | "Reg" (non-linear)
    epsilon: float
    accuracy: Interval  # mean and t interval over seeds
    std: float  # sample standard deviation over seeds
    per_seed: tuple[tuple[int, float], ...]  # (seed, accuracy)
    lr: float
    clip: float


@dataclass(frozen=True)
class Difference:
    """Ours − Reg (accuracy points) in one (regime, ε), paired by seed."""

    regime: str
    epsilon: float
    ours_minus_reg: Interval
    verdict: str  # "Ours better" | "Reg better" | "no clear difference" (does the interval exclude 0?)


@dataclass(frozen=True)
class BestChoice:
    """The (regime, kind) with the highest mean test accuracy at one ε."""

    epsilon: float
    regime: str
    kind: str
    accuracy: Interval
    runner_up: tuple[str, str] | None  # (regime, kind)
    margin: Interval | None  # best − runner-up, paired by seed

    @property
    def clear(self) -> bool:
        """Is the best ahead of the runner-up beyond the interval?"""
        return self.margin is None or self.margin.above_zero


@dataclass(frozen=True)
class TuningTrial:
    """One point of the search: validation accuracy (%) of (regime, kind) at (lr, C)."""

    regime: str
    kind: str
    lr: float
    clip: float
    val_accuracy: float
    cpu_seconds: float


@dataclass(frozen=True)
class TuningResult:
    """The hyperparameter search on public data for one data set (see ``tuning.tune``)."""

    data: str
    trials: tuple[TuningTrial, ...]
    chosen: tuple[tuple[str, str, float, float], ...]  # (regime, kind, lr, C): ``RegimeGrid.tuned``
    at_edge: tuple[tuple[str, str], ...]  # (regime, kind) whose chosen lr or C is at the edge of the grid
    setting: str  # what the tuning runs were (data, ε, σ, B, T, seed)
    cpu_seconds: float

    def choice(self, regime: str, kind: str) -> Hyperparameters:
        for r, k, lr, clip in self.chosen:
            if (r, k) == (regime, kind):
                return Hyperparameters(lr, clip)
        raise KeyError((regime, kind))

    def trials_per_cell(self) -> dict[tuple[str, str], int]:
        """Runs spent on each (regime, kind): equal for all cells by construction."""
        counts: dict[tuple[str, str], int] = {}
        for t in self.trials:
            counts[(t.regime, t.kind)] = counts.get((t.regime, t.kind), 0) + 1
        return counts


@dataclass(frozen=True)
class RegimeComparison:
    """What ``compare-regimes`` found on one data set at one training set size."""

    data: str
    base: str  # the base model ("default", "wide", or a user's model)
    num_train: int
    num_test: int
    delta: float
    sample_rate: float  # q
    expected_batch_size: float  # q·N
    steps: int  # T
    optimizer: str
    accountant: str
    seeds: tuple[int, ...]
    noise_multipliers: tuple[tuple[float, float], ...]  # (ε, σ)
    cells: tuple[CellResult, ...]
    differences: tuple[Difference, ...]
    best: tuple[BestChoice, ...]  # one per ε, in increasing ε
    sentence: str  # what the comparison found, in one plain sentence
    hyperparameters: str  # where each cell's (lr, C) came from; says tuning is not accounted for in ε
    tuning: TuningResult | None
    cpu_seconds: float  # CPU time of the runs (stored runs count with the CPU time they took)

    def cell(self, regime: str, kind: str, epsilon: float) -> CellResult:
        for c in self.cells:
            if (c.regime, c.kind, c.epsilon) == (regime, kind, float(epsilon)):
                return c
        raise KeyError((regime, kind, epsilon))

    def difference(self, regime: str, epsilon: float) -> Difference:
        for d in self.differences:
            if (d.regime, d.epsilon) == (regime, float(epsilon)):
                return d
        raise KeyError((regime, epsilon))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def utility_rows(self) -> list[dict[str, Any]]:
        """One row per (regime, ε) in the utility audit's row format, accuracies as *fractions*:
        regime, epsilon, ours, reg, ours_std, reg_std, seeds, ours_minus_reg (+ _low, _high), verdict."""
        rows = []
        for d in self.differences:
            ours, reg = self.cell(d.regime, "Ours", d.epsilon), self.cell(d.regime, "Reg", d.epsilon)
            interval = d.ours_minus_reg
            rows.append({"regime": d.regime, "epsilon": d.epsilon, "ours": ours.accuracy.mean / 100,
                         "reg": reg.accuracy.mean / 100, "ours_std": ours.std / 100, "reg_std": reg.std / 100,
                         "seeds": interval.n, "ours_minus_reg": interval.mean / 100,
                         "ours_minus_reg_low": None if interval.low is None else interval.low / 100,
                         "ours_minus_reg_high": None if interval.high is None else interval.high / 100,
                         "verdict": d.verdict})
        return rows


__all__ = ["BestChoice", "CellResult", "Difference", "RegimeComparison", "TuningResult", "TuningTrial"]
