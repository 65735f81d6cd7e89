"""Differential privacy: accountants, noise calibration, per-sample gradients, DP optimizers."""

from importlib import import_module

# public name -> submodule that defines it (imported on first use, keeps `import privtangent` light)
_EXPORTS = {
    "epsilon": "privtangent.dp.accounting",
    "calibrate_noise": "privtangent.dp.calibration",
    "per_sample_grads": "privtangent.dp.per_sample",
    "DPConfig": "privtangent.dp.training",
    "DPOptimizer": "privtangent.dp.optimizer",
    "DPStep": "privtangent.dp.optimizer",
    "fit_dp": "privtangent.dp.training",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'privtangent.dp' has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
