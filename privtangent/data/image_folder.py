"""Image folders (one sub-folder per class), the way teams bring their own data.

IDs are a stable 63-bit hash of the file's path relative to the root (class/file name),
so adding or removing other files never changes a sample's ID.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from privtangent.data.dataset import LabeledData
from privtangent.errors import DataError

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def path_id(relative: str) -> int:
    return int.from_bytes(hashlib.blake2b(relative.encode(), digest_size=8).digest(), "big") >> 1


def load_image_folder(
    root: str | Path,
    img_size: int,
    in_chans: int,
    mean: float | list[float] = 0.5,
    std: float | list[float] = 0.5,
    classes: list[str] | None = None,
) -> LabeledData:
    """Load every image under ``root/<class>/`` resized to ``img_size`` with ``in_chans``."""
    from PIL import Image

    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist")
    found = sorted(p.name for p in root.iterdir() if p.is_dir())
    classes = classes or found
    if not classes:
        raise DataError(f"image folder {root} has no class sub-folders")
    images, labels, ids = [], [], []
    for label, cls in enumerate(classes):
        for path in sorted((root / cls).rglob("*")):
            if path.suffix.lower() not in EXTENSIONS:
                continue
            with Image.open(path) as img:
                img = img.convert("L" if in_chans == 1 else "RGB")
                array = np.asarray(img, dtype=np.float32) / 255.0
            tensor = torch.from_numpy(array)
            tensor = tensor.unsqueeze(0) if tensor.ndim == 2 else tensor.permute(2, 0, 1)
            tensor = F.interpolate(tensor.unsqueeze(0), size=(img_size, img_size), mode="bilinear", align_corners=False)[0]
            images.append(tensor)
            labels.append(label)
            ids.append(path_id(str(path.relative_to(root))))
    if not images:
        raise DataError(f"image folder {root} contains no images ({', '.join(sorted(EXTENSIONS))})")
    stacked = torch.stack(images)
    mean_t = torch.as_tensor(mean, dtype=torch.float32).reshape(-1, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32).reshape(-1, 1, 1)
    stacked = (stacked - mean_t) / std_t
    return LabeledData(stacked, torch.tensor(labels), torch.tensor(ids, dtype=torch.int64), list(classes), f"folder:{root.name}")
