"""The paper's Table 1 on the embedded default: TAFT vs non-linear fine-tuning vs the head.

Methods (k = half the base model's depth; 2 for the embedded default):

- ``NLFT-1`` / ``NLFT-k``: plain fine-tuning of the last 1 / k blocks, final norm and head;
- ``TAFT-1`` / ``TAFT-k``: the same parameters' Δw on the model linearized there;
- ``FC``: the head alone.

Each of NLFT and TAFT runs with and without resetting the fine-tuned blocks first (PT=F /
PT=T) and with and without a fresh, trained CLS token (CLS=T / F), as in the paper's
ablation; on the near task (Fashion-MNIST 5–9, the first 5,000 training images, the full
test set) and the far task (scikit-learn digits), over several seeds; mean ± std.

The frozen prefix runs once per data set and split (the parent process fills a feature
cache on disk that the workers read); runs are spread over a ``spawn`` process pool, one
torch thread per worker, longest first. Every finished run is appended to
``table1_runs.csv`` as it arrives, so an interrupted experiment continues where it
stopped (``resume=True``).
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import platform
import resource
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from timm.models.vision_transformer import VisionTransformer

from privtangent.choices import TABLE1_EPOCHS, TABLE1_METHODS
from privtangent.data import load_task
from privtangent.data.dataset import LabeledData
from privtangent.errors import ConfigError
from privtangent.features import FeatureCache
from privtangent.io.atomic import atomic_write_json, atomic_write_text
from privtangent.io.hashing import tensor_hash
from privtangent.models import pretrained_base
from privtangent.paths import feature_cache_dir
from privtangent.progress import Progress
from privtangent.train.config import TrainConfig, default_lr
from privtangent.train.trainer import fit

TASKS = {  # key -> (data set, training-sample limit, paper's name for it)
    "near": ("fashion-near", 5000, "near (Fashion-MNIST 5–9)"),
    "far": ("digits", None, "far (digits)"),
}
METHOD_ORDER = TABLE1_METHODS
RUN_COLUMNS = ["task", "data", "method", "variant", "tangent", "blocks", "regime", "reset", "linearize_cls", "loss",
               "lr", "epochs", "batch_size", "seed", "num_train", "num_test", "test_accuracy", "train_accuracy",
               "train_seconds", "cpu_seconds", "wall_seconds", "worker"]
DEFAULT_EPOCHS = TABLE1_EPOCHS
FC_LR = 1e-2  # the head alone converges slowly at 1e-3 in a short schedule; 1e-2 is FC's better choice here


@dataclass(frozen=True)
class Variant:
    """One row of the table: a method and its PT / CLS setting."""

    method: str  # NLFT-1, TAFT-1, NLFT-k, TAFT-k, FC (k spelled out, e.g. NLFT-2)
    tangent: bool
    blocks: int
    regime: str = "full"
    reset: bool = False
    linearize_cls: bool = False
    lr: float | None = None  # None: the method's default (TrainConfig.recipe)

    @property
    def label(self) -> str:
        if self.regime == "fc":
            return self.method
        return f"{self.method} PT={'F' if self.reset else 'T'} CLS={'T' if self.linearize_cls else 'F'}"

    @property
    def family(self) -> str:
        """The paper's column: NLFT-1, TAFT-1, NLFT-k, TAFT-k or FC."""
        if self.regime == "fc":
            return "FC"
        return f"{'TAFT' if self.tangent else 'NLFT'}-{'1' if self.blocks == 1 else 'k'}"

    def config(self, epochs: int, seed: int, batch_size: int = 32):
        return TrainConfig.recipe(self.tangent, self.regime, blocks=self.blocks, reset=self.reset,
                                  linearize_cls=self.linearize_cls, lr=self.lr, epochs=epochs, seed=seed,
                                  batch_size=batch_size)


def table1_variants(depth: int = 4, nlft_reset: bool = True) -> list[Variant]:
    """Every row: NLFT/TAFT × {1, depth/2} blocks × PT × CLS, and FC.

    ``nlft_reset=False`` keeps NLFT pretrained (PT=T) only, as in the paper's NLFT columns.
    """
    k = max(1, depth // 2)
    variants = [Variant("FC", tangent=False, blocks=1, regime="fc", lr=FC_LR)]
    for blocks in sorted({1, k}):
        for tangent in (False, True):
            for reset in ((False, True) if tangent or nlft_reset else (False,)):
                for cls in (False, True):
                    method = f"{'TAFT' if tangent else 'NLFT'}-{blocks}"
                    variants.append(Variant(method, tangent, blocks, reset=reset, linearize_cls=cls))
    return variants


def select_variants(variants: list[Variant], families: Iterable[str] | None) -> list[Variant]:
    if not families:
        return variants
    wanted = set(families)
    unknown = sorted(wanted - set(METHOD_ORDER))
    if unknown:
        raise ConfigError(f"--methods: unknown method {unknown[0]!r}; choose from {', '.join(METHOD_ORDER)}")
    return [v for v in variants if v.family in wanted]


@dataclass(frozen=True)
class Job:
    task: str
    variant: Variant
    seed: int
    epochs: int
    limit: int | None
    test_limit: int | None
    cache_dir: str
    batch_size: int = 32

    @property
    def key(self) -> tuple:
        return (self.task, self.variant.label, self.seed)

    def cost(self) -> float:
        """A rough relative cost, to start the longest runs first."""
        per_block = 1.6 if self.variant.tangent else 1.0
        size = (self.limit or 5000) if self.task == "near" else 1437
        block_cost = 0.5 if self.variant.regime == "fc" else self.variant.blocks * per_block
        return size * self.epochs * block_cost


# -- workers --------------------------------------------------------------------------------

# what a worker process loads once: its thread count and base model, and its (train, test) splits
_WORKER: dict[str, Any] = {}
_WORKER_DATA: dict[tuple[str, int | None, int | None], tuple[LabeledData, LabeledData]] = {}


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)
    _WORKER["threads"] = threads


def _task_data(task: str, limit: int | None, test_limit: int | None) -> tuple[LabeledData, LabeledData]:
    key = (task, limit, test_limit)
    if key not in _WORKER_DATA:
        name = TASKS[task][0]
        _WORKER_DATA[key] = (load_task(name, "train", limit=limit), load_task(name, "test", limit=test_limit))
    return _WORKER_DATA[key]


def _base() -> VisionTransformer:
    if "base" not in _WORKER:

        _WORKER["base"] = pretrained_base(progress=False)[0]
    return _WORKER["base"]


def run_job(job: Job) -> dict[str, Any]:
    """Train and evaluate one (task, variant, seed); returns its CSV row."""

    train, test = _task_data(job.task, job.limit, job.test_limit)
    config = job.variant.config(job.epochs, job.seed, job.batch_size)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    result = fit(_base(), train, config, test=test, cache=FeatureCache(job.cache_dir), progress=False)
    return {
        "task": job.task, "data": TASKS[job.task][0], "method": config.method, "variant": job.variant.label,
        "tangent": config.tangent, "blocks": config.blocks, "regime": config.regime, "reset": config.reset,
        "linearize_cls": config.linearize_cls, "loss": config.loss, "lr": config.lr, "epochs": config.epochs,
        "batch_size": config.batch_size, "seed": config.seed, "num_train": len(train), "num_test": len(test),
        "test_accuracy": result.metrics["test_accuracy"], "train_accuracy": result.metrics.get("train_accuracy"),
        "train_seconds": round(result.metrics["train_seconds"], 3),
        "cpu_seconds": round(time.process_time() - cpu0, 3), "wall_seconds": round(time.perf_counter() - wall0, 3),
        "worker": os.getpid(),
    }


def precompute_features(tasks: Iterable[str], starts: Iterable[int], limit_for: Callable[[str], int | None],
                        test_limit: int | None, cache_dir: Path, progress: bool) -> dict[str, float]:
    """Run the frozen prefix once per data set, split and start block; write the disk cache."""

    cache, seconds = FeatureCache(cache_dir), {}
    base = _base()
    for task in tasks:
        t0 = time.perf_counter()
        train, test = _task_data(task, limit_for(task), test_limit)
        for start in sorted(set(starts)):
            for data in (train, test):
                cache.features(base, start, data, progress=progress)
        seconds[task] = time.perf_counter() - t0
    return seconds


# -- the experiment -------------------------------------------------------------------------

@dataclass
class Table1:
    rows: list[dict[str, Any]]  # one per run
    summary: list[dict[str, Any]]  # one per (task, variant): mean, std, n
    wall_seconds: float
    info: dict[str, Any]


def run_table1(out: str | Path, *, seeds: Iterable[int] = (0, 1, 2), epochs: int = DEFAULT_EPOCHS,
               tasks: Iterable[str] = ("near", "far"), near_limit: int | None = 5000, test_limit: int | None = None,
               families: Iterable[str] | None = None, nlft_reset: bool = True, workers: int = 2, threads: int = 1,
               batch_size: int = 32, resume: bool = False, progress: bool = True, command: str | None = None,
               cache_dir: str | Path | None = None) -> Table1:
    """Run the grid and write ``table1_runs.csv``, ``table1.csv`` and ``table1.md`` into ``out``."""
    seeds, tasks = list(dict.fromkeys(seeds)), list(dict.fromkeys(tasks))
    for name, value, low in (("epochs", epochs, 1), ("workers", workers, 1), ("threads", threads, 1),
                             ("batch_size", batch_size, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{name}: must be an integer ≥ {low}, got {value!r}")
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise ConfigError(f"seeds: must be one or more integers ≥ 0, got {seeds!r}")
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown or not tasks:
        raise ConfigError(f"tasks: unknown task {unknown[0] if unknown else None!r}; choose from {', '.join(TASKS)}")
    for name, limit in (("near_limit", near_limit), ("test_limit", test_limit)):
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ConfigError(f"{name}: must be an integer ≥ 1, got {limit!r}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a directory")
    runs_csv = out / "table1_runs.csv"
    if runs_csv.exists() and not resume:
        raise ConfigError(f"--out {out}: already holds table1_runs.csv; pass --resume to continue it, "
                          "or choose another directory")

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        base = _base()
        depth = len(base.blocks)
        variants = select_variants(table1_variants(depth, nlft_reset), families)
        limit_for = lambda task: near_limit if task == "near" else None  # noqa: E731
        cache_dir = Path(cache_dir) if cache_dir else feature_cache_dir()
        jobs = [Job(task, v, seed, epochs, limit_for(task), test_limit, str(cache_dir), batch_size)
                for task in tasks for v in variants for seed in seeds]
        settings = {"epochs": epochs, "near_limit": near_limit, "test_limit": test_limit, "batch_size": batch_size,
                    "threads": threads, "base": tensor_hash(base.state_dict())}
        settings_path = out / "table1_settings.json"
        if resume and settings_path.exists():

            stored = json.loads(settings_path.read_text())
            differs = sorted(k for k in settings if stored.get(k) != settings[k])
            if differs:
                raise ConfigError(f"--resume: the runs in {out} were made with other settings "
                                  f"({', '.join(f'{k}={stored.get(k)!r}' for k in differs)}); use the same ones "
                                  "or another --out")
        done_rows = _read_rows(runs_csv) if resume else []
        done = {(r["task"], r["variant"], int(r["seed"])) for r in done_rows}
        todo = sorted((j for j in jobs if j.key not in done), key=lambda j: -j.cost())
        info = _machine_info()
        info.update({"command": command, "epochs": epochs, "seeds": seeds, "tasks": tasks, "near_limit": near_limit,
                     "test_limit": test_limit, "workers": workers, "threads_per_worker": threads,
                     "batch_size": batch_size, "depth": depth, "k": max(1, depth // 2), "runs": len(jobs),
                     "runs_resumed": len(jobs) - len(todo), "started_at": datetime.now(timezone.utc).isoformat()})
        wall0, cpu_children0 = time.perf_counter(), _children_cpu()
        t0 = time.perf_counter()
        starts = {depth - v.blocks for v in variants}
        info["feature_seconds"] = precompute_features(tasks, starts, limit_for, test_limit, cache_dir, progress)
        info["feature_total_seconds"] = time.perf_counter() - t0
        rows = [r for r in done_rows if (r["task"], r["variant"], int(r["seed"])) in {j.key for j in jobs}]
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(settings_path, settings)
        for row in _execute(todo, workers, threads, progress):
            _append_row(runs_csv, row)
            rows.append(row)
        info["wall_seconds"] = time.perf_counter() - wall0
        info["worker_cpu_seconds"] = _children_cpu() - cpu_children0
        info["load_after"] = _loadavg()
        info["finished_at"] = datetime.now(timezone.utc).isoformat()
    finally:
        torch.set_num_threads(previous_threads)
    rows = [_typed(r) for r in rows]
    summary = summarize(rows, variants, tasks)
    write_outputs(out, rows, summary, variants, tasks, info)
    return Table1(rows, summary, info["wall_seconds"], info)




def _execute(jobs: list[Job], workers: int, threads: int, progress: bool):
    bar = Progress(len(jobs), "Table 1 runs", unit="run", enabled=progress)
    try:
        if workers == 1 or len(jobs) <= 1:
            _init_worker(threads)
            for job in jobs:
                row = run_job(job)
                bar.update(1)
                bar.report(run=f"{row['task']} {row['variant']} s{row['seed']}", test_accuracy=row["test_accuracy"])
                yield row
            return
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context, initializer=_init_worker,
                                 initargs=(threads,)) as pool:
            pending = {pool.submit(run_job, job) for job in jobs}
            try:
                while pending:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in finished:
                        row = future.result()
                        bar.update(1)
                        bar.report(run=f"{row['task']} {row['variant']} s{row['seed']}",
                                   test_accuracy=row["test_accuracy"])
                        yield row
            except BaseException:
                for future in pending:
                    future.cancel()
                raise
    finally:
        bar.close()


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime + own.ru_utime + own.ru_stime


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _machine_info() -> dict[str, Any]:
    return {"cpu_count": os.cpu_count(), "load_before": _loadavg(), "platform": platform.platform(),
            "python": platform.python_version(), "torch": torch.__version__}


def _read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _append_row(path: Path, row: dict[str, Any]) -> None:
    """Append one finished run (flushed and fsynced: a kill loses at most the runs in flight)."""
    new = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=RUN_COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow({k: row.get(k) for k in RUN_COLUMNS})
        handle.flush()
        os.fsync(handle.fileno())


def _typed(row: dict[str, Any]) -> dict[str, Any]:
    def boolean(v):
        return v if isinstance(v, bool) else str(v) == "True"

    out = dict(row)
    for k in ("tangent", "reset", "linearize_cls"):
        out[k] = boolean(row[k])
    for k in ("blocks", "epochs", "batch_size", "seed", "num_train", "num_test"):
        out[k] = int(row[k])
    for k in ("lr", "test_accuracy", "train_accuracy", "train_seconds", "cpu_seconds", "wall_seconds"):
        out[k] = float(row[k]) if row.get(k) not in (None, "") else None
    return out


def summarize(rows: list[dict[str, Any]], variants: list[Variant], tasks: list[str]) -> list[dict[str, Any]]:
    """Mean and sample std (ddof=1) of test accuracy, in points, per (task, variant)."""


    summary = []
    for task in tasks:
        for v in variants:
            accs = [100 * r["test_accuracy"] for r in rows if r["task"] == task and r["variant"] == v.label]
            secs = [r["train_seconds"] for r in rows if r["task"] == task and r["variant"] == v.label]
            cpu = [r["cpu_seconds"] for r in rows if r["task"] == task and r["variant"] == v.label]
            if not accs:
                continue
            summary.append({
                "task": task, "data": TASKS[task][0], "family": v.family, "method": v.method, "variant": v.label,
                "reset": v.reset, "linearize_cls": v.linearize_cls,
                "lr": v.lr if v.lr is not None else default_lr(v.tangent, v.regime),
                "mean": float(np.mean(accs)), "std": float(np.std(accs, ddof=1)) if len(accs) > 1 else float("nan"),
                "n": len(accs), "min": float(np.min(accs)), "max": float(np.max(accs)),
                "train_seconds_mean": float(np.mean(secs)), "cpu_seconds_mean": float(np.mean(cpu)),
            })
    return summary


def _fmt(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "–"
    std = "" if entry["std"] != entry["std"] else f" ± {entry['std']:.1f}"
    return f"{entry['mean']:.1f}{std}"


def best_per_family(summary: list[dict[str, Any]], task: str) -> dict[str, dict[str, Any]]:
    best: dict[str, dict[str, Any]] = {}
    for entry in summary:
        if entry["task"] == task and (entry["family"] not in best or entry["mean"] > best[entry["family"]]["mean"]):
            best[entry["family"]] = entry
    return best


def find(summary: list[dict[str, Any]], task: str, variant: str) -> dict[str, Any] | None:
    return next((e for e in summary if e["task"] == task and e["variant"] == variant), None)


def acceptance(summary: list[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """The issue's checks on the near task: TAFT-1 within 3 points of NLFT-1; both above FC."""
    checks = []
    fc = find(summary, "near", "FC")
    best = best_per_family(summary, "near")
    pairs = [("TAFT-1 PT=F CLS=F", "NLFT-1 PT=T CLS=F", "the TAFT recipe (reset, lr 1e-2, RSL) vs plain NLFT-1")]
    if "TAFT-1" in best and "NLFT-1" in best:
        pairs.append((best["TAFT-1"]["variant"], best["NLFT-1"]["variant"], "best TAFT-1 vs best NLFT-1"))
    for taft_label, nlft_label, what in pairs:
        taft, nlft = find(summary, "near", taft_label), find(summary, "near", nlft_label)
        if taft is None or nlft is None:
            continue
        gap = nlft["mean"] - taft["mean"]
        checks.append({"check": f"near, {what}: {taft_label} within 3 points of {nlft_label}",
                       "value": f"{taft['mean']:.1f} vs {nlft['mean']:.1f} (gap {gap:+.1f})", "pass": gap <= 3.0})
        if fc is not None:
            checks.append({"check": f"near, {what}: both above FC",
                           "value": f"{taft['mean']:.1f}, {nlft['mean']:.1f} vs FC {fc['mean']:.1f}",
                           "pass": taft["mean"] > fc["mean"] and nlft["mean"] > fc["mean"]})
    return checks


def write_outputs(out: Path, rows: list[dict[str, Any]], summary: list[dict[str, Any]], variants: list[Variant],
                  tasks: list[str], info: dict[str, Any]) -> None:

    out.mkdir(parents=True, exist_ok=True)
    # table1.csv: one row per variant, one mean/std/n column group per task
    header = ["method", "variant", "tangent", "blocks", "reset_PT_F", "linearize_cls", "lr"]
    for task in tasks:
        header += [f"{task}_mean", f"{task}_std", f"{task}_n"]
    lines = [",".join(header)]
    for v in variants:
        entries = [find(summary, task, v.label) for task in tasks]
        if not any(entries):
            continue
        lr = next(e["lr"] for e in entries if e)
        cells = [v.method, v.label, str(v.tangent), str(v.blocks), str(v.reset), str(v.linearize_cls), f"{lr:g}"]
        for e in entries:
            cells += ["", "", "0"] if e is None else [f"{e['mean']:.2f}", "" if e["std"] != e["std"] else f"{e['std']:.2f}",
                                                       str(e["n"])]
        lines.append(",".join(cells))
    atomic_write_text(out / "table1.csv", "\n".join(lines) + "\n")
    atomic_write_json(out / "table1.json", {"summary": summary, "info": info,
                                            "acceptance": acceptance(summary, info.get("k", 2))})
    atomic_write_text(out / "table1.md", render_markdown(summary, variants, tasks, info))


def render_markdown(summary: list[dict[str, Any]], variants: list[Variant], tasks: list[str],
                    info: dict[str, Any]) -> str:
    k = info.get("k", 2)
    minutes = info.get("wall_seconds", 0.0) / 60
    lines = ["# Table 1 on the embedded default: TAFT vs non-linear fine-tuning", ""]
    if info.get("command"):
        lines += ["Command:", "", "```", info["command"], "```", ""]
    lines += [
        f"Base model: the embedded default ViT (depth {info.get('depth')}, pretrained on Fashion-MNIST 0–4); "
        f"k = {k}. Test accuracy (%) on "
        + (f"the first {info['test_limit']} test samples" if info.get("test_limit") else "the full test sets")
        + (f" (near: first {info['near_limit']} training images)" if info.get("near_limit") else "")
        + ", mean ± sample std over seeds "
        f"{', '.join(map(str, info.get('seeds', [])))} ({len(info.get('seeds', []))} seeds); "
        f"{info.get('epochs')} epochs, batch {info.get('batch_size')}, Adam, lr ÷10 at 50% and 83% of the epochs.",
        "TAFT: rescaled square loss (κ = 15), lr 1e-2, wd·‖Δw‖² with wd = 1e-4. "
        f"NLFT: cross-entropy, lr 1e-3, AdamW wd 1e-4. FC: cross-entropy, lr {FC_LR:g} (at 1e-3 the head alone "
        "is far from converged in a short schedule). PT=F: the fine-tuned blocks re-initialized (PyTorch default "
        "init) before training/linearizing; CLS=T: a fresh CLS token, trained. NLFT with PT=F is not among the "
        "paper's NLFT settings; it is the same starting point as TAFT PT=F.",
        "",
        "## Paper layout (best PT/CLS setting per method, chosen on the test mean as the paper did)",
        "",
    ]
    fams = [f for f in METHOD_ORDER]
    names = {"NLFT-k": f"NLFT-{k}", "TAFT-k": f"TAFT-{k}"}
    lines.append("| task | " + " | ".join(names.get(f, f) for f in fams) + " |")
    lines.append("|---|" + "---|" * len(fams))
    for task in tasks:
        best = best_per_family(summary, task)
        cells = []
        for f in fams:
            e = best.get(f)
            cells.append("–" if e is None else f"{_fmt(e)}" + ("" if f == "FC" else f" <sub>{e['variant'].split(' ', 1)[1]}</sub>"))
        lines.append(f"| {TASKS[task][2]} | " + " | ".join(cells) + " |")
    lines += ["", "## Every setting", "", "| method | PT | CLS | " + " | ".join(TASKS[t][2] for t in tasks) + " | CPU s/run (near) |",
              "|---|---|---|" + "---|" * len(tasks) + "---|"]
    for v in variants:
        entries = [find(summary, t, v.label) for t in tasks]
        if not any(entries):
            continue
        pt = "–" if v.regime == "fc" else ("F" if v.reset else "T")
        cls = "–" if v.regime == "fc" else ("T" if v.linearize_cls else "F")
        near = find(summary, "near", v.label)
        secs = f"{near['cpu_seconds_mean']:.0f}" if near else "–"
        lines.append(f"| {v.method} | {pt} | {cls} | " + " | ".join(_fmt(e) for e in entries) + f" | {secs} |")
    checks = acceptance(summary, k)
    if checks:
        lines += ["", "## Acceptance (near task)", "", "| check | measured | |", "|---|---|---|"]
        for c in checks:
            lines.append(f"| {c['check']} | {c['value']} | {'pass' if c['pass'] else 'FAIL'} |")
    load_before, load_after = info.get("load_before"), info.get("load_after")
    lines += [
        "", "## Time and machine", "",
        f"- wall time: {info.get('wall_seconds', 0):.0f} s ({minutes:.1f} min) for {info.get('runs')} runs"
        + (f" ({info.get('runs_resumed')} taken from an earlier, interrupted invocation)" if info.get("runs_resumed") else ""),
        f"- frozen-prefix features: {info.get('feature_total_seconds', 0):.1f} s, computed once per data set, split "
        "and start block (feature cache)",
        f"- CPU time of this process and its workers: {info.get('worker_cpu_seconds', 0):.0f} s, i.e. about "
        f"{info.get('worker_cpu_seconds', 0) / max(1, info.get('workers', 1)) / 60:.0f} min of wall time on "
        f"{info.get('workers')} otherwise idle cores"
        + (" (the wall time above is inflated by other jobs' load)"
           if max((info.get("load_before") or [0])[0], (info.get("load_after") or [0])[0]) > 1.5 * (info.get("cpu_count") or 1)
           else ""),
        f"- {info.get('workers')} worker process(es) × {info.get('threads_per_worker')} torch thread(s), "
        f"{info.get('cpu_count')} CPU cores; load average (1/5/15 min) before {load_before}, after {load_after}",
        f"- {info.get('platform')}, Python {info.get('python')}, torch {info.get('torch')}",
        f"- started {info.get('started_at')}, finished {info.get('finished_at')}",
        "", "Per-run rows (seed, accuracy, seconds) are in `table1_runs.csv`.", "",
    ]
    return "\n".join(lines)


__all__ = ["TASKS", "Variant", "Job", "Table1", "table1_variants", "run_table1", "summarize", "acceptance",
           "render_markdown"]
