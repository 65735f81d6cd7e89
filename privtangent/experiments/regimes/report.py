"""The written outputs of ``compare-regimes``: Markdown, CSV and JSON.

``write_outputs(out, results, comparisons, command)`` writes under ``out``:

- ``table3.md``: per data set (and size), the answer (best (regime, kind) per ε with its
  interval, one sentence), the paper's Table 3 layout (mean ± std over seeds, each cell's
  (lr, C)), Ours − Reg with its paired interval and verdict per (regime, ε), the tuning
  search, the recipe, the CPU time and the command;
- ``table3_runs.csv`` (one row per run), ``table3.csv`` (one row per cell: mean, std,
  interval, lr, C), ``table3_differences.csv``, ``table3_tuning.csv``;
- ``table3.json``: every ``RegimeComparison`` (``to_dict``), the run info and the command;
- the plots of ``privtangent.experiments.regimes.plots``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from privtangent.experiments.regimes.analysis import index_summary, label, shape_checks
from privtangent.experiments.regimes.grid import KINDS, REGIME_LABELS, RegimeGrid
from privtangent.experiments.regimes.plots import plot_accuracy, plot_difference_vs_size
from privtangent.experiments.regimes.results import RegimeComparison, TuningResult
from privtangent.experiments.regimes.runner import RegimeResults
from privtangent.io.atomic import atomic_write_bytes, atomic_write_json


def markdown_table(summary: list[dict[str, Any]], grid: RegimeGrid) -> str:
    """The paper's Table 3 layout: rows data set × ε, columns regime × {Ours, Reg}; mean ± std (%).

    *italics*: the better kind in each regime; **bold**: the best cell of the row.
    """
    idx = index_summary(summary)
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
                pair = [c["mean"] for k in grid.kinds if (c := cells[(r, k)]) is not None]
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


def recipe_text(c: RegimeComparison) -> str:
    sampling = ("full-batch DP-GD (q = 1)" if c.sample_rate >= 1 else
                f"Poisson-subsampled DP-SGD (q = {c.sample_rate:.4g}, expected batch {c.expected_batch_size:,.0f})")
    sigmas = ", ".join(f"σ = {s:.4g} at ε = {e:g}" for e, s in c.noise_multipliers)
    epochs = c.steps * c.sample_rate
    return (f"{c.base} base; {c.num_train:,} private training images, {c.num_test:,} test images; {sampling}, "
            f"T = {c.steps} steps ({epochs:.3g} epochs), {c.optimizer}, no LR decay, cross-entropy; tangent models "
            f"predict with J·Δw alone. δ = {c.delta:.3g}; accountant {c.accountant}; {sigmas}. Seeds "
            f"{list(c.seeds)}; seed s of Ours and Reg share the head initialization, the Poisson batches and the "
            f"noise draws (the models are measurements, never released).")


def answer_table(c: RegimeComparison) -> str:
    lines = ["| ε | best (regime, kind) | test accuracy % (95 % CI) | runner-up | best − runner-up, points (95 % CI) |",
             "|---|---|---|---|---|"]
    for b in c.best:
        runner = label(*b.runner_up) if b.runner_up else "—"
        margin = b.margin.text(signed=True) if b.margin else "—"
        lines.append(f"| {b.epsilon:g} | {label(b.regime, b.kind)} | {b.accuracy.text()} | {runner} | {margin} |")
    return "\n".join(lines)


def cells_table(c: RegimeComparison) -> str:
    """Paper layout for one comparison: rows ε, columns regime × kind; mean ± std and (lr, C)."""
    regimes = list(dict.fromkeys(x.regime for x in c.cells))
    head = ["ε"] + [f"{REGIME_LABELS[r]} {k}" for r in regimes for k in KINDS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for eps in sorted({x.epsilon for x in c.cells}):
        best = max(x.accuracy.mean for x in c.cells if x.epsilon == eps)
        row = [f"ε = {eps:g}"]
        for r in regimes:
            pair = {k: c.cell(r, k, eps) for k in KINDS}
            top = max(p.accuracy.mean for p in pair.values())
            for k in KINDS:
                x = pair[k]
                text = f"{x.accuracy.mean:.1f} ± {x.std:.1f}"
                if x.accuracy.mean == top and min(p.accuracy.mean for p in pair.values()) != top:
                    text = f"*{text}*"
                if x.accuracy.mean == best:
                    text = f"**{text}**"
                row.append(text)
        lines.append("| " + " | ".join(row) + " |")
    hp = ["(lr, C)"] + [f"{c.cell(r, k, c.cells[0].epsilon).lr:g}, {c.cell(r, k, c.cells[0].epsilon).clip:g}"
                        for r in regimes for k in KINDS]
    lines.append("| " + " | ".join(hp) + " |")
    return "\n".join(lines)


def differences_table(c: RegimeComparison) -> str:
    eps_list = sorted({d.epsilon for d in c.differences})
    lines = ["| regime | " + " | ".join(f"Ours − Reg at ε = {e:g}" for e in eps_list) + " |",
             "|---|" + "---|" * len(eps_list)]
    for regime in dict.fromkeys(d.regime for d in c.differences):
        row = [REGIME_LABELS[regime]]
        for e in eps_list:
            d = c.difference(regime, e)
            row.append(f"{d.ours_minus_reg.text(signed=True)} — {d.verdict}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def tuning_table(t: TuningResult) -> str:
    points = list(dict.fromkeys((x.lr, x.clip) for x in t.trials))
    cells = list(dict.fromkeys((x.regime, x.kind) for x in t.trials))
    chosen = {(r, k): (lr, clip) for r, k, lr, clip in t.chosen}
    lines = ["| lr, C | " + " | ".join(label(r, k) for r, k in cells) + " |", "|---|" + "---|" * len(cells)]
    by_key = {(x.regime, x.kind, x.lr, x.clip): x for x in t.trials}
    for lr, clip in points:
        row = [f"{lr:g}, {clip:g}"]
        for r, k in cells:
            x = by_key.get((r, k, lr, clip))
            text = "—" if x is None else f"{x.val_accuracy:.1f}"
            row.append(f"**{text}**" if chosen.get((r, k)) == (lr, clip) else text)
        lines.append("| " + " | ".join(row) + " |")
    edge = ", ".join(label(r, k) for r, k in t.at_edge)
    lines += ["", f"Validation accuracy (%) on public data; **bold**: chosen. {t.setting}. "
              f"Runs per (regime, kind): {sorted(set(t.trials_per_cell().values()))} (equal for every cell); "
              f"{t.cpu_seconds / 60:.1f} CPU minutes."
              + (f" Chosen lr at the edge of the grid: {edge}." if edge else "")]
    return "\n".join(lines)


def comparison_markdown(c: RegimeComparison) -> str:
    parts = [f"## {c.data}, N = {c.num_train:,} ({c.base} base)", "", f"**Answer.** {c.sentence}", "",
             answer_table(c), "", "Test accuracy (%), mean ± std over seeds (*italics*: better kind of the regime; "
             "**bold**: best of the row); last row: each cell's (lr, C).", "", cells_table(c), "",
             "Ours − Reg in accuracy points, 95 % t interval over the per-seed differences (paired by seed); "
             "the verdict says whether the interval excludes 0.", "", differences_table(c), "",
             f"Recipe: {recipe_text(c)}", "", f"Hyperparameters: {c.hyperparameters}.", ""]
    if c.tuning is not None:
        parts += ["Tuning:", "", tuning_table(c.tuning), ""]
    parts += [f"CPU time of this comparison's runs: {c.cpu_seconds / 60:.1f} min"
              + (f" (+ {c.tuning.cpu_seconds / 60:.1f} min tuning)" if c.tuning else "") + ".", ""]
    return "\n".join(parts)


def report_markdown(results: RegimeResults, comparisons: Sequence[RegimeComparison], command: str | None = None) -> str:
    checks = shape_checks(results.summary, results.grid) if len(comparisons) == len(results.grid.data) else None
    lines = ["# Table 3 — DP fine-tuning, tangent (Ours) vs non-linear (Reg), per regime", "",
             "Which (regime, kind) to train under DP, per ε, on this data: Full = the last block, BitFit = its "
             "biases, LayerNorm = its affine parameters, FC = the head (the head is trained in every regime); "
             "Ours = the tangent model (J·Δw), Reg = non-linear fine-tuning of the same parameters.", ""]
    for c in comparisons:
        lines.append(comparison_markdown(c))
    if checks is not None:
        lines += [f"Paper's shape on means: Ours ≥ Reg in {checks['ours_ge_reg_holds']} of "
                  f"{checks['ours_ge_reg_total']} (data, regime, ε) cells; accuracy rising with ε in "
                  f"{checks['rising_holds']} of {checks['rising_total']} (data, regime, kind) series.", ""]
    info = results.info
    lines.append(f"{info.get('runs', len(results.rows))} runs ({info.get('runs_resumed', 0)} resumed from earlier "
                 f"runs), {info.get('wall_seconds', 0) / 60:.1f} min wall, {info.get('cpu_seconds', 0) / 60:.1f} min CPU "
                 f"in this process; CPU of all runs including earlier sessions: "
                 f"{(info.get('run_cpu_seconds', 0) + info.get('tuning_cpu_seconds', 0)) / 60:.1f} min.")
    if command:
        lines += ["", "Command:", "", "```", command, "```"]
    return "\n".join(lines) + "\n"


def _csv_bytes(rows: list[dict[str, Any]]) -> bytes:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue().encode()


def cell_rows(comparisons: Sequence[RegimeComparison]) -> list[dict[str, Any]]:
    return [{"data": c.data, "base": c.base, "num_train": c.num_train, "regime": x.regime, "kind": x.kind,
             "epsilon": x.epsilon, "mean": x.accuracy.mean, "std": x.std, "ci_low": x.accuracy.low,
             "ci_high": x.accuracy.high, "seeds": x.accuracy.n, "lr": x.lr, "clip": x.clip}
            for c in comparisons for x in c.cells]


def difference_rows(comparisons: Sequence[RegimeComparison]) -> list[dict[str, Any]]:
    return [{"data": c.data, "base": c.base, "num_train": c.num_train, "regime": d.regime, "epsilon": d.epsilon,
             "ours_minus_reg": d.ours_minus_reg.mean, "ci_low": d.ours_minus_reg.low, "ci_high": d.ours_minus_reg.high,
             "seeds": d.ours_minus_reg.n, "verdict": d.verdict} for c in comparisons for d in c.differences]


def tuning_rows(comparisons: Sequence[RegimeComparison]) -> list[dict[str, Any]]:
    return [{"data": c.data, "base": c.base, "num_train": c.num_train, "regime": t.regime, "kind": t.kind,
             "lr": t.lr, "clip": t.clip, "val_accuracy": t.val_accuracy, "cpu_seconds": t.cpu_seconds,
             "chosen": (t.regime, t.kind, t.lr, t.clip) in c.tuning.chosen}
            for c in comparisons if c.tuning is not None for t in c.tuning.trials]


def write_outputs(out: str | Path, results: RegimeResults, comparisons: Sequence[RegimeComparison],
                  command: str | None = None) -> dict[str, Path]:
    """Every output file (see the module docstring); returns their paths by kind."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"md": out / "table3.md", "runs": out / "table3_runs.csv", "csv": out / "table3.csv",
             "differences": out / "table3_differences.csv", "json": out / "table3.json", "png": out / "table3.png"}
    atomic_write_bytes(paths["md"], report_markdown(results, comparisons, command).encode())
    atomic_write_bytes(paths["runs"], _csv_bytes(results.rows))
    atomic_write_bytes(paths["csv"], _csv_bytes(cell_rows(comparisons)))
    atomic_write_bytes(paths["differences"], _csv_bytes(difference_rows(comparisons)))
    if any(c.tuning is not None for c in comparisons):
        paths["tuning"] = out / "table3_tuning.csv"
        atomic_write_bytes(paths["tuning"], _csv_bytes(tuning_rows(comparisons)))
    atomic_write_json(paths["json"], {"command": command, "info": results.info,
                                      "comparisons": [c.to_dict() for c in comparisons]})
    plot_accuracy(comparisons, paths["png"])
    if len({c.num_train for c in comparisons}) > 1:
        paths["vs_n"] = out / "table3_vs_n.png"
        plot_difference_vs_size(comparisons, paths["vs_n"])
    return paths


__all__ = ["cell_rows", "comparison_markdown", "difference_rows", "markdown_table", "report_markdown", "tuning_rows",
           "write_outputs"]
