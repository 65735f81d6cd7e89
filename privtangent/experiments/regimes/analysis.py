"""From per-run rows to answers: which (regime, kind) to train under DP at each ε, and how sure that is.

- ``summarize``: mean / std / min / max of test accuracy (%) per (data, ε, regime, kind);
- ``shape_checks``: the paper's expected shape (Ours ≥ Reg per cell, accuracy rising with ε),
  compared on means;
- ``compare``: the typed ``RegimeComparison`` of one data set: every cell with its t interval,
  Ours − Reg paired by seed with its interval and verdict, the best (regime, kind) per ε with
  its margin over the runner-up, and one plain sentence (``plain_sentence``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from privtangent.experiments.regimes.grid import REGIME_LABELS, RegimeGrid
from privtangent.experiments.regimes.results import BestChoice, CellResult, Difference, RegimeComparison, TuningResult
from privtangent.experiments.regimes.stats import Interval, paired_difference, t_interval, verdict


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


def index_summary(summary: list[dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
    return {(s["data"], s["target_epsilon"], s["regime"], s["kind"]): s for s in summary}


def shape_checks(summary: list[dict[str, Any]], grid: RegimeGrid) -> dict[str, Any]:
    """The paper's expected shape, on means: Ours ≥ Reg in each regime at each ε; accuracy rising with ε."""
    idx = index_summary(summary)
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


def label(regime: str, kind: str) -> str:
    """"Ours Full" (tangent, last block) style name of a (regime, kind)."""
    return f"{kind} {REGIME_LABELS[regime]}"


def _eps_list(values: Sequence[float]) -> str:
    texts = [f"{e:g}" for e in sorted(values)]
    return texts[0] if len(texts) == 1 else ", ".join(texts[:-1]) + " and " + texts[-1]


def _percent(interval: Interval) -> str:
    """"84.1 % [83.0, 85.2]"."""
    if interval.low is None or interval.high is None:
        return f"{interval.mean:.1f} % (one seed)"
    return f"{interval.mean:.1f} % [{interval.low:.1f}, {interval.high:.1f}]"


def _cells(rows: list[dict[str, Any]], grid: RegimeGrid) -> list[CellResult]:
    cells = []
    for eps in sorted(grid.epsilons):
        for regime in grid.regimes:
            for kind in grid.kinds:
                runs = [r for r in rows if (r["regime"], r["kind"], float(r["target_epsilon"])) == (regime, kind, eps)]
                if not runs:
                    continue
                per_seed = tuple(sorted((int(r["seed"]), 100.0 * float(r["test_accuracy"])) for r in runs))
                values = [v for _, v in per_seed]
                interval = t_interval(values)
                std = math.sqrt(sum((v - interval.mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
                hp = grid.hyperparameters(regime, kind)
                cells.append(CellResult(regime, kind, float(eps), interval, std, per_seed, hp.lr, hp.clip))
    return cells


def _differences(cells: list[CellResult], grid: RegimeGrid) -> list[Difference]:
    by_key = {(c.regime, c.kind, c.epsilon): c for c in cells}
    out = []
    for eps in sorted(grid.epsilons):
        for regime in grid.regimes:
            ours, reg = by_key.get((regime, "Ours", float(eps))), by_key.get((regime, "Reg", float(eps)))
            if ours and reg:
                interval = paired_difference(dict(ours.per_seed), dict(reg.per_seed))
                out.append(Difference(regime, float(eps), interval, verdict(interval)))
    return out


def _best(cells: list[CellResult]) -> list[BestChoice]:
    out = []
    for eps in sorted({c.epsilon for c in cells}):
        ranked = sorted((c for c in cells if c.epsilon == eps), key=lambda c: c.accuracy.mean, reverse=True)
        top = ranked[0]
        second = ranked[1] if len(ranked) > 1 else None
        margin = paired_difference(dict(top.per_seed), dict(second.per_seed)) if second else None
        out.append(BestChoice(eps, top.regime, top.kind, top.accuracy,
                              (second.regime, second.kind) if second else None, margin))
    return out


def plain_sentence(data: str, num_train: int, best: list[BestChoice], differences: list[Difference],
                   num_seeds: int) -> str:
    """One sentence: the best (regime, kind) per ε, and where tangent wins, loses or ties."""
    groups: dict[tuple[str, str], list[BestChoice]] = {}
    for b in best:
        groups.setdefault((b.regime, b.kind), []).append(b)
    parts = []
    for (regime, kind), choices in groups.items():
        top = max(choices, key=lambda b: b.epsilon)
        unclear = [b.epsilon for b in choices if not b.clear]
        text = (f"{label(regime, kind)} at ε = {_eps_list([b.epsilon for b in choices])} "
                f"({_percent(top.accuracy)} at ε = {top.epsilon:g}")
        if unclear:
            text += f"; not clearly ahead of the runner-up at ε = {_eps_list(unclear)}"
        parts.append(text + ")")
    wins = [d for d in differences if d.verdict == "Ours better"]
    losses = [d for d in differences if d.verdict == "Reg better"]
    ties = len(differences) - len(wins) - len(losses)
    loss_by_regime: dict[str, list[Difference]] = {}
    for d in losses:
        loss_by_regime.setdefault(d.regime, []).append(d)
    where = "; ".join(
        f"{REGIME_LABELS[r]} at ε = {_eps_list([d.epsilon for d in ds])}: "
        f"{', '.join(f'{d.ours_minus_reg.mean:+.1f}' for d in ds)} points" for r, ds in loss_by_regime.items())
    lose_text = f"lost in {len(losses)} ({where})" if losses else "lost in none"
    return (f"On {data} ({num_train:,} private training images), the most accurate choice was "
            f"{'; '.join(parts)}; the tangent model (Ours) beat non-linear fine-tuning (Reg) in {len(wins)} of "
            f"{len(differences)} (regime, ε) pairs, {lose_text}, and was not clearly different in {ties} "
            f"(95 % t intervals over {num_seeds} seeds, paired by seed).")


def compare(rows: list[dict[str, Any]], grid: RegimeGrid, data: str, *, base: str, hyperparameters: str,
            tuning: TuningResult | None = None) -> RegimeComparison:
    """The typed comparison of ``data`` from the rows of ``run_grid`` (rows of other data sets are ignored)."""
    own = [r for r in rows if r["data"] == data]
    if not own:
        raise ValueError(f"no runs of {data!r} in the rows")
    first = own[0]
    cells = _cells(own, grid)
    differences = _differences(cells, grid)
    best = _best(cells)
    sigmas = tuple(sorted({(float(r["target_epsilon"]), float(r["noise_multiplier"])) for r in own}))
    return RegimeComparison(
        data=data, base=base, num_train=int(first["num_train"]), num_test=int(first["num_test"]),
        delta=float(first["delta"]), sample_rate=float(first["sample_rate"]),
        expected_batch_size=float(first["expected_batch_size"]), steps=int(first["steps"]),
        optimizer=str(first["optimizer"]), accountant=str(first["accountant"]), seeds=tuple(grid.seeds),
        noise_multipliers=sigmas, cells=tuple(cells), differences=tuple(differences), best=tuple(best),
        sentence=plain_sentence(data, int(first["num_train"]), best, differences, len(grid.seeds)),
        hyperparameters=hyperparameters, tuning=tuning, cpu_seconds=sum(float(r["cpu_seconds"]) for r in own))


__all__ = ["compare", "index_summary", "label", "plain_sentence", "shape_checks", "summarize"]
