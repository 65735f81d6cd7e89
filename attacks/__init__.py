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

from attacks.lira import lira_scores, lira_scores_from_confidences
from attacks.loss import loss_scores
from attacks.metrics import AttackMetrics, attack_metrics, bootstrap_ci, roc, tpr_at_fpr
from attacks.rmia import rmia_scores
from attacks.signals import AttackInputError, cross_entropy_loss, logit_scaled_confidence, true_class_probability

__all__ = ["AttackInputError", "AttackMetrics", "attack_metrics", "bootstrap_ci", "cross_entropy_loss",
           "lira_scores", "lira_scores_from_confidences", "logit_scaled_confidence", "loss_scores", "rmia_scores",
           "roc", "tpr_at_fpr", "true_class_probability"]
