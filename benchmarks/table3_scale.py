"""Table 3 at the scale teams train: which regime, tangent (Ours) or not (Reg), under DP — with ablations.

One process, one torch thread, resumable: every finished run is kept in ``--store`` (default
``~/.cache/privtangent/table3_scale_runs``) and a rerun skips it. Parts run in this order
(``--parts`` picks some):

============  =======  ============  ======  =======  =====  ==============================================
part          base     data          N       B, T     ε      why
============  =======  ============  ======  =======  =====  ==============================================
near          default  fashion-near  30,000  512,100  1,3,8  the main table (near task, all of it)
far           default  digits         1,077   64,100  1,3,8  the main table (far task)
near-n5000    default  fashion-near   5,000  512,100  3      Ours − Reg against N
near-n500     default  fashion-near     500  512,100  3      Ours − Reg against N (q = 1: full batch)
ceiling       default  fashion-near  30,000  512,100  ∞      Full, σ = 0 (clipped), near's (lr, C): capacity
reset         default  fashion-near  30,000  512,100  3      Full with the block re-initialized (PT=F)
near-wide     wide     fashion-near   5,000  128,100  1,3,8  the wide base (N cut to 5,000 for CPU: 2.6 epochs)
near-b128     default  fashion-near   5,000  128,100  1,3,8  the default base at the wide base's recipe (d alone)
far-wide      wide     digits         1,077   64,100  1,3,8  the wide base on the far task (same recipe as far)
sgd           default  fashion-near  30,000  512,100  3      Full with SGD instead of Adam (optimizer)
lr-eps        default  fashion-near  30,000  512,100  1, 8   the Full search repeated at ε = 1 and 8
============  =======  ============  ======  =======  =====  ==============================================

Every part: seeds 0, 1, 2, δ = min(1e-5, 1/(10N)), Poisson DP-SGD, (lr, C) per
(regime, kind) chosen on public data (``privtangent.experiments.regimes.tuning``: lr ∈ {0.003,
0.01, 0.03, 0.1, 0.3} × C ∈ {1, 10} at ε = 3, ten runs per cell; SGD: lr ∈ {0.03, 0.1, 0.3, 1, 3}).
(A first pass with lr up to 0.1 chose 0.1, the edge of the grid, for four of the eight cells,
all of them tangent: the grid was widened so that no cell's optimum lies outside it.)
Each part writes ``benchmarks/results/table3_scale/<part>/`` (the ``compare-regimes`` outputs);
``assemble`` writes ``benchmarks/results/table3_scale.md`` from them and from the hand-written
reading in ``benchmarks/results/table3_scale_reading.md``.

    python benchmarks/table3_scale.py run            # everything (hours of CPU; resumable)
    python benchmarks/table3_scale.py run --parts near far
    python benchmarks/table3_scale.py assemble
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"
OUT = RESULTS / "table3_scale"
STORE = Path(os.environ.get("PRIVTANGENT_CACHE", Path.home() / ".cache" / "privtangent")) / "table3_scale_runs"


@dataclass(frozen=True)
class Part:
    name: str
    base: str
    data: str
    size: int | None  # private training images (None: all)
    batch_size: int
    why: str
    regimes: tuple[str, ...] = ("full", "bitfit", "layernorm", "fc")
    optimizer: str = "adam"
    lrs: tuple[float, ...] = (3e-3, 1e-2, 3e-2, 1e-1, 3e-1)
    tune_epsilons: tuple[float, ...] = (3.0,)  # > 1 value: only the search, repeated at each ε (no DP table)
    epsilons: tuple[float, ...] = (1.0, 3.0, 8.0)
    reset: bool = False  # PT=F: the fine-tuned block re-initialized first (both kinds)
    nonprivate: bool = False  # no noise (σ = 0, clipping kept), with the (lr, C) chosen by part "near"


PARTS = [
    Part("near", "default", "fashion-near", None, 512, "main table, near task"),
    Part("far", "default", "digits", None, 64, "main table, far task"),
    Part("near-n5000", "default", "fashion-near", 5000, 512, "Ours − Reg vs N", epsilons=(3.0,)),
    Part("near-n500", "default", "fashion-near", 500, 512, "Ours − Reg vs N", epsilons=(3.0,)),
    Part("ceiling", "default", "fashion-near", None, 512, "Full without noise: the model classes' ceiling",
         regimes=("full",), epsilons=(), nonprivate=True),
    Part("reset", "default", "fashion-near", None, 512, "Full with the block re-initialized (PT=F)",
         regimes=("full",), epsilons=(3.0,), reset=True),
    Part("near-wide", "wide", "fashion-near", 5000, 128, "the wide base (d = 1.8 M in Full), near task"),
    Part("near-b128", "default", "fashion-near", 5000, 128, "the default base at the wide base's recipe"),
    Part("far-wide", "wide", "digits", None, 64, "the wide base, far task"),
    Part("sgd", "default", "fashion-near", None, 512, "optimizer: SGD instead of Adam", regimes=("full",),
         optimizer="sgd", lrs=(0.03, 0.1, 0.3, 1.0, 3.0), epsilons=(3.0,)),
    Part("lr-eps", "default", "fashion-near", None, 512, "is the ε = 3 choice right at ε = 1 and 8?",
         regimes=("full",), tune_epsilons=(1.0, 8.0)),
]
STEPS, SEEDS, CLIPS = 100, (0, 1, 2), (1.0, 10.0)


@dataclass(frozen=True)
class Scale:
    """How big each part is: the real benchmark, or a smoke test of the same code paths."""

    steps: int = STEPS
    seeds: tuple[int, ...] = SEEDS
    size_cap: int | None = None  # at most this many private training images
    test_limit: int | None = None
    lrs_cap: int | None = None  # only the first lrs of each search


SMOKE = Scale(steps=2, seeds=(0, 1), size_cap=64, test_limit=64, lrs_cap=2)


def run_part(part: Part, store_dir: Path, progress: bool, out_root: Path = OUT, scale: Scale = Scale()) -> dict:
    from privtangent.experiments.regimes import RegimeGrid, RunStore, TuningGrid, run_comparison, split_task, tune
    from privtangent.experiments.regimes.report import tuning_table, write_outputs
    from privtangent.experiments.regimes.runner import base_identity
    from privtangent.features import FeatureCache
    from privtangent.models.pretrain import pretrained_base

    base, info = pretrained_base(progress=progress, base=part.base)
    size = part.size if scale.size_cap is None else min(part.size or scale.size_cap, scale.size_cap)
    lrs = part.lrs[: scale.lrs_cap] if scale.lrs_cap else part.lrs
    grid = RegimeGrid(regimes=part.regimes, delta=None, data=(part.data,), data_limit=size,
                      test_limit=scale.test_limit, batch_size=part.batch_size, steps=scale.steps,
                      optimizer=part.optimizer, seeds=scale.seeds, noise_seed=0, reset=part.reset,
                      epsilons=part.epsilons or (3.0,))
    store, cache = RunStore(store_dir), FeatureCache()
    out = out_root / part.name
    cpu, wall = time.process_time(), time.perf_counter()
    if part.nonprivate:
        summary = run_ceiling(part, grid, base, store, cache, out_root, out, scale)
    elif len(part.tune_epsilons) > 1:  # the search alone, at several ε
        split = split_task(part.data, train_limit=size, test_limit=scale.test_limit)
        lines = [f"# {part.name}: {part.why}", ""]
        for eps in part.tune_epsilons:
            result = tune(base, split, grid, TuningGrid(lrs=lrs, clips=CLIPS, epsilon=eps), cache=cache,
                          store=store, base_id=base_identity(base), progress=progress)
            lines += [f"## Search at ε = {eps:g}", "", tuning_table(result), ""]
        out.mkdir(parents=True, exist_ok=True)
        (out / "table3.md").write_text("\n".join(lines))
        summary = {"cpu_seconds": time.process_time() - cpu}
    else:
        tuning = TuningGrid(lrs=lrs, clips=CLIPS, epsilon=part.tune_epsilons[0])
        results, comparisons = run_comparison(grid, tuning=tuning, base=base, base_name=part.base, store=store,
                                              cache=cache, progress=progress, manifest_dir=out / "table3_manifests")
        command = "python benchmarks/table3_scale.py run --parts " + part.name
        write_outputs(out, results, comparisons, command=command)
        summary = {"cpu_seconds": time.process_time() - cpu, "run_cpu_seconds": results.info["run_cpu_seconds"],
                   "tuning_cpu_seconds": results.info["tuning_cpu_seconds"], "runs": results.info["runs"],
                   "runs_resumed": results.info["runs_resumed"]}
    summary.update({"part": dataclasses.asdict(part), "wall_seconds": time.perf_counter() - wall,
                    "base_accuracy": info.get("test_accuracy"), "base_sha256": info.get("sha256"),
                    "finished": time.strftime("%Y-%m-%d %H:%M:%S")})
    (out / "part.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def run_ceiling(part: Part, grid, base, store, cache, out_root: Path, out: Path, scale: Scale) -> dict:
    """Each (regime, kind) of ``part`` trained without noise (σ = 0; clipping, sampling, T, (lr, C) as
    part "near"): how much of a gap is the model class rather than DP. Not private (ε = ∞)."""
    from privtangent.experiments.regimes import paired_difference, split_task, t_interval
    from privtangent.experiments.regimes.runner import base_identity, run_one
    from privtangent.experiments.regimes.stats import verdict

    chosen = json.loads((out_root / "near" / "table3.json").read_text())["comparisons"][0]["tuning"]["chosen"]
    grid = dataclasses.replace(grid, tuned=tuple(tuple(c) for c in chosen))
    split = split_task(part.data, train_limit=grid.data_limit, test_limit=scale.test_limit)
    n, base_id, cpu = len(split.train), base_identity(base), 0.0
    lines = [f"# {part.name}: {part.why}", "",
             f"σ = 0 (no noise: NOT private), everything else as part `near`: {n:,} training images, Poisson q = "
             f"{grid.sample_rate_for(n):.4g}, T = {grid.steps_for(n)}, clipping kept, (lr, C) chosen there.", "",
             "| regime | Ours % (95 % CI) | Reg % (95 % CI) | Ours − Reg, points (95 % CI) | verdict |",
             "|---|---|---|---|---|"]
    for regime in grid.regimes:
        acc: dict[str, dict[int, float]] = {"Ours": {}, "Reg": {}}
        for kind in ("Ours", "Reg"):
            for seed in grid.seeds:
                config = grid.dp_config(kind == "Ours", regime, 3.0, seed, n=n).replace(
                    target_epsilon=None, noise_multiplier=0.0,
                    noise_seed=grid.cell_noise_seed(part.data, regime, float("inf"), seed))
                result = run_one(base, split.train, split.test, config, cache=cache, store=store, base_id=base_id)
                acc[kind][seed] = 100 * result["test_accuracy"]
                cpu += result["cpu_seconds"]
        diff = paired_difference(acc["Ours"], acc["Reg"])
        lines.append(f"| {regime} | {t_interval(list(acc['Ours'].values())).text()} | "
                     f"{t_interval(list(acc['Reg'].values())).text()} | {diff.text(signed=True)} | {verdict(diff)} |")
    out.mkdir(parents=True, exist_ok=True)
    (out / "table3.md").write_text("\n".join(lines) + "\n")
    return {"cpu_seconds": cpu, "run_cpu_seconds": cpu, "runs": len(grid.regimes) * 2 * len(grid.seeds)}


def run(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(1)
    chosen = [p for p in PARTS if not args.parts or p.name in args.parts]
    unknown = set(args.parts or ()) - {p.name for p in PARTS}
    if unknown:
        raise SystemExit(f"unknown parts {sorted(unknown)}; choose from {[p.name for p in PARTS]}")
    scale = SMOKE if args.smoke else Scale()
    for part in chosen:
        print(f"== {part.name}: {part.why}", flush=True)
        summary = run_part(part, Path(args.store), progress=not args.quiet, out_root=Path(args.out), scale=scale)
        print(f"== {part.name} done: {summary['cpu_seconds'] / 60:.1f} CPU min, {summary['wall_seconds'] / 60:.1f} "
              f"wall min", flush=True)
        assemble(args)


def shared_recipe_ablation(tuning_csv: Path) -> str:
    """Ours − Reg on public validation data when both kinds share one (lr, C), against each at its own best.

    From the search's own runs (one seed each, 1,000 validation images: about ±1.3 points of
    noise per accuracy), so it costs nothing extra; it shows how much of a gap a shared
    recipe can create or hide.
    """
    import pandas as pd

    trials = pd.read_csv(tuning_csv)
    lines = ["| regime | " + " | ".join(f"lr {lr:g}, C {c:g}" for lr, c in
                                         trials[["lr", "clip"]].drop_duplicates().itertuples(index=False))
             + " | each at its best |", "|---|" + "---|" * (len(trials[["lr", "clip"]].drop_duplicates()) + 1)]
    for regime, own in trials.groupby("regime", sort=False):
        pivot = own.pivot_table(index=["lr", "clip"], columns="kind", values="val_accuracy", sort=False)
        diffs = [f"{row.Ours - row.Reg:+.1f}" for row in pivot.itertuples()]
        best = own.groupby("kind")["val_accuracy"].max()
        lines.append(f"| {regime} | " + " | ".join(diffs) + f" | {best['Ours'] - best['Reg']:+.1f} |")
    return "\n".join(lines)


def assemble(args: argparse.Namespace) -> None:
    """benchmarks/results/table3_scale.md from the parts' outputs and the hand-written reading."""
    root = Path(args.out)
    lines = ["# Table 3 at scale: which regime, tangent (Ours) or not (Reg), to fine-tune under DP", ""]
    reading = RESULTS / "table3_scale_reading.md"
    if reading.exists():
        lines += [reading.read_text().strip(), ""]
    total = 0.0
    rows = ["| part | base | data | N | B | why | CPU min (runs + tuning) | runs |", "|---|---|---|---|---|---|---|---|"]
    for part in PARTS:
        meta = root / part.name / "part.json"
        if not meta.exists():
            rows.append(f"| {part.name} | {part.base} | {part.data} | {part.size or 'all'} | {part.batch_size} | "
                        f"{part.why} | not run | — |")
            continue
        m = json.loads(meta.read_text())
        cpu = m.get("run_cpu_seconds", m["cpu_seconds"]) + m.get("tuning_cpu_seconds", 0.0)
        total += cpu
        rows.append(f"| {part.name} | {part.base} | {part.data} | {part.size or 'all'} | {part.batch_size} | "
                    f"{part.why} | {cpu / 60:.1f} | {m.get('runs', '—')} |")
    lines += ["## Parts and their cost", "", *rows, "",
              f"Total CPU of all runs (one torch thread; runs resumed from the store count with the CPU time they "
              f"took when they ran): {total / 3600:.2f} h. Machine: {platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} cores shared with other jobs.", "",
              "Command: `python benchmarks/table3_scale.py run` (then `assemble`).", ""]
    tuning_csv = root / "near" / "table3_tuning.csv"
    if tuning_csv.exists():
        lines += ["## Ablation: one shared (lr, C) for both kinds (near task, default base, from the search)", "",
                  "Ours − Reg in validation accuracy points on the public data, at each point of the search, and with "
                  "each kind at its own best point (one seed per point; ±1.3 points of noise per accuracy).", "",
                  shared_recipe_ablation(tuning_csv), ""]
    for part in PARTS:
        md = root / part.name / "table3.md"
        if md.exists():
            text = md.read_text().split("\n", 1)[1] if md.read_text().startswith("# ") else md.read_text()
            lines += [f"# Part `{part.name}` — {part.why}", "", text.strip(), ""]
    target = RESULTS / "table3_scale.md" if root == OUT else root / "table3_scale.md"
    target.write_text("\n".join(lines))
    print(f"wrote {target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="step", required=True)
    r = sub.add_parser("run", help="run the parts (resumable)")
    r.add_argument("--parts", nargs="+", help="part names (default: all, in order)")
    r.add_argument("--store", default=str(STORE), help=f"finished runs (default {STORE})")
    r.add_argument("--out", default=str(OUT), help=f"where the parts' outputs go (default {OUT})")
    r.add_argument("--smoke", action="store_true", help="a seconds-long run of the same code paths (tiny sizes)")
    r.add_argument("--quiet", action="store_true")
    r.set_defaults(func=run)
    a = sub.add_parser("assemble", help="write benchmarks/results/table3_scale.md")
    a.add_argument("--out", default=str(OUT), help=f"where the parts' outputs are (default {OUT})")
    a.set_defaults(func=assemble)
    args = parser.parse_args()
    print("python " + " ".join(shlex.quote(x) for x in sys.argv), flush=True)
    args.func(args)


if __name__ == "__main__":
    main()
