"""A reduced regime comparison that fits a time budget (about 2 minutes by default), for the main job.

Poisson-subsampled DP-SGD with B and T fixed costs T·B per-sample gradients per run whatever
the training set size N is (N only sets q = B/N), so the budget buys (T, B), not N:

1. the test set is a seeded random 1,000 of ``test`` (``test_limit``); the training set is
   the whole of ``train`` unless caching its frozen-prefix features would
   take more than a quarter of the budget (then a seeded random subset, so a class-sorted
   folder keeps every class);
2. two short probes per (regime, kind) measure its fixed cost per run and its cost per
   per-sample gradient on this machine (``plan_budget``; after one discarded warm-up run);
3. T·B is the largest that lets every (regime, kind, ε, seed) run, and evaluate on ``test``,
   within what is left; T = T·B / 256 clamped to [20, 100], B = T·B / T (at most N);
4. every cell trains with the (lr, C) of ``DEFAULT_HYPERPARAMETERS`` (see there), and the
   result is the typed ``RegimeComparison``: intervals, best (regime, kind) per ε, a sentence.

The budget is CPU seconds of this process (with one torch thread, the wall-clock seconds of an
idle core): CPU time does not stretch when other jobs share the machine, so the plan does not
shrink because of them. ``QuickPlan.predicted_seconds`` above the budget means even the
smallest run (T = 20, B = 8) did not fit.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from timm.models.vision_transformer import VisionTransformer

from privtangent.data.dataset import ImageData
from privtangent.dp.training import DPConfig, fit_dp
from privtangent.errors import ConfigError
from privtangent.experiments.regimes.analysis import compare
from privtangent.experiments.regimes.grid import KINDS, RegimeGrid
from privtangent.experiments.regimes.results import RegimeComparison
from privtangent.experiments.regimes.runner import run_grid
from privtangent.experiments.regimes.store import RunStore
from privtangent.features import FeatureCache, run_prefix
from privtangent.tangent.regimes import REGIMES

QUICK_BUDGET_SECONDS = 120.0
# (regime, kind, lr, C), chosen on public data by ``benchmarks/table3_scale.py`` (part "near") for
# the embedded default base on the near task: Fashion-MNIST 5–9, 1,000 public test images to train
# and 1,000 to validate, the noise of the N = 30,000 run replayed (Poisson DP-SGD, B = 512,
# T = 100, ε = 3, σ = 0.763), Adam, grid lr ∈ {0.003, 0.01, 0.03, 0.1, 0.3} × C ∈ {1, 10}, one
# seed; every choice is inside the lr grid. The tangent models want a larger lr than the
# non-linear ones in every regime but FC (where both are a linear head).
DEFAULT_HYPERPARAMETERS: tuple[tuple[str, str, float, float], ...] = (
    ("full", "Ours", 0.1, 1.0), ("full", "Reg", 0.01, 1.0),
    ("bitfit", "Ours", 0.1, 10.0), ("bitfit", "Reg", 0.03, 1.0),
    ("layernorm", "Ours", 0.1, 10.0), ("layernorm", "Reg", 0.03, 10.0),
    ("fc", "Ours", 0.1, 1.0), ("fc", "Reg", 0.1, 1.0),
)
DEFAULT_SOURCE = ("(lr, C) per (regime, kind) chosen on public data of the embedded default (Fashion-MNIST 5–9 "
                  "public test images, Poisson DP-SGD B = 512, T = 100, ε = 3, lr ∈ {0.003 … 0.3} × C ∈ {1, 10}) — "
                  "not tuned on this data set")


@dataclass(frozen=True)
class QuickPlan:
    """What the budget bought, and the measured costs it was planned from."""

    budget_seconds: float  # CPU seconds
    num_train: int  # training images used (all of them unless feature caching would not fit)
    num_train_given: int
    batch_size: int  # expected batch size B
    steps: int  # T
    runs: int
    predicted_seconds: float  # of the runs, from the probes
    fixed_seconds: dict[str, float]  # per "regime/kind": cost of one run besides its steps
    seconds_per_sample: dict[str, float]  # per "regime/kind": one per-sample gradient step


@dataclass(frozen=True)
class QuickComparison:
    comparison: RegimeComparison
    plan: QuickPlan
    cpu_seconds: float  # of the whole call (what the budget is in)
    wall_seconds: float


def _probe(base: VisionTransformer, train: ImageData, test: ImageData, regime: str, kind: str, steps: int,
           cache: FeatureCache) -> float:
    """CPU seconds of one full-batch DP run of ``steps`` steps on ``train``, evaluated on ``test``."""
    config = DPConfig(tangent=kind == "Ours", regime=regime, epochs=steps, sample_rate=1.0, noise_multiplier=1.0,
                      target_epsilon=None, noise_seed=0)
    start = time.process_time()
    fit_dp(base, train, config, test=test, cache=cache, progress=False)
    return time.process_time() - start


def plan_budget(base: VisionTransformer, train: ImageData, test: ImageData, *, regimes: Sequence[str], runs_per_cell: int,
                seconds: float, cache: FeatureCache, probe_size: int = 128, min_steps: int = 20,
                max_steps: int = 100) -> tuple[int, int, float, dict[str, float], dict[str, float]]:
    """(B, T, predicted seconds, fixed cost per run, cost per sample) so that every run fits in ``seconds``."""
    b = min(probe_size, len(train))
    small, small_test = train.limit(b), test.limit(b)
    _probe(base, small, small_test, regimes[0], KINDS[0], 1, cache)  # warm-up: first calls pay one-time costs
    fixed, per_sample = {}, {}
    for regime in regimes:
        for kind in KINDS:
            one = _probe(base, small, small_test, regime, kind, 1, cache)
            four = _probe(base, small, small_test, regime, kind, 4, cache)
            # three extra steps of b samples; at least a quarter of the four-step run (short probes are noisy)
            c = max(four - one, 0.25 * four, 1e-9) / (3 * b)
            fixed[f"{regime}/{kind}"] = max(one - b * c, 0.0) + len(test) * c  # + evaluating the test set
            per_sample[f"{regime}/{kind}"] = c
    total_fixed, total_c = sum(fixed.values()) * runs_per_cell, sum(per_sample.values()) * runs_per_cell
    work = max((seconds - total_fixed) / total_c, 0.0)  # T·B affordable per run
    steps = int(min(max(work // 256, min_steps), max_steps))
    batch = int(min(max(work // steps, 8), len(train)))
    return batch, steps, total_fixed + total_c * steps * batch, fixed, per_sample


def _random_subset(data: ImageData, size: int, seed: int, what: str) -> ImageData:
    """A seeded random subset (in the data's order), so a class-sorted folder keeps every class."""
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:size]
    return data.subset(order.sort().values, f"{data.name}[random {size} {what}]")


def _affordable_train(base: VisionTransformer, start: int, train: ImageData, seconds: float, seed: int) -> ImageData:
    """All of ``train``, or a seeded random subset whose prefix features cost ≤ ``seconds`` to compute."""
    sample = train.limit(min(256, len(train)))
    t0 = time.process_time()  # decoding counts: a streamed folder decodes every image it caches
    for images, _ in sample.iter_images(len(sample)):
        run_prefix(base, start, images)
    per_image = max(time.process_time() - t0, 1e-9) / len(sample)
    affordable = int(seconds / per_image)
    if affordable >= len(train):
        return train
    if affordable < 16:
        raise ConfigError(f"a budget of {seconds:g} s cannot even cache the features of 16 training images")
    return _random_subset(train, affordable, seed, "affordable")


def run_quick_comparison(base: VisionTransformer, train: ImageData, test: ImageData, *,
                         epsilons: Sequence[float] = (1.0, 3.0, 8.0), delta: float | None = None,
                         regimes: Sequence[str] = REGIMES, seeds: Sequence[int] = (0, 1, 2),
                         budget_seconds: float = QUICK_BUDGET_SECONDS,
                         hyperparameters: Sequence[tuple[str, str, float, float]] = DEFAULT_HYPERPARAMETERS,
                         hyperparameter_source: str = DEFAULT_SOURCE, test_limit: int | None = 1000,
                         noise_seed: int = 0, base_name: str = "base",
                         cache: FeatureCache | None = None, progress: bool = False) -> QuickComparison:
    """Regime comparison (Poisson DP-SGD, every (regime, kind, ε, seed)) within about ``budget_seconds``.

    Args:
        base: the base ViT; ``train`` / ``test``: the private training set and the test set.
        delta: δ, or None for min(1e-5, 1/(10·N)).
        hyperparameters: (regime, kind, lr, C) for every (regime, kind) (default: ``DEFAULT_HYPERPARAMETERS``);
            ``hyperparameter_source`` says where they came from (it is quoted in the result).
        test_limit: evaluate on a seeded random subset of this many test images (every run
            evaluates the test set: at 1,000 images a mean accuracy has a standard error of
            about 1.4 points, and evaluation stays a small part of the budget); None: all.
        noise_seed: seeds the noise of every run (both kinds of a cell share it, for a paired
            comparison); these models are measurements and are never released.

    Returns:
        ``QuickComparison(comparison, plan, cpu_seconds, wall_seconds)``; ``comparison.best`` holds, per ε, the best
        (regime, kind) with its t interval, and ``comparison.sentence`` says what was found.
    """
    wall, start = time.perf_counter(), time.process_time()
    regimes = tuple(regimes)
    known = {(r, k) for r, k, _, _ in hyperparameters}
    missing = [f"{r}/{k}" for r in regimes for k in KINDS if (r, k) not in known]
    if missing:
        raise ConfigError(f"hyperparameters: no (lr, C) for {', '.join(missing)}")
    if not budget_seconds > 0:
        raise ConfigError(f"budget_seconds must be > 0, got {budget_seconds!r}")
    if test_limit is not None and len(test) > test_limit:
        test = _random_subset(test, test_limit, noise_seed, "test")
    cache = cache or FeatureCache()
    name = train.name
    start_block = len(base.blocks) - 1
    used = _affordable_train(base, start_block, train, budget_seconds / 4, noise_seed)
    cache.features(base, start_block, used)
    cache.features(base, start_block, test)
    grid_probe = RegimeGrid(regimes=regimes, epsilons=tuple(float(e) for e in epsilons), delta=delta, data=(name,),
                            seeds=tuple(seeds), tuned=tuple(hyperparameters), noise_seed=noise_seed)
    runs_per_cell = len(grid_probe.epsilons) * len(grid_probe.seeds)
    left = budget_seconds - (time.process_time() - start)
    batch, steps, predicted, fixed, per_sample = plan_budget(base, used, test, regimes=regimes,
                                                             runs_per_cell=runs_per_cell, seconds=0.8 * left,
                                                             cache=cache)
    grid = RegimeGrid(regimes=regimes, epsilons=grid_probe.epsilons, delta=delta, data=(name,), batch_size=batch,
                      steps=steps, tuned=tuple(hyperparameters), seeds=grid_probe.seeds, noise_seed=noise_seed)
    results = run_grid(grid, base=base, progress=progress, cache=cache, splits={name: (used, test)},
                       store=RunStore(None))
    note = f"{hyperparameter_source}; this choice is not accounted for in ε"
    comparison = compare(results.rows, grid, name, base=base_name, hyperparameters=note)
    plan = QuickPlan(budget_seconds, len(used), len(train), batch, steps, len(results.rows), predicted, fixed,
                     per_sample)
    return QuickComparison(comparison, plan, time.process_time() - start, time.perf_counter() - wall)


__all__ = ["DEFAULT_HYPERPARAMETERS", "QUICK_BUDGET_SECONDS", "QuickComparison", "QuickPlan", "plan_budget",
           "run_quick_comparison"]
