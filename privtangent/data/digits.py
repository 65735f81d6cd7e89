"""scikit-learn's bundled digits (1,797 8×8 images), upsampled to 28×28: the "far" task.

IDs are the index in ``load_digits()``; the train/test split is stratified and fixed
(80/20, ``random_state=0``), so every run sees the same split.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from privtangent.data.dataset import LabeledData
from privtangent.data.fashion_mnist import MEAN, STD
from privtangent.errors import DataError

SIZE = 28


def load_digits_task(split: str = "train") -> LabeledData:
    if split not in ("train", "test"):
        raise DataError(f"split must be 'train' or 'test', got {split!r}")
    bunch = load_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32).div_(16.0).unsqueeze(1)
    images = F.interpolate(images, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    images = images.sub_(MEAN).div_(STD)
    labels = torch.tensor(bunch.target, dtype=torch.int64)
    index = torch.arange(len(labels))
    train_idx, test_idx = train_test_split(
        index.numpy(), test_size=0.2, random_state=0, stratify=labels.numpy()
    )
    chosen = torch.as_tensor(train_idx if split == "train" else test_idx)
    chosen, _ = torch.sort(chosen)
    return LabeledData(images[chosen], labels[chosen], index[chosen].long(), [str(d) for d in range(10)], f"digits/{split}")
