"""The utility audit: test accuracy of DP fine-tuning per regime and ε, tangent ("Ours") vs
non-linear ("Reg") — the shape of Table 3 of the tangent-transformers paper, on the user's data.

Each cell trains ``DPConfig`` (default: the paper's full-batch DP-GD) with the regime, the
model kind and the target ε, for each seed, and reports the mean test accuracy (fraction)
and, with more than one seed, the standard deviation. σ is calibrated once per ε (it does
not depend on the regime or the model kind). If ``privtangent.experiments.regimes`` provides
``compare_regimes``, it is used instead of the loop here (``body["source"]`` says which).
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import nn
from tqdm.auto import tqdm

from privtangent.data.dataset import LabeledData
from privtangent.errors import ConfigError
from privtangent.features import FeatureCache
from privtangent.tangent.regimes import REGIMES
from privtangent.train import TrainConfig, fit

__all__ = ["SECTION", "run_utility_audit", "utility_rows"]

SECTION = "utility"
NOISE_SEED_OFFSET = 104_729  # utility replicas are measurements, never released: noise seeded for reproducibility


def _external() -> Any:
    try:
        from privtangent.experiments import regimes as module  # written by the DP engineer
    except ImportError:
        return None
    return getattr(module, "compare_regimes", None)


def _call_external(fn: Any, **kwargs: Any) -> list[dict[str, Any]] | None:
    """Rows {regime, epsilon, ours, reg, ...} from the external comparison, or None if its
    output has another shape (the loop here is used then)."""
    params = inspect.signature(fn).parameters
    accepted = {k: v for k, v in kwargs.items() if k in params}
    out = fn(**accepted)
    if hasattr(out, "to_dict"):
        out = out.to_dict("records")
    if isinstance(out, dict) and "rows" in out:
        out = out["rows"]
    if not isinstance(out, list) or not all(isinstance(r, dict) and {"regime", "epsilon", "ours", "reg"} <= set(r)
                                            for r in out):
        return None
    return out


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


def run_utility_audit(
    base: nn.Module | None = None,
    *,
    train: LabeledData | None = None,
    test: LabeledData | None = None,
    regimes: Sequence[str] = ("full", "fc"),
    epsilons: Sequence[float] = (1, 3, 8),
    seeds: Sequence[int] = (0,),
    delta: float = 1e-5,
    train_size: int = 256,
    test_size: int = 500,
    dp_config: Any = None,
    include_nonprivate: bool = False,
    nonprivate_config: TrainConfig | None = None,
    cache: FeatureCache | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """DP test accuracy per (regime, ε), Ours vs Reg, mean (± std) over ``seeds``.

    Args:
        base: the base ViT (default: the embedded default).
        train, test: the task (default: Fashion-MNIST 5–9), cut to ``train_size`` / ``test_size``.
        regimes: any of full, bitfit, layernorm, fc.
        epsilons, delta: the DP targets.
        seeds: model seeds (head initialization, reset); the DP noise is seeded from them too.
        dp_config: the template ``DPConfig`` (default ``DPConfig()``).
        include_nonprivate: add rows with ε = None, trained by ``fit`` without DP
            (``nonprivate_config``, default each method's ``TrainConfig.recipe``).

    Returns:
        ``{"section": "utility", "body": {"rows": [{regime, epsilon, ours, reg, ...}], ...},
        "checks": [...], "roc": None}``.
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
    if train is None or test is None:
        from privtangent.data import load_task

        train = train if train is not None else load_task("fashion-near", "train", limit=train_size)
        test = test if test is not None else load_task("fashion-near", "test", limit=test_size)
    train, test = train.limit(train_size), test.limit(test_size)
    template = dp_config if dp_config is not None else DPConfig()
    cache = cache or FeatureCache()
    source = "privtangent.audits.utility (fit_dp per cell)"
    rows = None
    external = _external()
    if external is not None:
        rows = _call_external(external, base=base, train=train, test=test, regimes=regimes, epsilons=eps_list,
                              seeds=seeds, delta=delta, dp_config=template, cache=cache, progress=progress)
        if rows is not None:
            source = "privtangent.experiments.regimes.compare_regimes"
    cells: list[dict[str, Any]] = []
    sigmas: dict[float, float] = {}
    if rows is None:
        for eps in eps_list:
            sigmas[eps], _ = resolve_noise(template.replace(target_epsilon=eps, noise_multiplier=None, delta=delta),
                                           len(train))
        jobs = [(r, e, k, s) for r in regimes for e in eps_list for k in ("ours", "reg") for s in seeds]
        for regime, eps, kind, seed in tqdm(jobs, desc="utility: DP fine-tuning", disable=not progress, unit="model"):
            cfg = template.replace(regime=regime, tangent=kind == "ours", target_epsilon=None,
                                   noise_multiplier=float(sigmas[eps]), delta=delta, seed=seed,
                                   noise_seed=NOISE_SEED_OFFSET + seed)
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
    chance = 1.0 / max(train.num_classes, 1)
    checks = []
    values = [(r, k, r.get(k)) for r in rows for k in ("ours", "reg")]
    missing = [(r["regime"], r["epsilon"], k) for r, k, v in values if v is None or not math.isfinite(v)]
    at_chance = [(r["regime"], r["epsilon"], k, v) for r, k, v in values
                 if v is not None and math.isfinite(v) and v <= chance]
    compared = [r for r in rows if r.get("ours") is not None and r.get("reg") is not None and r["epsilon"] is not None]
    wins = sum(r["ours"] >= r["reg"] for r in compared)
    if missing or at_chance:
        what = missing[0] if missing else at_chance[0]
        status, reason = "FAIL", (f"{len(missing)} cell(s) without an accuracy, {len(at_chance)} at or below chance "
                                  f"({chance:.3g}); first: regime {what[0]}, ε {what[1]}, {what[2]}")
    else:
        status, reason = "PASS", (f"every cell above chance ({chance:.3g}); Ours ≥ Reg in {wins} of {len(compared)} "
                                  f"DP cells ({len(seeds)} seed(s) each)")
    checks.append({"id": "utility-dp-above-chance", "section": SECTION,
                   "title": "every DP model learns (test accuracy above chance)", "status": status, "reason": reason})
    body = {
        "summary": (f"DP fine-tuning ({'full-batch DP-GD' if template.sample_rate == 1.0 else 'DP-SGD'}, "
                    f"{template.epochs:g} epochs, C = {template.max_grad_norm:g}) of each regime, on the tangent model "
                    f"(Ours) and the original network (Reg), {len(train)} training and {len(test)} test samples of "
                    f"{train.name}; test accuracy as a fraction, mean over {len(seeds)} seed(s)."),
        "rows": rows,
        "source": source,
        "setup": {"train": train.name, "train_size": len(train), "test_size": len(test), "delta": delta,
                  "seeds": seeds, "regimes": regimes, "epsilons": eps_list,
                  "noise_multipliers": {f"{e:g}": s for e, s in sigmas.items()} or None,
                  "dp_config": template.to_dict(),
                  "tuning": "hyperparameters fixed in advance (the DPConfig defaults); none tuned on the private data"},
        "cells": cells,
        "seconds": time.perf_counter() - start,
    }
    return {"section": SECTION, "body": body, "checks": checks, "roc": None}
