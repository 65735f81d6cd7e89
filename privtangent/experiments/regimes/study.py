"""The whole comparison for each data set: split, tune on public data, run every cell, compare.

``run_comparison(grid, tuning=TuningGrid())`` does, per data set of ``grid``:

1. ``split_task``: private training set / public tuning data / test set (disjoint);
2. ``tune``: (lr, C) per (regime, kind) on the public part, at equal cost per cell;
3. ``run_grid``: every (regime, kind, ε, seed) on the private set with its tuned (lr, C);
4. ``compare``: the typed ``RegimeComparison`` (intervals, best per ε, one sentence).

With ``tuning=None`` step 2 is skipped: every cell uses the grid's own hyperparameters, and
the data are the first ``data_limit`` / ``test_limit`` images of each split (no public part).
"""

from __future__ import annotations

import dataclasses
import time

from timm.models.vision_transformer import VisionTransformer

from privtangent.experiments.regimes.analysis import compare, summarize
from privtangent.experiments.regimes.grid import RegimeGrid
from privtangent.experiments.regimes.results import RegimeComparison, TuningResult
from privtangent.experiments.regimes.runner import RegimeResults, base_identity, load_splits, run_grid
from privtangent.experiments.regimes.splits import split_task
from privtangent.experiments.regimes.store import RunStore
from privtangent.experiments.regimes.tuning import TuningGrid, tune
from privtangent.features import FeatureCache
from privtangent.models.pretrain import pretrained_base

NOT_ACCOUNTED = "this choice is not accounted for in ε"


def hyperparameter_note(grid: RegimeGrid, tuning: TuningResult | None) -> str:
    """Where each cell's (lr, C) came from, in words, and that the choice costs no ε."""
    if tuning is not None:
        return (f"(lr, C) chosen per (regime, kind) on data declared public, never seen by the DP runs — "
                f"{tuning.setting}; {NOT_ACCOUNTED}")
    if grid.tuned:
        return (f"(lr, C) given per (regime, kind), not tuned here on the private data; any tuning done to choose "
                f"them elsewhere is public-data tuning at best, and {NOT_ACCOUNTED}")
    return (f"one lr per kind (Ours {grid.lr_for('Ours'):g}, Reg {grid.lr_for('Reg'):g}) and C = {grid.clip:g} for "
            f"every cell, fixed in advance and not tuned on the private data; {NOT_ACCOUNTED}")


def run_comparison(grid: RegimeGrid, *, tuning: TuningGrid | None = None, base: VisionTransformer | None = None,
                   base_name: str = "default", store: RunStore | None = None, cache: FeatureCache | None = None,
                   progress: bool = True, manifest_dir=None, split_seed: int = 0,
                   ) -> tuple[RegimeResults, list[RegimeComparison]]:
    """Run the comparison of every data set of ``grid``; returns all runs and one comparison per data set."""
    if base is None:
        base, _ = pretrained_base(progress=progress, base=base_name)
    cache = cache or FeatureCache()
    store = store or RunStore(None)
    base_id = base_identity(base)
    rows, comparisons, sigmas = [], [], {}
    start, cpu_start = time.perf_counter(), time.process_time()
    for data in grid.data:
        tuning_result = None
        if tuning is not None:
            split = split_task(data, train_limit=grid.data_limit, test_limit=grid.test_limit, seed=split_seed)
            tuning_result = tune(base, split, dataclasses.replace(grid, data=(data,)), tuning, cache=cache,
                                 store=store, base_id=base_id, progress=progress)
            data_grid = dataclasses.replace(grid, data=(data,), tuned=tuning_result.chosen)
            splits = {data: (split.train, split.test)}
        else:
            data_grid = dataclasses.replace(grid, data=(data,))
            splits = load_splits(data_grid)
        results = run_grid(data_grid, base=base, progress=progress, cache=cache, splits=splits, store=store,
                           manifest_dir=manifest_dir)
        rows.extend(results.rows)
        sigmas.update(results.info["sigmas"])
        comparisons.append(compare(results.rows, data_grid, data, base=base_name,
                                   hyperparameters=hyperparameter_note(data_grid, tuning_result), tuning=tuning_result))
    tuning_cpu = sum(c.tuning.cpu_seconds for c in comparisons if c.tuning is not None)
    info = {"wall_seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu_start,
            "runs": len(rows), "runs_resumed": sum(r["resumed"] for r in rows),
            "run_cpu_seconds": sum(r["cpu_seconds"] for r in rows), "tuning_cpu_seconds": tuning_cpu,
            "store_hits": store.hits, "sigmas": sigmas, "base": base_name}
    return RegimeResults(grid, rows, summarize(rows), info), comparisons


__all__ = ["hyperparameter_note", "run_comparison"]
