"""Differential privacy: accountants, noise calibration, per-sample gradients, DP optimizers.

- ``epsilon`` / ``calibrate_noise``: accounting of the (subsampled) Gaussian mechanism;
- ``per_sample_grads``: per-example gradients of a tangent or non-linear model;
- ``DPOptimizer``: clipping + Gaussian noise around any torch optimizer;
- ``DPConfig`` / ``fit_dp``: a DP fine-tuning run with its privacy manifest.
"""

from privtangent.dp.accounting import epsilon
from privtangent.dp.calibration import calibrate_noise
from privtangent.dp.config import DPConfig
from privtangent.dp.optimizer import DPOptimizer, DPStep
from privtangent.dp.per_sample import per_sample_grads
from privtangent.dp.training import DPResult, fit_dp

__all__ = ["DPConfig", "DPOptimizer", "DPResult", "DPStep", "calibrate_noise", "epsilon", "fit_dp", "per_sample_grads"]
