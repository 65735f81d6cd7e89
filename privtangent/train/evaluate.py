"""Evaluation: logits, top-1 accuracy, per-class accuracy, loss."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from privtangent.features import Features
from privtangent.finetune import FineTuneModel


@torch.no_grad()
def predict_logits(model: FineTuneModel, features: Features, output: str = "full", batch_size: int = 512) -> Tensor:
    """Logits of a fine-tuned model on cached prefix features."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = [model.forward_features(features[i : i + batch_size].to(device), output=output).cpu()
           for i in range(0, len(features), batch_size)]
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0)


def accuracy_report(logits: Tensor, labels: Tensor, num_classes: int) -> dict:
    """Top-1 accuracy (fraction) and per-class accuracy."""
    pred = logits.argmax(-1)
    per_class = []
    for c in range(num_classes):
        mask = labels == c
        per_class.append(float((pred[mask] == c).double().mean()) if mask.any() else float("nan"))
    return {"accuracy": float((pred == labels).double().mean()) if len(labels) else float("nan"),
            "per_class_accuracy": per_class}


def evaluate(model: FineTuneModel, features: Features, labels: Tensor, num_classes: int,
             loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None, output: str = "full") -> dict:
    logits = predict_logits(model, features, output)
    report = accuracy_report(logits, labels, num_classes)
    if loss_fn is not None and len(labels):
        report["loss"] = float(loss_fn(logits, labels))
    return report
