"""The paper's Table 3 as a decision tool: which regime, tangent or not, to fine-tune under DP.

For each data set, regime (Full = the last block, BitFit = its biases, LayerNorm = its affine
parameters, FC = the head), model kind ("Ours" = tangent, "Reg" = non-linear) and target ε,
train with DP over several seeds and compare, with intervals.

Modules (each answers one question):

- ``grid``: what runs — ``RegimeGrid`` (regimes, ε, δ, sampling, steps, per-cell (lr, C));
- ``splits``: which images each part sees — private training set, public tuning data, test set;
- ``tuning``: how each cell's (lr, C) is chosen on public data, at equal cost per cell;
- ``runner``: running the cells (``run_grid``), resumable through ``store.RunStore``;
- ``stats``: t intervals over seeds, paired differences;
- ``analysis`` / ``results``: the typed answer (``RegimeComparison``: best per ε, Ours − Reg,
  one sentence);
- ``study``: all of it per data set (``run_comparison``);
- ``quick``: a reduced comparison within a time budget, for the main job (``run_quick_comparison``);
- ``report`` / ``plots``: Markdown, CSV, JSON, figures.
"""

from privtangent.experiments.regimes.analysis import compare, plain_sentence, shape_checks, summarize
from privtangent.experiments.regimes.grid import (
    DEFAULT_DATA,
    KINDS,
    REGIME_LABELS,
    Hyperparameters,
    RegimeGrid,
    default_delta,
)
from privtangent.experiments.regimes.quick import (
    DEFAULT_HYPERPARAMETERS,
    QUICK_BUDGET_SECONDS,
    QuickComparison,
    QuickPlan,
    run_quick_comparison,
)
from privtangent.experiments.regimes.report import markdown_table, report_markdown, write_outputs
from privtangent.experiments.regimes.results import (
    BestChoice,
    CellResult,
    Difference,
    RegimeComparison,
    TuningResult,
    TuningTrial,
)
from privtangent.experiments.regimes.runner import RegimeResults, run_grid
from privtangent.experiments.regimes.splits import TaskSplit, split_task
from privtangent.experiments.regimes.stats import Interval, paired_difference, t_interval
from privtangent.experiments.regimes.store import RunStore
from privtangent.experiments.regimes.study import run_comparison
from privtangent.experiments.regimes.tuning import TuningGrid, tune

__all__ = [
    "BestChoice", "CellResult", "DEFAULT_DATA", "DEFAULT_HYPERPARAMETERS", "Difference", "Hyperparameters",
    "Interval", "KINDS", "QUICK_BUDGET_SECONDS", "QuickComparison", "QuickPlan", "REGIME_LABELS", "RegimeComparison",
    "RegimeGrid", "RegimeResults", "RunStore", "TaskSplit", "TuningGrid", "TuningResult", "TuningTrial", "compare",
    "default_delta", "markdown_table", "paired_difference", "plain_sentence", "report_markdown", "run_comparison",
    "run_grid", "run_quick_comparison", "shape_checks", "split_task", "summarize", "t_interval", "tune",
    "write_outputs",
]
