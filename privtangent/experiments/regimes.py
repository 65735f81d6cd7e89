"""The paper's Table 3: DP fine-tuning in four regimes, tangent ("Ours") vs non-linear ("Reg").

For each data set, regime (Full = the last block, BitFit = its biases, LayerNorm = its affine
parameters, FC = the head; the head is trained in every regime), model kind and target ε:
calibrate σ for (ε, δ, q, T), train with DP (``privtangent.dp.training.fit_dp``: full-batch
DP-GD, 50 steps, no LR decay, cross-entropy, tangent models predict with J·Δw alone), and
evaluate on the test split. Over several seeds; mean ± std. The DP noise is drawn from OS
entropy in every cell (never from the seed), so seeds differ in model init *and* noise.

Outputs (``write_outputs``): ``table3_runs.csv`` (one row per run), ``table3.csv``
(mean/std/n per cell), ``table3.md`` (shaped like the paper's Table 3, plus the shape checks
"Ours ≥ Reg" and "accuracy rises with ε"), ``table3.png`` (accuracy vs ε per regime, Ours
vs Reg) and ``table3_manifests/*.json`` (written by the CLI) (the privacy manifest of every run).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from privtangent.errors import ConfigError
from privtangent.tangent.regimes import REGIMES

KINDS = ("Ours", "Reg")  # tangent, non-linear
REGIME_LABELS = {"full": "Full", "bitfit": "BitFit", "layernorm": "LayerNorm", "fc": "FC"}
DEFAULT_DATA = ("fashion-near", "digits")


@dataclass(frozen=True)
class RegimeGrid:
    """What ``compare-regimes`` runs. Defaults: the paper's DP setting on the embedded default."""

    regimes: tuple[str, ...] = REGIMES
    epsilons: tuple[float, ...] = (1.0, 3.0, 8.0)
    delta: float = 1e-5
    data: tuple[str, ...] = DEFAULT_DATA
    data_limit: int | None = None  # training samples per data set (first N)
    test_limit: int | None = None
    epochs: float = 50  # = steps for full batch
    sample_rate: float = 1.0  # 1 = full-batch DP-GD (the paper)
    clip: float = 1.0  # C
    lr: float = 1e-2
    lr_ours: float | None = None  # per-kind overrides of lr (None: lr)
    lr_reg: float | None = None
    optimizer: str = "adam"
    seeds: tuple[int, ...] = (0, 1, 2)
    jvp_only: bool = True  # tangent models predict with J·Δw alone (the paper's DP setting)
    reset: bool = False  # PT=F
    accountant: str = "prv"
    noise_seed: int | None = None  # NOT for release: seeds every cell's noise (derived per cell)
    kinds: tuple[str, ...] = KINDS

    def __post_init__(self) -> None:
        bad = [r for r in self.regimes if r not in REGIMES]
        if bad or not self.regimes:
            raise ConfigError(f"regimes: unknown {bad} (choose from {', '.join(REGIMES)})")
        bad_kinds = [k for k in self.kinds if k not in KINDS]
        if bad_kinds or not self.kinds:
            raise ConfigError(f"kinds: unknown {bad_kinds} (choose from {', '.join(KINDS)})")
        if not self.epsilons or any(not (isinstance(e, (int, float)) and 0 < e < math.inf) for e in self.epsilons):
            raise ConfigError(f"epsilons must be positive finite numbers, got {list(self.epsilons)}")
        if not self.seeds:
            raise ConfigError("seeds: give at least one seed")
        if not self.data:
            raise ConfigError("data: give at least one data set")
        if self.data_limit is not None and self.data_limit < 1:
            raise ConfigError(f"data_limit must be ≥ 1, got {self.data_limit}")
        if self.test_limit is not None and self.test_limit < 1:
            raise ConfigError(f"test_limit must be ≥ 1, got {self.test_limit}")
        for kind in KINDS:
            self.dp_config(kind == "Ours", self.regimes[0], self.epsilons[0], self.seeds[0])  # validates the rest

    def lr_for(self, kind: str) -> float:
        override = self.lr_ours if kind == "Ours" else self.lr_reg
        return self.lr if override is None else override

    def dp_config(self, tangent: bool, regime: str, epsilon: float, seed: int, noise_multiplier: float | None = None,
                  noise_seed: int | None = None):
        from privtangent.dp.training import DPConfig

        return DPConfig(tangent=tangent, regime=regime, reset=self.reset,
                        output=("jvp" if self.jvp_only else "full") if tangent else "full", loss="ce",
                        optimizer=self.optimizer, lr=self.lr_for("Ours" if tangent else "Reg"), epochs=self.epochs,
                        seed=seed,
                        sample_rate=self.sample_rate, max_grad_norm=self.clip, target_epsilon=float(epsilon),
                        noise_multiplier=noise_multiplier, delta=self.delta, accountant=self.accountant,
                        noise_seed=noise_seed)

    def cells(self) -> list[tuple[str, str, str, float, int]]:
        """(data, regime, kind, ε, seed) in run order."""
        return [(d, r, k, float(e), s) for d in self.data for s in self.seeds for e in self.epsilons
                for r in self.regimes for k in self.kinds]


@dataclass
class RegimeResults:
    grid: RegimeGrid
    rows: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    info: dict[str, Any] = field(default_factory=dict)


def _cell_noise_seed(grid: RegimeGrid, index: int) -> int | None:
    return None if grid.noise_seed is None else grid.noise_seed * 1_000_003 + index


def run_grid(grid: RegimeGrid, *, base=None, progress: bool = True, manifest_dir: str | Path | None = None,
             cache=None) -> RegimeResults:
    """Run every cell of ``grid``; returns the per-run rows and the mean/std summary."""
    from tqdm.auto import tqdm

    from privtangent.data import load_task
    from privtangent.dp.training import fit_dp, resolve_noise
    from privtangent.features import FeatureCache
    from privtangent.models import pretrained_base

    if base is None:
        base, _ = pretrained_base(progress=progress)
    cache = cache or FeatureCache()
    manifest_dir = Path(manifest_dir) if manifest_dir else None
    if manifest_dir:
        manifest_dir.mkdir(parents=True, exist_ok=True)
    splits = {d: (load_task(d, "train", limit=grid.data_limit), load_task(d, "test", limit=grid.test_limit))
              for d in grid.data}
    sigmas: dict[tuple[str, float], float] = {}
    rows: list[dict[str, Any]] = []
    cells = grid.cells()
    start = time.perf_counter()
    cpu_start = time.process_time()
    with tqdm(total=len(cells), desc="compare-regimes", disable=not progress, unit="run") as bar:
        for index, (data, regime, kind, eps, seed) in enumerate(cells):
            train, test = splits[data]
            bar.set_postfix_str(f"{data} {REGIME_LABELS[regime]} {kind} ε={eps:g} seed={seed}")
            if (data, eps) not in sigmas:  # σ depends on (ε, δ, q, T) only: calibrate once
                probe = grid.dp_config(True, regime, eps, seed)
                sigmas[(data, eps)], _ = resolve_noise(probe, len(train))
            config = grid.dp_config(kind == "Ours", regime, eps, seed, noise_multiplier=sigmas[(data, eps)],
                                    noise_seed=_cell_noise_seed(grid, index))
            result = fit_dp(base, train, config, test=test, cache=cache, progress=False)
            manifest = {**result.manifest, "noise_calibrated": True, "data": train.name, "test_data": test.name,
                        "seed": seed, "lr": config.lr, "optimizer": grid.optimizer}
            name = f"{data}_{regime}_{kind.lower()}_eps{eps:g}_seed{seed}.json"
            if manifest_dir:
                from privtangent.io.atomic import atomic_write_json

                atomic_write_json(manifest_dir / name, manifest)
            rows.append({
                "data": data, "regime": regime, "kind": kind, "target_epsilon": eps, "seed": seed,
                "test_accuracy": result.metrics.get("test_accuracy"), "epsilon": manifest["epsilon"],
                "epsilon_rdp": manifest.get("epsilon_rdp"), "delta": grid.delta,
                "noise_multiplier": manifest["noise_multiplier"], "clip": grid.clip, "sample_rate": grid.sample_rate,
                "steps": manifest["steps"], "num_train": len(train), "num_test": len(test), "lr": config.lr,
                "output": config.resolved_output, "accountant": manifest["accountant"],
                "sampling": manifest["sampling"], "noise_seeded": manifest["noise_seeded"],
                "train_seconds": result.metrics["train_seconds"], "manifest": name if manifest_dir else None,
            })
            bar.update(1)
    info = {"wall_seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu_start,
            "runs": len(rows), "sigmas": {f"{d} eps={e:g}": s for (d, e), s in sigmas.items()}}
    return RegimeResults(grid, rows, summarize(rows), info)


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean, std (sample, n−1), min, max of test accuracy (in %) per (data, ε, regime, kind)."""
    groups: dict[tuple, list[float]] = {}
    for r in rows:
        key = (r["data"], float(r["target_epsilon"]), r["regime"], r["kind"])
        groups.setdefault(key, []).append(100.0 * float(r["test_accuracy"]))
    out = []
    for (data, eps, regime, kind), values in groups.items():
        n = len(values)
        mean = sum(values) / n
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
        out.append({"data": data, "target_epsilon": eps, "regime": regime, "kind": kind, "mean": mean, "std": std,
                    "min": min(values), "max": max(values), "n": n})
    return out


def _index(summary: list[dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
    return {(s["data"], s["target_epsilon"], s["regime"], s["kind"]): s for s in summary}


def shape_checks(summary: list[dict[str, Any]], grid: RegimeGrid) -> dict[str, Any]:
    """The expected shape: Ours ≥ Reg in each regime at each ε; accuracy rising with ε."""
    idx = _index(summary)
    ours_vs_reg, rising = [], []
    for d in grid.data:
        for r in grid.regimes:
            for e in grid.epsilons:
                o, g = idx.get((d, float(e), r, "Ours")), idx.get((d, float(e), r, "Reg"))
                if o and g:
                    diff = o["mean"] - g["mean"]
                    noise = math.sqrt(o["std"] ** 2 / o["n"] + g["std"] ** 2 / g["n"])
                    ours_vs_reg.append({"data": d, "regime": r, "epsilon": e, "ours": o["mean"], "reg": g["mean"],
                                        "diff": diff, "stderr": noise, "holds": diff >= 0})
            for k in grid.kinds:
                means = [idx[(d, float(e), r, k)]["mean"] for e in sorted(grid.epsilons) if (d, float(e), r, k) in idx]
                rising.append({"data": d, "regime": r, "kind": k, "means": means,
                               "holds": all(b >= a for a, b in zip(means, means[1:]))})
    return {"ours_ge_reg": ours_vs_reg, "rising_with_epsilon": rising,
            "ours_ge_reg_holds": sum(c["holds"] for c in ours_vs_reg), "ours_ge_reg_total": len(ours_vs_reg),
            "rising_holds": sum(c["holds"] for c in rising), "rising_total": len(rising)}


def markdown_table(summary: list[dict[str, Any]], grid: RegimeGrid) -> str:
    """The paper's Table 3 layout: rows data set × ε, columns regime × {Ours, Reg}; mean ± std (%).

    *italics*: the better kind in each regime; **bold**: the best cell of the row.
    """
    idx = _index(summary)
    head = ["Dataset", "Privacy"]
    for r in grid.regimes:
        head += [f"{REGIME_LABELS[r]} {k}" for k in grid.kinds]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for d in grid.data:
        for i, e in enumerate(sorted(grid.epsilons)):
            cells = {(r, k): idx.get((d, float(e), r, k)) for r in grid.regimes for k in grid.kinds}
            means = [c["mean"] for c in cells.values() if c]
            best = max(means) if means else None
            row = [d if i == 0 else "", f"ε = {e:g}"]
            for r in grid.regimes:
                pair = [cells[(r, k)]["mean"] for k in grid.kinds if cells[(r, k)]]
                for k in grid.kinds:
                    c = cells[(r, k)]
                    if c is None:
                        row.append("—")
                        continue
                    text = f"{c['mean']:.1f} ± {c['std']:.1f}"
                    if len(pair) > 1 and c["mean"] == max(pair) and min(pair) != max(pair):
                        text = f"*{text}*"
                    if best is not None and c["mean"] == best:
                        text = f"**{text}**"
                    row.append(text)
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def plot(summary: list[dict[str, Any]], grid: RegimeGrid, path: str | Path) -> None:
    """Accuracy vs ε, one panel per (data set, regime), Ours vs Reg with ±std bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    idx = _index(summary)
    rows, cols = len(grid.data), len(grid.regimes)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows), squeeze=False, sharex=True)
    eps = sorted(grid.epsilons)
    styles = {"Ours": dict(marker="o", color="tab:blue"), "Reg": dict(marker="s", color="tab:orange")}
    for i, d in enumerate(grid.data):
        for j, r in enumerate(grid.regimes):
            ax = axes[i][j]
            for k in grid.kinds:
                pts = [(e, idx[(d, float(e), r, k)]) for e in eps if (d, float(e), r, k) in idx]
                if pts:
                    ax.errorbar([e for e, _ in pts], [c["mean"] for _, c in pts], yerr=[c["std"] for _, c in pts],
                                capsize=3, label=f"{k} ({'tangent' if k == 'Ours' else 'non-linear'})", **styles[k])
            ax.set_xscale("log")
            ax.minorticks_off()
            ax.set_xticks(eps)
            ax.set_xticklabels([f"{e:g}" for e in eps])
            ax.set_title(f"{d}: {REGIME_LABELS[r]}", fontsize=9)
            ax.grid(alpha=0.3)
            if j == 0:
                ax.set_ylabel("test accuracy (%)")
            if i == rows - 1:
                ax.set_xlabel("ε")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"DP fine-tuning (δ={grid.delta:g}, C={grid.clip:g}, {grid.epochs:g} epochs, "
                 f"{'full batch' if grid.sample_rate == 1 else f'q={grid.sample_rate:g}'}), mean ± std over "
                 f"{len(grid.seeds)} seeds", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    import csv
    import io

    from privtangent.io.atomic import atomic_write_bytes

    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    atomic_write_bytes(path, buf.getvalue().encode())


def report_markdown(results: RegimeResults, command: str | None = None) -> str:
    grid, checks = results.grid, shape_checks(results.summary, results.grid)
    n_train = sorted({(r["data"], r["num_train"], r["num_test"]) for r in results.rows})
    sigmas = ", ".join(f"{k}: σ={v:.3f}" for k, v in results.info.get("sigmas", {}).items())
    lines = [
        "# Table 3 — DP fine-tuning, tangent (Ours) vs non-linear (Reg)",
        "",
        f"Test accuracy (%), mean ± std over seeds {list(grid.seeds)}; δ = {grid.delta:g}, clipping norm C = {grid.clip:g}, "
        f"{'full-batch DP-GD' if grid.sample_rate == 1 else f'Poisson-sampled DP-SGD (q = {grid.sample_rate:g})'}, "
        f"{grid.epochs:g} epochs (steps = {results.rows[0]['steps'] if results.rows else '?'}), {grid.optimizer}, "
        f"lr {grid.lr_for('Ours'):g} (Ours) / {grid.lr_for('Reg'):g} (Reg), "
        f"no LR decay, cross-entropy; tangent models predict with "
        f"{'the JVP output J·Δw only' if grid.jvp_only else 'f_w + J·Δw'}; PT={'F' if grid.reset else 'T'}. "
        f"Accountant: {grid.accountant} (for q = 1 the exact Gaussian-DP composition). {sigmas}.",
        "",
        "Data: " + "; ".join(f"{d}: {a} train / {b} test" for d, a, b in n_train) + ".",
        "The head is trained in every regime (a fresh head for the task's classes).",
        "*italics*: better of Ours/Reg in the regime; **bold**: best in the row. "
        "The DP noise of every run comes from OS entropy (independent of the seed)"
        + (" — except here: --noise-seed was given, NOT for release" if grid.noise_seed is not None else "") + ".",
        "Hyperparameters (C, lr) were not tuned on private data inside this run; any tuning done to choose them is "
        "not accounted for in ε.",
        "",
        markdown_table(results.summary, grid),
        "",
        "## Expected shape",
        "",
        f"- Ours ≥ Reg (means): {checks['ours_ge_reg_holds']} of {checks['ours_ge_reg_total']} (data, regime, ε) cells.",
    ]
    for c in checks["ours_ge_reg"]:
        if not c["holds"]:
            lines.append(f"  - not in {c['data']} {REGIME_LABELS[c['regime']]} ε={c['epsilon']:g}: "
                         f"Ours {c['ours']:.1f} vs Reg {c['reg']:.1f} (diff {c['diff']:+.1f}, stderr {c['stderr']:.1f})")
    lines.append(f"- Accuracy rising with ε: {checks['rising_holds']} of {checks['rising_total']} (data, regime, kind) series.")
    for c in checks["rising_with_epsilon"]:
        if not c["holds"]:
            lines.append(f"  - not in {c['data']} {REGIME_LABELS[c['regime']]} {c['kind']}: "
                         + " → ".join(f"{m:.1f}" for m in c["means"]))
    lines += ["", f"{results.info.get('runs', len(results.rows))} runs, "
              f"{results.info.get('wall_seconds', 0) / 60:.1f} min wall, {results.info.get('cpu_seconds', 0) / 60:.1f} min CPU "
              "(this process)."]
    if command:
        lines += ["", "Command:", "", "```", command, "```"]
    return "\n".join(lines) + "\n"


def write_outputs(results: RegimeResults, out: str | Path, command: str | None = None) -> dict[str, Path]:
    """table3_runs.csv, table3.csv, table3.md, table3.png, table3.json under ``out``."""
    from privtangent.io.atomic import atomic_write_bytes, atomic_write_json

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"runs": out / "table3_runs.csv", "csv": out / "table3.csv", "md": out / "table3.md",
             "png": out / "table3.png", "json": out / "table3.json"}
    _write_csv(paths["runs"], results.rows)
    _write_csv(paths["csv"], sorted(results.summary, key=lambda s: (s["data"], s["target_epsilon"], s["regime"], s["kind"])))
    atomic_write_bytes(paths["md"], report_markdown(results, command).encode())
    plot(results.summary, results.grid, paths["png"])
    atomic_write_json(paths["json"], {"grid": asdict(results.grid), "info": results.info, "command": command,
                                      "summary": results.summary, "shape": shape_checks(results.summary, results.grid)})
    return paths


def load_results(out: str | Path) -> dict[str, Any]:
    return json.loads((Path(out) / "table3.json").read_text())


__all__ = ["KINDS", "RegimeGrid", "RegimeResults", "markdown_table", "plot", "report_markdown", "run_grid",
           "shape_checks", "summarize", "write_outputs"]
