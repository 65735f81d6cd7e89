"""Figures of the compliance report (matplotlib, Agg).

Each ``*_figure`` function builds a ``Figure`` (tests measure its text boxes: no two labels may
overlap); ``png`` turns one into the bytes the report embeds. Bar charts with long category
names are horizontal, so the names are stacked on the y axis instead of colliding on the x axis;
their titles are centred on the figure (not the axes) and legends sit outside the axes, so
constrained layout keeps every label inside the figure.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.ticker  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from audits.report_file import format_number  # noqa: E402
from reports.checks import confidence_text  # noqa: E402

WIDTH = 4.4  # inches; embedded at 52 % of the A4 text width (3.8 in), so 8 pt text prints at about 7 pt
LABEL_CHARS = 30  # a category label is wrapped onto lines of at most this many characters


def png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def wrap(text: str) -> str:
    return "\n".join(textwrap.wrap(text, LABEL_CHARS)) or text


def roc_figure(curves: pd.DataFrame) -> Figure:
    """ROC curves on log-log axes (the low-FPR regime is what matters, Carlini et al. 2022).

    ``curves`` has columns curve, fpr, tpr.
    """
    fig = Figure(figsize=(WIDTH, 3.3), layout="constrained")
    ax = fig.subplots()
    for name, group in curves.groupby("curve", sort=False):
        g = group[(group.fpr > 0) & (group.tpr > 0)]
        ax.plot(g.fpr, g.tpr, label=str(name), lw=1.6)
    ax.plot([1e-4, 1], [1e-4, 1], ls="--", color="grey", lw=1, label="chance")
    ax.set(xscale="log", yscale="log", xlim=(1e-3, 1), ylim=(1e-3, 1.05),
           xlabel="false positive rate", ylabel="true positive rate",
           title="Membership inference (LiRA), log-log ROC")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3, which="both")
    return fig


def utility_figure(rows: Sequence[dict]) -> Figure:
    """Test accuracy vs ε per regime: tangent ("Ours", solid) vs non-linear ("Reg", dashed)."""
    df = pd.DataFrame(rows).dropna(subset=["epsilon"])
    fig = Figure(figsize=(WIDTH, 2.9), layout="constrained")
    ax = fig.subplots()
    for i, (regime, g) in enumerate(df.groupby("regime", sort=False)):
        g = g.sort_values("epsilon")
        ax.plot(g.epsilon, 100 * g.ours, marker="o", color=f"C{i}", label=f"{regime} · Ours")
        if "reg" in g and g.reg.notna().any():
            ax.plot(g.epsilon, 100 * g.reg, marker="s", ls="--", color=f"C{i}", label=f"{regime} · Reg")
    epsilons = sorted(df.epsilon.unique())
    ax.set(xscale="log", xlabel="ε (δ fixed)", ylabel="test accuracy (%)", title="Utility under differential privacy")
    ax.set_xticks(epsilons, [format_number(e) for e in epsilons])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    fig.legend(fontsize=8, loc="outside right upper")
    ax.grid(alpha=0.3)
    return fig


def tightness_figure(rows: Sequence[dict]) -> Figure:
    """ε lower bound / claimed ε per audit method and claim, beside the ideal mechanism's value for the same test."""
    df = pd.DataFrame(rows)
    fig = Figure(figsize=(WIDTH, 1.2 + 0.55 * len(df)), layout="constrained")
    ax = fig.subplots()
    y = list(range(len(df)))
    ax.barh([i - 0.2 for i in y], df.tightness.fillna(0), height=0.4, label="this run", color="C0")
    if "ideal_tightness" in df:
        ax.barh([i + 0.2 for i in y], df.ideal_tightness.fillna(0), height=0.4, label="ideal mechanism",
                color="C1", alpha=0.6)
    ax.axvline(1.0, color="red", lw=1, ls="--", label="claimed ε (beyond: violation)")
    ax.set_yticks(y, [wrap(f"{r.method}, claimed ε = {format_number(r.epsilon_claimed)}") for r in df.itertuples()],
                  fontsize=8)
    ax.invert_yaxis()
    ax.set(xlabel="ε lower bound / claimed ε", xlim=(0, max(1.1, *df.tightness.fillna(0))))
    fig.suptitle("Audit tightness")
    fig.legend(fontsize=8, loc="outside lower center", ncols=3)
    return fig


def unlearning_figure(rows: Sequence[dict], confidence: float | None = None) -> Figure:
    """Membership AUC of the forgotten examples before/after removal beside never-seen examples,
    with the interval at the confidence the unlearning audit states."""
    df = pd.DataFrame(rows)
    fig = Figure(figsize=(WIDTH, 1.1 + 0.45 * len(df)), layout="constrained")
    ax = fig.subplots()
    y = list(range(len(df)))
    ax.barh(y, df.auc, xerr=[df.auc - df.auc_ci_lo, df.auc_ci_hi - df.auc], capsize=4, height=0.6,
            color=["C3" if "before" in s else "C0" for s in df.label])
    ax.axvline(0.5, color="grey", ls="--", lw=1)
    ax.set_yticks(y, [wrap(str(s)) for s in df.label], fontsize=8)
    ax.invert_yaxis()
    level = "" if confidence is None else confidence_text(confidence).removesuffix(" confidence") + " "
    ax.set(xlabel=f"LiRA AUC ({level}interval; 0.5 = chance)", xlim=(0, 1))
    fig.suptitle("Forgotten examples vs never-seen examples")
    return fig


def roc_loglog(curves: pd.DataFrame) -> bytes:
    return png(roc_figure(curves))


def utility_vs_epsilon(rows: Sequence[dict]) -> bytes:
    return png(utility_figure(rows))


def tightness_bars(rows: Sequence[dict]) -> bytes:
    return png(tightness_figure(rows))


def unlearning_bars(rows: Sequence[dict], confidence: float | None = None) -> bytes:
    return png(unlearning_figure(rows, confidence))


__all__ = ["png", "roc_figure", "roc_loglog", "tightness_bars", "tightness_figure", "unlearning_bars",
           "unlearning_figure", "utility_figure", "utility_vs_epsilon"]
