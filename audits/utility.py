"""The utility audit: test accuracy of DP fine-tuning per regime and ε, tangent ("Ours") vs
non-linear ("Reg") — the shape of Table 3 of the tangent-transformers paper, on the user's data.

Each cell trains ``DPConfig`` (default: the paper's full-batch DP-GD) with the regime, the
model kind and the target ε, for each seed, and reports the mean test accuracy (fraction)
and, with more than one seed, the standard deviation. σ is calibrated once per ε (it does
not depend on the regime or the model kind). The cells are those of the regime comparison
(``privtangent.experiments.regimes``: ``run_grid`` on a named task, ``RegimeGrid.dp_config`` on
data given here); ``body["source"]`` says which path ran.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, NotRequired, TypedDict

import numpy as np
from timm.models.vision_transformer import VisionTransformer

from audits.results import AuditSection, Check, Status
from privtangent.choices import REGIMES
from privtangent.data.dataset import ImageData
from privtangent.data.tasks import load_task
from privtangent.dp.config import DPConfig
from privtangent.dp.training import fit_dp, resolve_noise
from privtangent.errors import ConfigError
from privtangent.experiments.regimes import RegimeGrid, run_grid
from privtangent.features import FeatureCache
from privtangent.progress import Progress
from privtangent.threads import torch_threads
from privtangent.train import TrainConfig, fit

__all__ = ["SECTION", "UtilityCell", "UtilityRow", "run_utility_audit", "utility_checks", "utility_finding",
           "utility_rows"]

SECTION = "utility"


class UtilityCell(TypedDict):
    """One trained model: regime, ε (None: non-private), kind ("ours" tangent, "reg" non-linear), seed."""

    regime: str
    epsilon: float | None
    kind: str
    seed: int
    test_accuracy: float
    epsilon_accounted: float | None
    sigma: float | None
    seconds: float | None


class UtilityRow(TypedDict):
    """One (regime, ε) cell of the Table-3-shaped comparison: mean (and std) over seeds."""

    regime: str
    epsilon: float | None
    ours: float | None
    ours_std: float | None
    reg: float | None
    reg_std: float | None
    seeds: int
    # with paired intervals over seeds (the regime comparison): Ours − Reg, its bounds, its verdict
    ours_minus_reg: NotRequired[float]
    ours_minus_reg_low: NotRequired[float | None]
    ours_minus_reg_high: NotRequired[float | None]
    verdict: NotRequired[str]


class _DPComparison(NamedTuple):
    """A DP row (ε given) with both accuracies measured."""

    regime: str
    epsilon: float
    ours: float
    reg: float


def _dp_comparisons(rows: Sequence[Mapping[str, Any]]) -> list[_DPComparison]:
    """The rows with an ε and both an Ours and a Reg accuracy, in order."""
    return [_DPComparison(r["regime"], eps, ours, reg) for r in rows
            if (eps := r["epsilon"]) is not None and (ours := r.get("ours")) is not None
            and (reg := r.get("reg")) is not None]


def _mean_std(accs: list[float]) -> tuple[float | None, float | None]:
    """(mean, sample std) over seeds; None where there are too few values."""
    return (float(np.mean(accs)) if accs else None), (float(np.std(accs, ddof=1)) if len(accs) > 1 else None)


def utility_rows(cells: Sequence[UtilityCell]) -> list[UtilityRow]:
    """Per-seed cells {regime, epsilon, kind ('ours'|'reg'), seed, test_accuracy} → table rows."""
    rows: list[UtilityRow] = []
    keys = list(dict.fromkeys((c["regime"], c["epsilon"]) for c in cells))
    for regime, eps in keys:
        ours, ours_std = _mean_std([c["test_accuracy"] for c in cells
                                    if (c["regime"], c["epsilon"], c["kind"]) == (regime, eps, "ours")])
        reg, reg_std = _mean_std([c["test_accuracy"] for c in cells
                                  if (c["regime"], c["epsilon"], c["kind"]) == (regime, eps, "reg")])
        seeds = len({c["seed"] for c in cells if (c["regime"], c["epsilon"]) == (regime, eps)})
        rows.append({"regime": regime, "epsilon": eps, "ours": ours, "ours_std": ours_std, "reg": reg,
                     "reg_std": reg_std, "seeds": seeds})
    return rows


def utility_checks(rows: Sequence[Mapping[str, Any]], num_classes: int, num_seeds: int = 1) -> list[Check]:
    """One check: every DP cell has an accuracy above chance (1/K); else FAIL (broken
    calibration or training). Its reason counts the cells where Ours ≥ Reg. ``rows``: ``UtilityRow``s,
    or the regime comparison's rows in the same format (plain dicts from the core)."""
    chance = 1.0 / max(int(num_classes), 1)
    values = [(r, k, v) for r in rows for k, v in (("ours", r.get("ours")), ("reg", r.get("reg")))]
    missing = [(r["regime"], r["epsilon"], k) for r, k, v in values if v is None or not math.isfinite(v)]
    at_chance = [(r["regime"], r["epsilon"], k) for r, k, v in values
                 if v is not None and math.isfinite(v) and v <= chance]
    compared = _dp_comparisons(rows)
    wins = sum(c.ours >= c.reg for c in compared)
    if missing or at_chance:
        what = missing[0] if missing else at_chance[0]
        status, reason = "FAIL", (f"{len(missing)} cell(s) without an accuracy, {len(at_chance)} at or below chance "
                                  f"({chance:.3g}); first: regime {what[0]}, ε {what[1]}, {what[2]}")
    elif compared and all(r.get("verdict") for r in rows if r["epsilon"] is not None):  # paired intervals: count them
        verdicts = [r.get("verdict") for r in rows if r["epsilon"] is not None]
        status, reason = "PASS", (f"every cell above chance ({chance:.3g}); Ours − Reg over {len(compared)} DP cells "
                                  f"({num_seeds} seeds, 95 % paired intervals): Ours better in "
                                  f"{verdicts.count('Ours better')}, Reg better in {verdicts.count('Reg better')}, "
                                  f"no clear difference in {verdicts.count('no clear difference')}")
    else:
        status, reason = "PASS", (f"every cell above chance ({chance:.3g}); Ours ≥ Reg in {wins} of {len(compared)} "
                                  f"DP cells ({num_seeds} seed(s) each)")
    return [Check("utility-dp-above-chance", SECTION, "every DP model learns (test accuracy above chance)",
                  Status(status), reason)]


def utility_finding(rows: Sequence[UtilityRow]) -> str:
    """One plain sentence on what the comparison found, including where the tangent model loses."""
    dp = _dp_comparisons(rows)
    if not dp:
        return "No DP cell was trained."
    wins = [r for r in dp if r.ours >= r.reg]
    best = []
    for eps in sorted({r.epsilon for r in dp}):
        cells = [(r.ours, "Ours", r.regime) for r in dp if r.epsilon == eps] + \
                [(r.reg, "Reg", r.regime) for r in dp if r.epsilon == eps]
        acc, kind, regime = max(cells)
        best.append(f"at ε = {eps:g}, {regime} {kind} ({acc:.3f})")
    if not wins:
        verdict = (f"On this data the tangent model (Ours) was less accurate than the original network (Reg) in all "
                   f"{len(dp)} DP cells, unlike the paper's Table 3")
    elif len(wins) == len(dp):
        verdict = f"The tangent model (Ours) was at least as accurate as the original network (Reg) in all {len(dp)} DP cells"
    else:
        losses = ", ".join(f"{r.regime} at ε = {r.epsilon:g}" for r in dp if r.ours < r.reg)
        verdict = (f"The tangent model (Ours) was at least as accurate as the original network (Reg) in {len(wins)} of "
                   f"{len(dp)} DP cells; it lost in {losses}")
    return f"{verdict}. Best: {'; '.join(best)}. Differences within a few points are noise at these sizes."


def _grid(regimes: list[str], epsilons: list[float], delta: float, seeds: list[int], task: str,
          train_size: int, test_size: int, dp_config: DPConfig | None, noise_seed: int | None) -> RegimeGrid:
    """The ``RegimeGrid`` of this audit: the DP recipe of ``dp_config`` (default the grid's own)."""
    kw: dict[str, Any] = dict(regimes=tuple(regimes), epsilons=tuple(epsilons), delta=delta, data=(task,),
                              data_limit=train_size, test_limit=test_size, seeds=tuple(seeds), noise_seed=noise_seed)
    if dp_config is not None:
        kw.update(epochs=dp_config.epochs, sample_rate=dp_config.sample_rate, clip=dp_config.max_grad_norm,
                  lr=dp_config.lr, optimizer=dp_config.optimizer, reset=dp_config.reset,
                  accountant=dp_config.accountant, jvp_only=dp_config.output != "full")
    return RegimeGrid(**kw)


def _check_grid(regimes: Sequence[str], epsilons: Sequence[float], seeds: Sequence[int], train_size: int,
                test_size: int) -> tuple[list[str], list[float], list[int]]:
    regimes = list(regimes)
    bad = [r for r in regimes if r not in REGIMES]
    if bad or not regimes:
        raise ConfigError(f"regimes must be a non-empty list of {', '.join(REGIMES)}; got {regimes}")
    eps_list = []
    for e in epsilons:
        if isinstance(e, bool) or not isinstance(e, (int, float)) or not math.isfinite(e) or e <= 0:
            raise ConfigError(f"ε must be a finite number > 0, got {e!r}")
        eps_list.append(float(e))
    seed_list = [int(s) for s in seeds]
    if not seed_list or any(s < 0 for s in seed_list):
        raise ConfigError(f"seeds must be a non-empty list of integers ≥ 0, got {seed_list}")
    for label, value in (("train size", train_size), ("test size", test_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 2:
            raise ConfigError(f"{label} must be an integer ≥ 2, got {value!r}")
    return regimes, eps_list, seed_list


def _cells_of_grid(grid: RegimeGrid, base: VisionTransformer, cache: FeatureCache,
                   progress: bool) -> tuple[list[UtilityCell], dict[float, float]]:
    """The cells of the regime comparison experiment (``run_grid`` on the grid's named task)."""
    cells: list[UtilityCell] = []
    sigmas: dict[float, float] = {}
    for r in run_grid(grid, base=base, progress=progress, cache=cache).rows:
        cells.append({"regime": r["regime"], "epsilon": float(r["target_epsilon"]),
                      "kind": "ours" if r["kind"] == "Ours" else "reg", "seed": r["seed"],
                      "test_accuracy": float(r["test_accuracy"]), "epsilon_accounted": r.get("epsilon"),
                      "sigma": r.get("noise_multiplier"), "seconds": r.get("train_seconds")})
        sigmas[float(r["target_epsilon"])] = r["noise_multiplier"]  # every run_grid row records its σ
    return cells, sigmas


def _cells_trained_here(grid: RegimeGrid, base: VisionTransformer, train: ImageData, test: ImageData,
                        regimes: list[str], eps_list: list[float], seeds: list[int], noise_seed: int | None,
                        cache: FeatureCache, progress: bool) -> tuple[list[UtilityCell], dict[float, float]]:
    """The same cells as the grid's, trained on the data given (σ calibrated once per ε)."""
    sigmas = {eps: resolve_noise(grid.dp_config(True, regimes[0], eps, seeds[0]), len(train))[0] for eps in eps_list}
    jobs = [(r, e, k, s) for s in seeds for e in eps_list for r in regimes for k in ("ours", "reg")]
    cells: list[UtilityCell] = []
    with Progress(len(jobs), "utility: DP fine-tuning", unit="model", enabled=progress) as bar:
        for index, (regime, eps, kind, seed) in enumerate(jobs):
            cell_noise = None if noise_seed is None else int(noise_seed) * 1_000_003 + index
            cfg = grid.dp_config(kind == "ours", regime, eps, seed, noise_multiplier=float(sigmas[eps]),
                                 noise_seed=cell_noise)
            t0 = time.perf_counter()
            result = fit_dp(base, train, cfg, test=test, cache=cache, progress=False)
            cells.append({"regime": regime, "epsilon": eps, "kind": kind, "seed": seed,
                          "test_accuracy": float(result.metrics["test_accuracy"]),
                          "epsilon_accounted": result.manifest.get("epsilon"), "sigma": float(sigmas[eps]),
                          "seconds": time.perf_counter() - t0})
            bar.update()
    return cells, sigmas


def _nonprivate_cells(base: VisionTransformer, train: ImageData, test: ImageData, regimes: list[str], seeds: list[int],
                      config: TrainConfig | None, cache: FeatureCache) -> list[UtilityCell]:
    cells: list[UtilityCell] = []
    for regime in regimes:
        for kind in ("ours", "reg"):
            for seed in seeds:
                cfg = (config.replace(regime=regime, tangent=kind == "ours", seed=seed) if config is not None
                       else TrainConfig.recipe(tangent=kind == "ours", regime=regime, seed=seed))
                t0 = time.perf_counter()
                result = fit(base, train, cfg, test=test, cache=cache, progress=False)
                cells.append({"regime": regime, "epsilon": None, "kind": kind, "seed": seed,
                              "test_accuracy": float(result.metrics["test_accuracy"]),
                              "epsilon_accounted": None, "sigma": None, "seconds": time.perf_counter() - t0})
    return cells


def run_utility_audit(
    base: VisionTransformer,
    *,
    train: ImageData | None = None,
    test: ImageData | None = None,
    task: str = "fashion-near",
    regimes: Sequence[str] = ("full", "fc"),
    epsilons: Sequence[float] = (1, 3, 8),
    seeds: Sequence[int] = (0,),
    delta: float = 1e-5,
    train_size: int = 128,
    test_size: int = 500,
    dp_config: DPConfig | None = None,
    noise_seed: int | None = None,
    include_nonprivate: bool = False,
    nonprivate_config: TrainConfig | None = None,
    cache: FeatureCache | None = None,
    progress: bool = False,
    threads: int | None = 1,
) -> AuditSection:
    """DP test accuracy per (regime, ε), Ours vs Reg, mean (± std) over ``seeds``.

    With no ``train``/``test`` it runs ``privtangent.experiments.regimes.run_grid`` (the
    ``compare-regimes`` experiment) on ``task`` (its first ``train_size`` / ``test_size``
    samples); with data given, the same cells (``RegimeGrid.dp_config``: the same recipe) are
    trained here on that data.

    Args:
        base: the base ViT.
        train, test: the data (cut to ``train_size`` / ``test_size``); default the named ``task``.
        regimes: any of full, bitfit, layernorm, fc.
        epsilons, delta: the DP targets.
        seeds: model seeds (head initialization, reset).
        dp_config: the DP recipe (epochs, q, C, lr, optimizer, reset, accountant) to use.
        noise_seed: seeds every cell's noise (reproducible; these models are measurements, never
            released); None draws it from OS entropy.
        include_nonprivate: add rows with ε = None, trained by ``fit`` without DP
            (``nonprivate_config``, default each method's ``TrainConfig.recipe``).

    Returns:
        the ``utility`` section: rows {regime, epsilon, ours, reg, ours_std, reg_std, seeds}
        (accuracies as fractions), the cells, one check.
    """
    with torch_threads(threads):
        start = time.perf_counter()
        regimes, eps_list, seed_list = _check_grid(regimes, epsilons, seeds, train_size, test_size)
        cache = cache or FeatureCache()
        grid = _grid(regimes, eps_list, delta, seed_list, task, train_size, test_size, dp_config, noise_seed)
        if train is None and test is None:
            source = "privtangent.experiments.regimes.run_grid"
            cells, sigmas = _cells_of_grid(grid, base, cache, progress)
            train, test = load_task(task, "train", limit=train_size), load_task(task, "test", limit=test_size)
        else:
            train = train if train is not None else load_task(task, "train")
            test = test if test is not None else load_task(task, "test")
            train = train.limit(train_size) if len(train) > train_size else train
            test = test.limit(test_size) if len(test) > test_size else test
            source = "privtangent.experiments.regimes.RegimeGrid.dp_config, trained here (fit_dp per cell)"
            cells, sigmas = _cells_trained_here(grid, base, train, test, regimes, eps_list, seed_list, noise_seed, cache,
                                                progress)
        if include_nonprivate:
            cells += _nonprivate_cells(base, train, test, regimes, seed_list, nonprivate_config, cache)
        rows = utility_rows(cells)
        body = {
            "summary": (f"DP fine-tuning ({'full-batch DP-GD' if grid.sample_rate == 1.0 else 'DP-SGD'}, "
                        f"{grid.epochs:g} epochs, C = {grid.clip:g}) of each regime, on the tangent model "
                        f"(Ours) and the original network (Reg), {len(train)} training and {len(test)} test samples of "
                        f"{train.name}; test accuracy as a fraction, mean over {len(seed_list)} seed(s)."),
            "rows": rows,
            "source": source,
            "setup": {"train": train.name, "train_size": len(train), "test_size": len(test), "delta": delta,
                      "seeds": seed_list, "regimes": regimes, "epsilons": eps_list,
                      "noise_multipliers": {f"{e:g}": s for e, s in sigmas.items()} or None,
                      "recipe": dataclasses.asdict(grid),
                      "noise": "seeded per cell (not for release)" if noise_seed is not None else "OS entropy per cell",
                      "tuning": "hyperparameters fixed in advance (the DPConfig defaults); none tuned on the private data"},
            "cells": cells,
            "seconds": time.perf_counter() - start,
        }
        return AuditSection(SECTION, body, utility_checks(rows, train.num_classes, len(seed_list)))
