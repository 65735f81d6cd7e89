"""Named tasks of the embedded default.

- ``fashion-pretrain``: Fashion-MNIST classes 0–4 (the base model's pretraining task);
- ``fashion-near``: Fashion-MNIST classes 5–9, relabelled 0–4 (near the pretraining task);
- ``digits``: scikit-learn digits upsampled to 28×28 (far from it);
- ``fashion``: all ten Fashion-MNIST classes.
"""

from __future__ import annotations

from privtangent.data.dataset import LabeledData
from privtangent.data.digits import load_digits_task
from privtangent.data.fashion_mnist import load_fashion_mnist, select_classes
from privtangent.errors import DataError

TASKS = ("fashion-pretrain", "fashion-near", "digits", "fashion")


def load_task(name: str, split: str = "train", limit: int | None = None) -> LabeledData:
    """A named task's split; ``limit`` keeps the first N samples."""
    if name == "digits":
        data = load_digits_task(split)
    elif name in ("fashion-pretrain", "fashion-near", "fashion"):
        full = load_fashion_mnist(split)
        if name == "fashion":
            data = full
        else:
            classes = [0, 1, 2, 3, 4] if name == "fashion-pretrain" else [5, 6, 7, 8, 9]
            data = select_classes(full, classes, f"{name}/{split}")
    else:
        raise DataError(f"unknown data set {name!r}; choose one of {', '.join(TASKS)} (or an image folder in a config)")
    return data.limit(limit)
