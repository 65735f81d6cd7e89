"""Plots of a regime comparison (matplotlib, Agg backend).

- ``plot_accuracy``: test accuracy vs ε, Ours vs Reg, one panel per (comparison, regime),
  error bars = the 95 % t interval over seeds;
- ``plot_difference_vs_size``: Ours − Reg vs the training set size N, one panel per regime
  (one line per ε and data set/base), error bars = the paired 95 % interval; the dashed
  line is 0 (above: the tangent model is better).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

from privtangent.experiments.regimes.grid import KINDS, REGIME_LABELS  # noqa: E402
from privtangent.experiments.regimes.results import RegimeComparison  # noqa: E402
from privtangent.experiments.regimes.stats import Interval  # noqa: E402

STYLES = {"Ours": dict(marker="o", color="tab:blue"), "Reg": dict(marker="s", color="tab:orange")}


def _errors(intervals: Sequence[Interval]) -> list[list[float]]:
    """Error bar lengths below and above the mean (0 where there is no interval)."""
    return [[i.mean - i.low if i.low is not None else 0.0 for i in intervals],
            [i.high - i.mean if i.high is not None else 0.0 for i in intervals]]


def plot_accuracy(comparisons: Sequence[RegimeComparison], path: str | Path) -> None:
    """Accuracy vs ε per (comparison, regime), Ours vs Reg, with 95 % intervals."""
    regimes = list(dict.fromkeys(c.regime for comp in comparisons for c in comp.cells))
    rows, cols = len(comparisons), len(regimes)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows), squeeze=False, sharex=True)
    for i, comp in enumerate(comparisons):
        eps = sorted({c.epsilon for c in comp.cells})
        for j, regime in enumerate(regimes):
            ax = axes[i][j]
            for kind in KINDS:
                cells = [comp.cell(regime, kind, e) for e in eps]
                ax.errorbar(eps, [c.accuracy.mean for c in cells], yerr=_errors([c.accuracy for c in cells]),
                            capsize=3, label=f"{kind} ({'tangent' if kind == 'Ours' else 'non-linear'})",
                            **STYLES[kind])
            ax.set_xscale("log")
            ax.minorticks_off()
            ax.set_xticks(eps)
            ax.set_xticklabels([f"{e:g}" for e in eps])
            ax.set_title(f"{comp.data} N={comp.num_train:,} ({comp.base}): {REGIME_LABELS[regime]}", fontsize=8)
            ax.grid(alpha=0.3)
            if j == 0:
                ax.set_ylabel("test accuracy (%)")
            if i == rows - 1:
                ax.set_xlabel("ε")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("DP fine-tuning per regime: mean and 95 % t interval over seeds", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_difference_vs_size(comparisons: Sequence[RegimeComparison], path: str | Path) -> None:
    """Ours − Reg (points) vs N per regime; one line per (data, base, ε)."""
    regimes = list(dict.fromkeys(d.regime for comp in comparisons for d in comp.differences))
    lines: dict[tuple[str, str, str, float], list[tuple[int, Interval]]] = {}
    for comp in comparisons:
        for d in comp.differences:
            lines.setdefault((d.regime, comp.data, comp.base, d.epsilon), []).append((comp.num_train, d.ours_minus_reg))
    fig, axes = plt.subplots(1, len(regimes), figsize=(3.4 * len(regimes), 3.0), squeeze=False, sharey=True)
    for j, regime in enumerate(regimes):
        ax = axes[0][j]
        for (r, data, base, eps), points in lines.items():
            if r != regime:
                continue
            points = sorted(points, key=lambda p: p[0])
            ax.errorbar([n for n, _ in points], [i.mean for _, i in points], yerr=_errors([i for _, i in points]),
                        capsize=3, marker="o", label=f"{data} ({base}) ε={eps:g}")
        sizes = sorted({comp.num_train for comp in comparisons})
        ax.axhline(0.0, color="black", linestyle="--", linewidth=0.8)
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(sizes)
        ax.set_xticklabels([f"{n:,}" for n in sizes], fontsize=7)
        ax.set_xlabel("training set size N")
        ax.set_title(REGIME_LABELS[regime], fontsize=9)
        ax.grid(alpha=0.3)
        if j == 0:
            ax.set_ylabel("Ours − Reg (accuracy points)")
    axes[0][-1].legend(fontsize=6)
    fig.suptitle("Tangent minus non-linear DP fine-tuning vs N (95 % interval, paired by seed; above 0: tangent "
                 "better)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


__all__ = ["plot_accuracy", "plot_difference_vs_size"]
