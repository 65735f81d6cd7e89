"""Figures of the compliance report (matplotlib, Agg), returned as PNG bytes."""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import pandas as pd  # noqa: E402


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def roc_loglog(curves: pd.DataFrame) -> bytes:
    """ROC curves on log-log axes (the low-FPR regime is what matters, Carlini et al. 2022).

    ``curves`` has columns curve, fpr, tpr.
    """
    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    for name, group in curves.groupby("curve", sort=False):
        g = group[(group.fpr > 0) & (group.tpr > 0)]
        ax.plot(g.fpr, g.tpr, label=str(name), lw=1.6)
    ax.plot([1e-4, 1], [1e-4, 1], ls="--", color="grey", lw=1, label="chance")
    ax.set(xscale="log", yscale="log", xlim=(1e-3, 1), ylim=(1e-3, 1.05),
           xlabel="false positive rate", ylabel="true positive rate",
           title="Membership inference (LiRA), log-log ROC")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3, which="both")
    return _png(fig)


def utility_vs_epsilon(rows: Sequence[dict]) -> bytes:
    """Test accuracy vs ε per regime: tangent ("Ours", solid) vs non-linear ("Reg", dashed)."""
    df = pd.DataFrame(rows)
    fig, ax = plt.subplots(figsize=(5.6, 4.0))
    for i, (regime, g) in enumerate(df.groupby("regime", sort=False)):
        g = g.sort_values("epsilon")
        color = f"C{i}"
        ax.plot(g.epsilon, 100 * g.ours, marker="o", color=color, label=f"{regime} · Ours")
        if "reg" in g and g.reg.notna().any():
            ax.plot(g.epsilon, 100 * g.reg, marker="s", ls="--", color=color, label=f"{regime} · Reg")
    ax.set(xscale="log", xlabel="ε (δ fixed)", ylabel="test accuracy (%)", title="Utility under differential privacy")
    ax.set_xticks(sorted(df.epsilon.unique()), [f"{e:g}" for e in sorted(df.epsilon.unique())])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    return _png(fig)


def tightness_bars(rows: Sequence[dict]) -> bytes:
    """ε lower bound / claimed ε per audit method, beside the ideal value for the same test."""
    df = pd.DataFrame(rows)
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    labels = [f"{r.method}\nε={r.epsilon_claimed:g}" for r in df.itertuples()]
    x = range(len(df))
    ax.bar([i - 0.2 for i in x], df.tightness.fillna(0), width=0.4, label="this run")
    if "ideal_tightness" in df:
        ax.bar([i + 0.2 for i in x], df.ideal_tightness.fillna(0), width=0.4, label="ideal mechanism", alpha=0.6)
    ax.axhline(1.0, color="red", lw=1, ls="--", label="claimed ε (above = violation)")
    ax.set_xticks(list(x), labels, fontsize=7)
    ax.set(ylabel="ε lower bound / claimed ε", title="Audit tightness")
    ax.legend(fontsize=8)
    return _png(fig)


def unlearning_bars(rows: Sequence[dict]) -> bytes:
    """Membership AUC of the forgotten samples before/after removal vs never-seen samples."""
    df = pd.DataFrame(rows)
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    ax.bar(df.label, df.auc, yerr=[df.auc - df.auc_ci_lo, df.auc_ci_hi - df.auc], capsize=4,
           color=["C3" if "before" in s else "C0" for s in df.label])
    ax.axhline(0.5, color="grey", ls="--", lw=1)
    ax.set(ylabel="LiRA AUC (95% CI)", ylim=(0, 1), title="Forgotten samples vs never-seen samples")
    ax.tick_params(axis="x", labelsize=8)
    return _png(fig)
