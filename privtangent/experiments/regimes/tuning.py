"""Choosing (lr, C) for every (regime, kind) on public data, at equal cost per cell.

A comparison where one kind trains with another kind's learning rate measures the learning
rate, not the kind. So each (regime, kind) gets its own (lr, C), chosen by the same search:
every point of ``TuningGrid`` (``lrs`` × ``clips``) is trained once on the data set's public
training part and scored on its public validation part (``splits.TaskSplit``); the best
validation accuracy wins (ties: the earlier grid point). Every cell costs the same number
of runs of the same length.

The tuning runs replay the noise of the real runs: the same σ (calibrated for the private
set's q, T, δ at the tuning ε), the same number of steps T and the same expected batch size
B = q·N (so the same noise per averaged gradient, σ·C/B), on the public pool (q' = B/M for a
pool of M images; capped at 1, then the noise per averaged gradient is σ·C/M). The public
data is declared public: this search is *not* accounted for in ε, and the outputs say so.
Had the search used private data, its cost would have to be accounted for (e.g. Papernot &
Steinke 2022, "Hyperparameter tuning with Rényi differential privacy").
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from timm.models.vision_transformer import VisionTransformer

from privtangent.dp.training import resolve_noise
from privtangent.errors import ConfigError
from privtangent.experiments.regimes.grid import REGIME_LABELS, RegimeGrid
from privtangent.experiments.regimes.results import TuningResult, TuningTrial
from privtangent.experiments.regimes.runner import run_one
from privtangent.experiments.regimes.splits import TaskSplit
from privtangent.experiments.regimes.store import RunStore
from privtangent.features import FeatureCache
from privtangent.progress import Progress


@dataclass(frozen=True)
class TuningGrid:
    """The search every (regime, kind) gets: all of ``lrs`` × ``clips`` at ``epsilon``, one seed."""

    lrs: tuple[float, ...] = (3e-3, 1e-2, 3e-2, 1e-1, 3e-1)
    clips: tuple[float, ...] = (1.0, 10.0)
    epsilon: float = 3.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("lrs", "clips"):
            values = getattr(self, name)
            if not values or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0 for v in values):
                raise ConfigError(f"tuning {name} must be positive numbers, got {list(values)}")
        if not (isinstance(self.epsilon, (int, float)) and self.epsilon > 0):
            raise ConfigError(f"tuning epsilon must be > 0, got {self.epsilon!r}")

    @property
    def points(self) -> list[tuple[float, float]]:
        return [(lr, clip) for lr in self.lrs for clip in self.clips]


def tune(base: VisionTransformer, split: TaskSplit, grid: RegimeGrid, tuning: TuningGrid, *, cache: FeatureCache,
         store: RunStore, base_id: str, progress: bool = False) -> TuningResult:
    """Search ``tuning`` for every (regime, kind) of ``grid`` on ``split``'s public part."""
    n, m = len(split.train), len(split.public_train)
    q, steps = grid.sample_rate_for(n), grid.steps_for(n)
    probe = grid.dp_config(True, grid.regimes[0], tuning.epsilon, tuning.seed, n=n)
    sigma, _ = resolve_noise(probe, n)
    batch = q * n
    q_public = min(1.0, batch / m)
    trials: list[TuningTrial] = []
    chosen: list[tuple[str, str, float, float]] = []
    at_edge: list[tuple[str, str]] = []
    start = time.process_time()
    cells = [(r, k) for r in grid.regimes for k in grid.kinds]
    with Progress(len(cells) * len(tuning.points), f"tuning on {split.name} (public)", unit="run",
                  enabled=progress) as bar:
        for regime, kind in cells:
            noise_seed = grid.cell_noise_seed(f"tune|{split.name}", regime, tuning.epsilon, tuning.seed)
            own: list[TuningTrial] = []
            for lr, clip in tuning.points:
                bar.report(run=f"{REGIME_LABELS[regime]} {kind} lr={lr:g} C={clip:g}")
                config = grid.dp_config(kind == "Ours", regime, tuning.epsilon, tuning.seed, n=n).replace(
                    lr=float(lr), max_grad_norm=float(clip), sample_rate=q_public, epochs=steps * q_public,
                    target_epsilon=None, noise_multiplier=sigma, noise_seed=noise_seed)
                result = run_one(base, split.public_train, split.public_val, config, cache=cache, store=store,
                                 base_id=base_id)
                own.append(TuningTrial(regime, kind, float(lr), float(clip), 100.0 * result["test_accuracy"],
                                       float(result["cpu_seconds"])))
                bar.update(1)
            best = max(own, key=lambda t: t.val_accuracy)  # first maximum: the earlier grid point on ties
            chosen.append((regime, kind, best.lr, best.clip))
            if len(tuning.lrs) >= 3 and best.lr in (min(tuning.lrs), max(tuning.lrs)):
                at_edge.append((regime, kind))
            trials.extend(own)
    setting = (f"trained on the {m:,} public training images of {split.name} and scored on its {len(split.public_val):,} "
               f"public validation images ({split.rule}); ε = {tuning.epsilon:g} noise of the private run replayed: "
               f"σ = {sigma:.4g}, T = {steps}, expected batch {min(batch, m):,.0f} (q' = {q_public:.4g}); seed "
               f"{tuning.seed}; {len(tuning.points)} runs per (regime, kind): lr ∈ {{{', '.join(f'{v:g}' for v in tuning.lrs)}}}"
               f" × C ∈ {{{', '.join(f'{v:g}' for v in tuning.clips)}}}")
    return TuningResult(split.name, tuple(trials), tuple(chosen), tuple(at_edge), setting,
                        sum(t.cpu_seconds for t in trials) if trials else time.process_time() - start)


__all__ = ["TuningGrid", "tune"]
