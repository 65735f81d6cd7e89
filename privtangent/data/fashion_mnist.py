"""Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package (gzipped IDX files).

IDs: training image i has ID i (0–59,999); test image i has ID 60,000 + i.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import torch

from privtangent.data.dataset import LabeledData
from privtangent.errors import DataError

DEFAULT_ROOT = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
MEAN, STD = 0.2860, 0.3530
TEST_ID_OFFSET = 60_000
_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
          "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def fashion_root() -> Path:
    return Path(os.environ.get("PRIVTANGENT_FASHION_MNIST", DEFAULT_ROOT))


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as handle:
        magic = struct.unpack(">I", handle.read(4))[0]
        dims = struct.unpack(">" + "I" * (magic & 0xFF), handle.read(4 * (magic & 0xFF)))
        data = np.frombuffer(handle.read(), dtype=np.uint8)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{path} is truncated: expected {int(np.prod(dims))} values, read {data.size}")
    return data.reshape(dims)


def load_fashion_mnist(split: str = "train", root: Path | None = None) -> LabeledData:
    """All 10 classes of one split, normalized to zero mean / unit std (of the training set)."""
    if split not in _FILES:
        raise DataError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(root) if root else fashion_root()
    image_file, label_file = (root / f for f in _FILES[split])
    if not image_file.exists() or not label_file.exists():
        raise DataError(
            f"Fashion-MNIST not found under {root}: install Debian's package "
            "'dataset-fashion-mnist' (apt-get install -y dataset-fashion-mnist) or set PRIVTANGENT_FASHION_MNIST"
        )
    images = torch.from_numpy(_read_idx(image_file).copy()).float().div_(255.0)
    images = images.sub_(MEAN).div_(STD).unsqueeze(1)
    labels = torch.from_numpy(_read_idx(label_file).astype(np.int64))
    offset = 0 if split == "train" else TEST_ID_OFFSET
    ids = torch.arange(len(labels), dtype=torch.int64) + offset
    return LabeledData(images, labels, ids, list(CLASSES), f"fashion-mnist/{split}")


def select_classes(data: LabeledData, classes: list[int], name: str) -> LabeledData:
    """Keep ``classes`` (original labels) and relabel them 0..len(classes)−1."""
    mask = torch.isin(data.labels, torch.tensor(classes))
    sub = data.subset(mask, name)
    remap = torch.full((int(data.labels.max()) + 1,), -1, dtype=torch.int64)
    remap[torch.tensor(classes)] = torch.arange(len(classes))
    return LabeledData(sub.images, remap[sub.labels], sub.ids, [data.classes[c] for c in classes], name)
