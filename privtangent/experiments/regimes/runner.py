"""Running the cells of a ``RegimeGrid``: one ``fit_dp`` per (data, regime, kind, ε, seed).

σ depends on (ε, δ, q, T) only, so it is calibrated once per (data set, ε) and shared by
every regime and kind (``privtangent.dp.calibrate_noise``, PRV accountant by default). Every
finished run is stored (``RunStore``) under a key that hashes the base weights, the data,
the full ``DPConfig`` and the noise seed, so a rerun skips what has finished.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from timm.models.vision_transformer import VisionTransformer
from torch import nn

from privtangent.data import load_task
from privtangent.data.dataset import ImageData, LabeledData
from privtangent.dp.training import DPConfig, fit_dp, resolve_noise
from privtangent.experiments.regimes.analysis import summarize
from privtangent.experiments.regimes.grid import REGIME_LABELS, RegimeGrid
from privtangent.experiments.regimes.store import RunStore
from privtangent.features import FeatureCache
from privtangent.io.atomic import atomic_write_json
from privtangent.io.hashing import tensor_hash
from privtangent.models.pretrain import pretrained_base
from privtangent.progress import Progress

RUN_VERSION = 1  # bump when a change to training changes results for the same spec


@dataclass
class RegimeResults:
    """Per-run rows (dicts, accuracies as fractions) and, in ``summary``, mean/std per cell in %."""

    grid: RegimeGrid
    rows: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    info: dict[str, Any] = field(default_factory=dict)


def base_identity(base: nn.Module) -> str:
    """sha256 of the base model's weights (part of every run's key)."""
    return tensor_hash(base.state_dict())


def run_spec(base_id: str, train: ImageData, test: ImageData, config: DPConfig) -> dict[str, Any]:
    """Everything that determines a run's result (the key of ``RunStore``)."""
    return {"version": RUN_VERSION, "base": base_id, "train": train.content_hash(), "test": test.content_hash(),
            "config": config.to_dict()}


def run_one(base: VisionTransformer, train: ImageData, test: ImageData, config: DPConfig, *, cache: FeatureCache,
            store: RunStore, base_id: str) -> dict[str, Any]:
    """Train and evaluate one DP run, or return its stored result. Accuracy as a fraction."""
    spec = run_spec(base_id, train, test, config)
    stored = store.get(spec)
    if stored is not None:
        return {**stored, "resumed": True}
    cpu, wall = time.process_time(), time.perf_counter()
    result = fit_dp(base, train, config, test=test, cache=cache, progress=False)
    out = {"test_accuracy": float(result.metrics["test_accuracy"]), "manifest": result.manifest,
           "train_seconds": float(result.metrics["train_seconds"]), "cpu_seconds": time.process_time() - cpu,
           "wall_seconds": time.perf_counter() - wall}
    store.put(spec, out)
    return {**out, "resumed": False}


def load_splits(grid: RegimeGrid) -> dict[str, tuple[LabeledData, LabeledData]]:
    """(train, test) per data set: the first ``data_limit`` / ``test_limit`` images of each split."""
    return {d: (load_task(d, "train", limit=grid.data_limit), load_task(d, "test", limit=grid.test_limit))
            for d in grid.data}


def run_grid(grid: RegimeGrid, *, base: VisionTransformer | None = None, base_name: str = "default", progress: bool = True,
             manifest_dir: str | Path | None = None, cache: FeatureCache | None = None,
             splits: Mapping[str, tuple[ImageData, ImageData]] | None = None,
             store: RunStore | None = None) -> RegimeResults:
    """Run every cell of ``grid``; returns the per-run rows and the mean/std summary.

    Args:
        base: the base ViT (default: the embedded base ``base_name``).
        splits: (private train, test) per data set (default ``load_splits(grid)``).
        manifest_dir: where each run's privacy manifest is written (JSON).
        store: finished runs (default: none kept).
    """
    if base is None:
        base, _ = pretrained_base(progress=progress, base=base_name)
    cache = cache or FeatureCache()
    store = store or RunStore(None)
    splits = dict(splits) if splits is not None else load_splits(grid)
    manifest_dir = Path(manifest_dir) if manifest_dir else None
    base_id = base_identity(base)
    sigmas: dict[tuple[str, float], float] = {}
    rows: list[dict[str, Any]] = []
    cells = grid.cells()
    start, cpu_start = time.perf_counter(), time.process_time()
    with Progress(len(cells), "compare-regimes", unit="run", enabled=progress) as bar:
        for data, regime, kind, eps, seed in cells:
            train, test = splits[data]
            n = len(train)
            bar.report(run=f"{data} {REGIME_LABELS[regime]} {kind} ε={eps:g} seed={seed}")
            if (data, eps) not in sigmas:  # σ depends on (ε, δ, q, T) only: calibrate once
                sigmas[(data, eps)], _ = resolve_noise(grid.dp_config(True, regime, eps, seed, n=n), n)
            config = grid.dp_config(kind == "Ours", regime, eps, seed, noise_multiplier=sigmas[(data, eps)],
                                    noise_seed=grid.cell_noise_seed(data, regime, eps, seed), n=n)
            result = run_one(base, train, test, config, cache=cache, store=store, base_id=base_id)
            manifest = {**result["manifest"], "noise_calibrated": True, "data": train.name, "test_data": test.name,
                        "seed": seed, "lr": config.lr, "optimizer": config.optimizer}
            name = f"{data.replace('/', '-')}_n{n}_{regime}_{kind.lower()}_eps{eps:g}_seed{seed}.json"
            if manifest_dir:
                atomic_write_json(manifest_dir / name, manifest)
            rows.append({
                "data": data, "regime": regime, "kind": kind, "target_epsilon": eps, "seed": seed,
                "test_accuracy": result["test_accuracy"], "epsilon": manifest["epsilon"],
                "epsilon_rdp": manifest.get("epsilon_rdp"), "delta": config.delta,
                "noise_multiplier": manifest["noise_multiplier"], "clip": config.max_grad_norm,
                "sample_rate": config.sample_rate, "expected_batch_size": manifest["expected_batch_size"],
                "steps": manifest["steps"], "num_train": n, "num_test": len(test), "lr": config.lr,
                "optimizer": config.optimizer, "output": config.resolved_output, "accountant": manifest["accountant"],
                "sampling": manifest["sampling"], "noise_seeded": manifest["noise_seeded"],
                "train_seconds": result["train_seconds"], "cpu_seconds": result["cpu_seconds"],
                "resumed": result["resumed"], "manifest": name if manifest_dir else None,
            })
            bar.update(1)
    info = {"wall_seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu_start,
            "runs": len(rows), "runs_resumed": sum(r["resumed"] for r in rows),
            "run_cpu_seconds": sum(r["cpu_seconds"] for r in rows),
            "sigmas": {f"{d} eps={e:g}": s for (d, e), s in sigmas.items()}}
    return RegimeResults(grid, rows, summarize(rows), info)


__all__ = ["RegimeResults", "base_identity", "load_splits", "run_grid", "run_one", "run_spec"]
