"""The utility audit as an answer: which (regime, kind) to train under DP on this data, with intervals.

Runs the reduced regime comparison (``privtangent.experiments.regimes.run_quick_comparison``:
Poisson-subsampled DP-SGD, every regime × Ours/Reg × ε × seed, its (T, B) planned to fit a CPU
budget) and turns its typed result into the ``utility`` section of the report:

- ``answer``: one plain sentence — the best (regime, kind) per ε and where the tangent model
  (Ours) won, lost, or was not distinguishable from non-linear fine-tuning (Reg);
- ``best``: per ε, the best (regime, kind), its accuracy with a 95 % t interval over seeds and
  its margin over the runner-up (paired by seed);
- ``rows``: per (regime, ε), Ours and Reg (mean, std over seeds, as fractions) and Ours − Reg
  with its paired 95 % interval and verdict (does the interval exclude 0?);
- ``setup``: what the budget bought (N, B, T, runs) and where the hyperparameters came from
  (chosen in advance on public data; not accounted for in ε).

The check is the utility audit's own (``audits.utility.utility_checks``): every DP model above
chance. The comparison itself has no pass/fail: it informs the choice of recipe.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from timm.models.vision_transformer import VisionTransformer

from audits.results import AuditSection
from audits.utility import SECTION, utility_checks
from privtangent.data.dataset import ImageData
from privtangent.experiments.regimes import QUICK_BUDGET_SECONDS, QuickComparison, run_quick_comparison
from privtangent.experiments.regimes.stats import Interval
from privtangent.features import FeatureCache
from privtangent.tangent.regimes import REGIMES
from privtangent.threads import torch_threads

__all__ = ["comparison_section", "run_regime_comparison_audit"]


def _fraction(interval: Interval) -> dict[str, float | None]:
    """An interval in accuracy points (0–100) as fractions (0–1), the utility rows' unit."""
    scale = lambda v: None if v is None else round(v / 100, 6)  # noqa: E731 - one-line unit change
    return {"mean": scale(interval.mean), "low": scale(interval.low), "high": scale(interval.high)}


def _best_rows(quick: QuickComparison) -> list[dict[str, Any]]:
    rows = []
    for b in quick.comparison.best:
        accuracy = _fraction(b.accuracy)
        margin = _fraction(b.margin) if b.margin else {"mean": None, "low": None, "high": None}  # no runner-up
        rows.append({"epsilon": b.epsilon, "best": f"{b.kind} {b.regime}", "accuracy": accuracy["mean"],
                     "accuracy_low": accuracy["low"], "accuracy_high": accuracy["high"],
                     "runner_up": " ".join(reversed(b.runner_up)) if b.runner_up else None,
                     "margin": margin["mean"], "margin_low": margin["low"], "margin_high": margin["high"],
                     "clear": b.clear})
    return rows


def comparison_section(quick: QuickComparison, num_classes: int) -> AuditSection:
    """The ``utility`` section of a quick regime comparison."""
    c, plan = quick.comparison, quick.plan
    rows = c.utility_rows()
    body = {
        "answer": c.sentence,
        "summary": (f"Poisson-subsampled DP-SGD (expected batch {c.expected_batch_size:g}, q = {c.sample_rate:.4g}, "
                    f"T = {c.steps} steps, {c.optimizer}) of each regime, on the tangent model (Ours) and the original "
                    f"network (Reg), {c.num_train} training and {c.num_test} test images of {c.data}; test accuracy "
                    f"as a fraction, mean over {len(c.seeds)} seeds, 95 % t intervals over seeds, Ours − Reg paired by "
                    f"seed. A reduced comparison sized to a CPU budget: `privtangent compare-regimes` runs the full one."),
        "best": _best_rows(quick),
        "rows": rows,
        "source": "privtangent.experiments.regimes.run_quick_comparison",
        "setup": {"train": c.data, "train_size": c.num_train, "train_size_given": plan.num_train_given,
                  "test_size": c.num_test, "delta": c.delta, "accountant": c.accountant, "seeds": list(c.seeds),
                  "noise_multipliers": {f"{e:g}": s for e, s in c.noise_multipliers},
                  "expected_batch_size": c.expected_batch_size, "sample_rate": c.sample_rate, "steps": c.steps,
                  "budget_cpu_seconds": plan.budget_seconds, "cpu_seconds": round(quick.cpu_seconds, 1),
                  "runs": plan.runs, "noise": "seeded per run, shared by Ours and Reg of a cell (not for release)",
                  "tuning": c.hyperparameters},
        "seconds": quick.wall_seconds,
    }
    return AuditSection(SECTION, body, utility_checks(rows, num_classes, len(c.seeds)))


def run_regime_comparison_audit(base: VisionTransformer, train: ImageData, test: ImageData, *,
                                regimes: Sequence[str] = REGIMES, epsilons: Sequence[float] = (1.0, 3.0, 8.0),
                                delta: float | None = None, seeds: Sequence[int] = (0, 1, 2),
                                budget_seconds: float = QUICK_BUDGET_SECONDS, noise_seed: int = 0,
                                base_name: str = "base", cache: FeatureCache | None = None, progress: bool = False,
                                threads: int | None = 1) -> AuditSection:
    """Which (regime, kind) is most accurate under DP on ``train`` (tested on ``test``), within a CPU budget.

    Args:
        base: the base ViT; ``train``: the private training images; ``test``: held-out images.
        regimes, epsilons, seeds: the grid (at least two seeds for an interval; three by default).
        delta: δ, or None for min(1e-5, 1/(10·N)).
        budget_seconds: CPU seconds the comparison may take (one torch thread: about the
            wall-clock seconds of an idle core); the number of steps and the batch size are
            planned from measured costs to fit it.
        noise_seed: seeds every run's noise (these models are measurements, never released).

    Returns:
        the ``utility`` section (see the module docstring).
    """
    with torch_threads(threads):
        quick = run_quick_comparison(base, train, test, epsilons=epsilons, delta=delta, regimes=regimes, seeds=seeds,
                                     budget_seconds=budget_seconds, noise_seed=noise_seed, base_name=base_name,
                                     cache=cache, progress=progress)
        return comparison_section(quick, train.num_classes)
