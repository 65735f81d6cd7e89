"""Membership-inference attacks and their metrics (the ``attacks`` layer).

Dependencies point one way: ``reports → audits → attacks → privtangent``. Everything here is
model-agnostic: attacks take logits (NumPy arrays or torch tensors) and return NumPy scores,
higher = more likely a member.

- :mod:`attacks.signals` — per-example signals from logits: the logit-scaled confidence φ,
  cross-entropy loss, true-class probability.
- :mod:`attacks.loss` — the LOSS attack (Yeom et al. 2018).
- :mod:`attacks.lira` — LiRA, online and offline (Carlini et al. 2022).
- :mod:`attacks.rmia` — RMIA, online and offline (Zarifzadeh et al. 2024).
- :mod:`attacks.metrics` — ROC, AUC, TPR at low FPR, bootstrap confidence intervals.
"""

from importlib import import_module

# public name -> submodule that defines it (imported on first use, so that importing `attacks`
# does not pull in scipy and scikit-learn)
_EXPORTS = {
    "AttackInputError": "attacks.signals",
    "logit_scaled_confidence": "attacks.signals",
    "cross_entropy_loss": "attacks.signals",
    "true_class_probability": "attacks.signals",
    "loss_scores": "attacks.loss",
    "lira_scores": "attacks.lira",
    "lira_scores_from_confidences": "attacks.lira",
    "rmia_scores": "attacks.rmia",
    "AttackMetrics": "attacks.metrics",
    "attack_metrics": "attacks.metrics",
    "bootstrap_ci": "attacks.metrics",
    "roc": "attacks.metrics",
    "tpr_at_fpr": "attacks.metrics",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'attacks' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_EXPORTS))


__all__ = sorted(_EXPORTS)
