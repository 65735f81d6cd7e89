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
from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import nn
from tqdm.auto import tqdm

from audits.shadows import limit_threads
from privtangent.data.dataset import LabeledData
from privtangent.errors import ConfigError
from privtangent.features import FeatureCache
from privtangent.tangent.regimes import REGIMES
from privtangent.train import TrainConfig, fit

__all__ = ["SECTION", "run_utility_audit", "utility_checks", "utility_rows"]

SECTION = "utility"


def utility_rows(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-seed cells {regime, epsilon, kind ('ours'|'reg'), seed, test_accuracy} → table rows."""
    rows = []
    keys = list(dict.fromkeys((c["regime"], c["epsilon"]) for c in cells))
    for regime, eps in keys:
        row: dict[str, Any] = {"regime": regime, "epsilon": eps}
        for kind in ("ours", "reg"):
            accs = [c["test_accuracy"] for c in cells if (c["regime"], c["epsilon"], c["kind"]) == (regime, eps, kind)]
            row[kind] = float(np.mean(accs)) if accs else None
            row[f"{kind}_std"] = float(np.std(accs, ddof=1)) if len(accs) > 1 else None
        row["seeds"] = len({c["seed"] for c in cells if (c["regime"], c["epsilon"]) == (regime, eps)})
        rows.append(row)
    return rows


def utility_checks(rows: list[dict[str, Any]], num_classes: int, num_seeds: int = 1) -> list[dict[str, Any]]:
    """One check: every DP cell has an accuracy above chance (1/K); else FAIL (broken
    calibration or training). Its reason counts the cells where Ours ≥ Reg."""
    chance = 1.0 / max(int(num_classes), 1)
    values = [(r, k, r.get(k)) for r in rows for k in ("ours", "reg")]
    missing = [(r["regime"], r["epsilon"], k) for r, k, v in values if v is None or not math.isfinite(v)]
    at_chance = [(r["regime"], r["epsilon"], k) for r, k, v in values
                 if v is not None and math.isfinite(v) and v <= chance]
    compared = [r for r in rows if r.get("ours") is not None and r.get("reg") is not None and r["epsilon"] is not None]
    wins = sum(r["ours"] >= r["reg"] for r in compared)
    if missing or at_chance:
        what = missing[0] if missing else at_chance[0]
        status, reason = "FAIL", (f"{len(missing)} cell(s) without an accuracy, {len(at_chance)} at or below chance "
                                  f"({chance:.3g}); first: regime {what[0]}, ε {what[1]}, {what[2]}")
    else:
        status, reason = "PASS", (f"every cell above chance ({chance:.3g}); Ours ≥ Reg in {wins} of {len(compared)} "
                                  f"DP cells ({num_seeds} seed(s) each)")
    return [{"id": "utility-dp-above-chance", "section": SECTION,
             "title": "every DP model learns (test accuracy above chance)", "status": status, "reason": reason}]


def _regime_module() -> Any:
    try:
        from privtangent.experiments import regimes as module  # the regime comparison (compare-regimes)
    except ImportError:
        return None
    return module if hasattr(module, "RegimeGrid") and hasattr(module, "run_grid") else None


def _grid(module: Any, regimes: list[str], epsilons: list[float], delta: float, seeds: list[int], task: str,
          train_size: int, test_size: int, dp_config: Any, noise_seed: int | None) -> Any:
    """The ``RegimeGrid`` of this audit: the DP recipe of ``dp_config`` (default the grid's own)."""
    kw: dict[str, Any] = dict(regimes=tuple(regimes), epsilons=tuple(epsilons), delta=delta, data=(task,),
                              data_limit=train_size, test_limit=test_size, seeds=tuple(seeds), noise_seed=noise_seed)
    if dp_config is not None:
        kw.update(epochs=dp_config.epochs, sample_rate=dp_config.sample_rate, clip=dp_config.max_grad_norm,
                  lr=dp_config.lr, optimizer=dp_config.optimizer, reset=dp_config.reset,
                  accountant=dp_config.accountant, jvp_only=dp_config.output != "full")
    return module.RegimeGrid(**kw)


@limit_threads
def run_utility_audit(
    base: nn.Module | None = None,
    *,
    train: LabeledData | None = None,
    test: LabeledData | None = None,
    task: str = "fashion-near",
    regimes: Sequence[str] = ("full", "fc"),
    epsilons: Sequence[float] = (1, 3, 8),
    seeds: Sequence[int] = (0,),
    delta: float = 1e-5,
    train_size: int = 128,
    test_size: int = 500,
    dp_config: Any = None,
    noise_seed: int | None = None,
    include_nonprivate: bool = False,
    nonprivate_config: TrainConfig | None = None,
    cache: FeatureCache | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """DP test accuracy per (regime, ε), Ours vs Reg, mean (± std) over ``seeds``.

    With no ``train``/``test`` it runs ``privtangent.experiments.regimes.run_grid`` (the
    ``compare-regimes`` experiment) on ``task`` (its first ``train_size`` / ``test_size``
    samples); with data given, the same cells (``RegimeGrid.dp_config``: the same recipe) are
    trained here on that data. Without that module, ``dp_config`` (default ``DPConfig()``) is
    the recipe.

    Args:
        base: the base ViT (default: the embedded default).
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
        ``{"section": "utility", "body": {"rows": [{regime, epsilon, ours, reg, ours_std, reg_std,
        seeds}], ...}, "checks": [...], "roc": None}`` (accuracies as fractions).
    """
    from privtangent.dp.training import DPConfig, fit_dp, resolve_noise

    start = time.perf_counter()
    regimes = list(regimes)
    bad = [r for r in regimes if r not in REGIMES]
    if bad or not regimes:
        raise ConfigError(f"regimes must be a non-empty list of {', '.join(REGIMES)}; got {regimes}")
    eps_list = []
    for e in epsilons:
        if isinstance(e, bool) or not isinstance(e, (int, float)) or not math.isfinite(e) or e <= 0:
            raise ConfigError(f"ε must be a finite number > 0, got {e!r}")
        eps_list.append(float(e))
    seeds = [int(s) for s in seeds]
    if not seeds or any(s < 0 for s in seeds):
        raise ConfigError(f"seeds must be a non-empty list of integers ≥ 0, got {seeds}")
    for label, value in (("train size", train_size), ("test size", test_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 2:
            raise ConfigError(f"{label} must be an integer ≥ 2, got {value!r}")
    if base is None:
        from privtangent.models import pretrained_base

        base, _ = pretrained_base(progress=progress)
    template = dp_config if dp_config is not None else DPConfig()
    cache = cache or FeatureCache()
    module = _regime_module()
    grid = _grid(module, regimes, eps_list, delta, seeds, task, train_size, test_size, dp_config, noise_seed) \
        if module is not None else None
    cells: list[dict[str, Any]] = []
    sigmas: dict[float, float] = {}
    if grid is not None and train is None and test is None:
        source = "privtangent.experiments.regimes.run_grid"
        results = module.run_grid(grid, base=base, progress=progress, cache=cache)
        for r in results.rows:
            cells.append({"regime": r["regime"], "epsilon": float(r["target_epsilon"]),
                          "kind": "ours" if r["kind"] == "Ours" else "reg", "seed": r["seed"],
                          "test_accuracy": float(r["test_accuracy"]), "epsilon_accounted": r.get("epsilon"),
                          "sigma": r.get("noise_multiplier"), "seconds": r.get("train_seconds")})
            sigmas[float(r["target_epsilon"])] = r.get("noise_multiplier")
        from privtangent.data import load_task

        train = load_task(task, "train", limit=train_size)
        test = load_task(task, "test", limit=test_size)
    else:
        if train is None or test is None:
            from privtangent.data import load_task

            train = train if train is not None else load_task(task, "train", limit=train_size)
            test = test if test is not None else load_task(task, "test", limit=test_size)
        train, test = train.limit(train_size), test.limit(test_size)
        source = ("privtangent.experiments.regimes.RegimeGrid.dp_config, trained here (fit_dp per cell)"
                  if grid is not None else "audits.utility (DPConfig per cell, fit_dp)")
        for eps in eps_list:
            probe = grid.dp_config(True, regimes[0], eps, seeds[0]) if grid is not None else \
                template.replace(target_epsilon=eps, noise_multiplier=None, delta=delta)
            sigmas[eps], _ = resolve_noise(probe, len(train))
        jobs = [(r, e, k, s) for s in seeds for e in eps_list for r in regimes for k in ("ours", "reg")]
        for index, (regime, eps, kind, seed) in enumerate(tqdm(jobs, desc="utility: DP fine-tuning",
                                                               disable=not progress, unit="model")):
            cell_noise = None if noise_seed is None else int(noise_seed) * 1_000_003 + index
            if grid is not None:
                cfg = grid.dp_config(kind == "ours", regime, eps, seed, noise_multiplier=float(sigmas[eps]),
                                     noise_seed=cell_noise)
            else:
                cfg = template.replace(regime=regime, tangent=kind == "ours", target_epsilon=None,
                                       noise_multiplier=float(sigmas[eps]), delta=delta, seed=seed,
                                       noise_seed=cell_noise)
            t0 = time.perf_counter()
            result = fit_dp(base, train, cfg, test=test, cache=cache, progress=False)
            cells.append({"regime": regime, "epsilon": eps, "kind": kind, "seed": seed,
                          "test_accuracy": float(result.metrics["test_accuracy"]),
                          "epsilon_accounted": result.manifest.get("epsilon"), "sigma": float(sigmas[eps]),
                          "seconds": time.perf_counter() - t0})
    if include_nonprivate:
        for regime in regimes:
            for kind in ("ours", "reg"):
                for seed in seeds:
                    cfg = nonprivate_config.replace(regime=regime, tangent=kind == "ours", seed=seed) \
                        if nonprivate_config is not None else TrainConfig.recipe(tangent=kind == "ours",
                                                                                 regime=regime, seed=seed)
                    t0 = time.perf_counter()
                    result = fit(base, train, cfg, test=test, cache=cache, progress=False)
                    cells.append({"regime": regime, "epsilon": None, "kind": kind, "seed": seed,
                                  "test_accuracy": float(result.metrics["test_accuracy"]),
                                  "epsilon_accounted": None, "sigma": None, "seconds": time.perf_counter() - t0})
    rows = utility_rows(cells)
    checks = utility_checks(rows, train.num_classes, len(seeds))
    q, epochs, clip = ((grid.sample_rate, grid.epochs, grid.clip) if grid is not None
                       else (template.sample_rate, template.epochs, template.max_grad_norm))
    body = {
        "summary": (f"DP fine-tuning ({'full-batch DP-GD' if q == 1.0 else 'DP-SGD'}, "
                    f"{epochs:g} epochs, C = {clip:g}) of each regime, on the tangent model "
                    f"(Ours) and the original network (Reg), {len(train)} training and {len(test)} test samples of "
                    f"{train.name}; test accuracy as a fraction, mean over {len(seeds)} seed(s)."),
        "rows": rows,
        "source": source,
        "setup": {"train": train.name, "train_size": len(train), "test_size": len(test), "delta": delta,
                  "seeds": seeds, "regimes": regimes, "epsilons": eps_list,
                  "noise_multipliers": {f"{e:g}": s for e, s in sigmas.items()} or None,
                  "recipe": (dataclasses.asdict(grid) if grid is not None else template.to_dict()),
                  "noise": "seeded per cell (not for release)" if noise_seed is not None else "OS entropy per cell",
                  "tuning": "hyperparameters fixed in advance (the DPConfig defaults); none tuned on the private data"},
        "cells": cells,
        "seconds": time.perf_counter() - start,
    }
    return {"section": SECTION, "body": body, "checks": checks, "roc": None}
