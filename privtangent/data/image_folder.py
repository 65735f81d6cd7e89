"""Image folders (one sub-folder per class), the way teams bring their own data, read lazily.

``open_image_folder`` lists the files (``torchvision.datasets.folder.make_dataset``) and decodes
nothing; ``ImageFolderData.iter_images`` decodes batch by batch through a ``DataLoader`` with
worker processes, so a folder larger than RAM streams through feature extraction.
``load_image_folder`` is the eager form (every image in memory, a ``LabeledData``).

IDs are a stable 63-bit hash of the file's path relative to the root (class/file name),
so adding or removing other files never changes a sample's ID. Class names come from the
sub-folders (hidden ones skipped); a test split is opened with the train split's classes.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from torchvision.datasets.folder import make_dataset

from privtangent.data.dataset import LabeledData, check_limit, id_mask
from privtangent.data.transforms import ImageTransform, resolve_transform
from privtangent.errors import DataError
from privtangent.io.hashing import sha256_file, tensor_hash

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
# what PIL raises on a file it cannot decode (truncated, corrupt, not an image, too large)
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)
HASH_FORMAT = "privtangent-image-folder/1"


def path_id(relative: str) -> int:
    """A sample's ID: the first 63 bits of blake2b-64 of its path relative to the folder root."""
    return int.from_bytes(hashlib.blake2b(relative.encode(), digest_size=8).digest(), "big") >> 1


def decode_image(path: str | Path, mode: str) -> Image.Image:
    """The image at ``path`` fully decoded in ``mode``; a file PIL cannot read is a ``DataError`` naming it."""
    try:
        with Image.open(path) as img:
            return img.convert(mode)  # convert() forces the whole file to be decoded
    except DECODE_ERRORS as exc:
        raise DataError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from None


LARGE_IMAGE_PIXELS = 4096 * 4096  # above this an image costs seconds and hundreds of MB to decode


def large_images(paths: Sequence[str], max_pixels: int = LARGE_IMAGE_PIXELS) -> list[tuple[str, int, int]]:
    """(path, width, height) of every image with more than ``max_pixels`` pixels, largest first.

    Reads only each file's header (PIL opens lazily), so a folder of 100k images is scanned in
    seconds; files PIL cannot open are left to the decoder, which names them.
    """
    found = []
    for path in paths:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(path) as img:
                    width, height = img.size
        except DECODE_ERRORS:
            continue
        if width * height > max_pixels:
            found.append((str(path), width, height))
    return sorted(found, key=lambda f: -f[1] * f[2])


class DecodedImages(Dataset):
    """``DataLoader`` dataset over image files: item ``i`` is ``(i, image, None)`` or ``(i, None, error)``.

    A decoding error travels back as text, so that the caller raises one ``DataError`` that names
    the file, whichever worker process met it.
    """

    def __init__(self, paths: Sequence[str], transform: ImageTransform) -> None:
        self.paths, self.transform = paths, transform
        self._fn: Any = None

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, row: int) -> tuple[int, Tensor | None, str | None]:
        if self._fn is None:
            self._fn = self.transform.build()
        try:
            return row, self._fn(decode_image(self.paths[row], self.transform.mode)), None
        except DataError as exc:
            return row, None, str(exc)


def collate_decoded(items: list[tuple[int, Tensor | None, str | None]]) -> tuple[Tensor | None, Tensor, list[str]]:
    rows = torch.tensor([row for row, _, _ in items], dtype=torch.int64)
    errors = [err for _, _, err in items if err is not None]
    images = None if errors else torch.stack([img for _, img, _ in items])  # type: ignore[misc]
    return images, rows, errors


def one_torch_thread(_worker: int) -> None:
    """Decoding workers are processes of their own: one torch thread each keeps the cores for the caller."""
    torch.set_num_threads(1)


class ImageFolderData:
    """A labelled image folder whose images are decoded only when iterated.

    Same interface as ``LabeledData`` except ``.images``: ``labels``, ``ids``, ``classes``, ``name``,
    ``len()``, ``subset`` / ``limit`` / ``select_ids`` (lazy views), ``content_hash``,
    ``iter_images`` and ``materialize``. ``empty_classes`` names the classes without images (a
    training split with one cannot teach the model that class: the caller reports it);
    ``ignored_classes`` names sub-folders outside ``classes`` (a test split's classes that the
    training split lacks), whose files are not part of the data.
    """

    def __init__(self, root: Path, files: np.ndarray, labels: Tensor, classes: list[str], name: str,
                 transform: ImageTransform, empty_classes: list[str] | None = None,
                 ignored_classes: list[str] | None = None, source: ImageFolderData | None = None,
                 ids: Tensor | None = None) -> None:
        self.root, self.files, self.labels = root, files, labels
        self.ids = ids if ids is not None else torch.tensor([path_id(rel) for rel in files], dtype=torch.int64)
        self.classes, self.name, self.transform = list(classes), name, transform
        self.empty_classes = list(empty_classes or [])
        self.ignored_classes = list(ignored_classes or [])
        self._source = source
        self._hash: str | None = None
        if len(self.files) != len(self.labels):
            raise DataError(f"{name}: files and labels must have the same length")
        if len(self.ids) and torch.unique(self.ids).numel() != len(self.ids):
            raise DataError(f"{name}: two files of {root} hash to the same sample ID")

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        return f"ImageFolderData({self.name!r}, {len(self)} images, {len(self.classes)} classes, root={self.root})"

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def images(self) -> Tensor:
        raise AttributeError(f"{self.name} streams its images from {self.root}: use iter_images() or materialize()")

    @property
    def paths(self) -> list[str]:
        """Absolute path of every row's file."""
        return [os.path.join(self.root, rel) for rel in self.files]

    # -- views ----------------------------------------------------------------------------
    def subset(self, index: Tensor, name: str | None = None) -> ImageFolderData:
        """Rows selected by an index tensor or a boolean mask (a view: nothing is decoded)."""
        rows = torch.as_tensor(index)
        rows = rows.nonzero().flatten() if rows.dtype == torch.bool else rows.long().reshape(-1)
        return ImageFolderData(self.root, self.files[rows.numpy()], self.labels[rows], self.classes,
                               name or self.name, self.transform, self.empty_classes, self.ignored_classes,
                               self._source or self, ids=self.ids[rows])

    def limit(self, n: int | None) -> ImageFolderData:
        """The first ``n`` samples (all when ``n`` is None)."""
        if n is None:
            return self
        check_limit(n)
        return self.subset(torch.arange(min(n, len(self))), f"{self.name}[:{n}]")

    def select_ids(self, ids: Tensor | list[int], keep: bool = True) -> ImageFolderData:
        """Samples whose ID is in ``ids`` (``keep=False``: whose ID is not)."""
        mask = id_mask(self.ids, ids)
        return self.subset(mask if keep else ~mask)

    # -- hashes ---------------------------------------------------------------------------
    def content_hash(self) -> str:
        """sha256 over the transform, the class names and, per row, path, label and file bytes.

        Read file by file (never more than one file's block in memory). The transform is part of
        the hash because it decides the pixels: the same files at another size are other data.
        """
        if self._hash is None:
            digest = hashlib.sha256(f"{HASH_FORMAT}\n{self.transform.fingerprint()}\n".encode())
            digest.update("\0".join(self.classes).encode() + b"\n")
            for rel, label in zip(self.files, self.labels.tolist()):
                digest.update(f"{rel}\0{label}\0".encode())
                try:
                    digest.update(bytes.fromhex(sha256_file(os.path.join(self.root, rel))))
                except OSError as exc:
                    raise DataError(f"{os.path.join(self.root, rel)}: cannot be read ({exc})") from None
            self._hash = digest.hexdigest()
        return self._hash

    def ids_hash(self) -> str:
        return tensor_hash({"ids": self.ids})

    def source_hash(self) -> str | None:
        """Content hash of the whole folder this view was taken from (None for the folder itself)."""
        return self._source.content_hash() if self._source is not None else None

    # -- pixels ---------------------------------------------------------------------------
    def iter_images(self, batch_size: int = 256, num_workers: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        """``(images, rows)`` batches in row order, decoded by ``num_workers`` worker processes.

        Raises ``DataError`` naming the file when one cannot be decoded.
        """
        if batch_size < 1:
            raise DataError(f"batch_size must be ≥ 1, got {batch_size}")
        loader = DataLoader(DecodedImages(self.paths, self.transform), batch_size=batch_size, shuffle=False,
                            num_workers=num_workers, collate_fn=collate_decoded,
                            worker_init_fn=one_torch_thread if num_workers else None)
        for images, rows, errors in loader:
            if errors:
                more = f" (and {len(errors) - 1} more unreadable files in this batch)" if len(errors) > 1 else ""
                raise DataError(errors[0] + more)
            yield images, rows

    def materialize(self, num_workers: int = 0) -> LabeledData:
        """Every image decoded into memory, as ``LabeledData`` (for small sets and audit populations)."""
        images = torch.empty((len(self), *self.transform.input_size), dtype=torch.float32)
        for batch, rows in self.iter_images(256, num_workers):
            images[rows] = batch
        return LabeledData(images, self.labels.clone(), self.ids.clone(), list(self.classes), self.name)


def list_image_folder(root: Path, classes: list[str] | None
                      ) -> tuple[list[str], list[str], list[int], list[str], list[str]]:
    """(classes, relative paths, labels, empty classes, ignored sub-folders) of an image folder, in a fixed order."""
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist")
    found = sorted(entry.name for entry in os.scandir(root) if entry.is_dir() and not entry.name.startswith("."))
    if classes is None:
        classes = found
        if not classes:
            raise DataError(f"image folder {root} has no class sub-folders")
    ignored = sorted(set(found) - set(classes))
    class_to_idx = {name: i for i, name in enumerate(classes)}
    samples = make_dataset(str(root), class_to_idx, extensions=EXTENSIONS, allow_empty=True)
    samples.sort(key=lambda item: item[1])  # by label, then path (make_dataset orders by class name)
    files = [os.path.relpath(path, root) for path, _ in samples]
    labels = [label for _, label in samples]
    present = set(labels)
    empty = [name for i, name in enumerate(classes) if i not in present]
    return list(classes), files, labels, empty, ignored


def open_image_folder(root: str | Path, img_size: int | None = None, in_chans: int | None = None,
                      mean: float | Sequence[float] | None = None, std: float | Sequence[float] | None = None,
                      classes: list[str] | None = None, *, model: nn.Module | None = None,
                      allow_empty_classes: bool = True) -> ImageFolderData:
    """The image folder ``root/<class>/...`` as a lazy ``ImageFolderData`` (no image is decoded here).

    Pixels come from timm's evaluation transform for ``model`` (``resolve_transform``); without a
    model, ``img_size`` and ``in_chans`` are required. ``mean`` / ``std`` override the normalization.
    ``classes``: the class names in label order (the train split's, for a test split); other
    sub-folders are listed in ``.ignored_classes``. Classes without images are listed in
    ``.empty_classes`` for the caller to report, or are a ``DataError`` naming them when
    ``allow_empty_classes=False``. A folder without any image is a ``DataError``.
    """
    root = Path(root)
    transform = resolve_transform(model, img_size=img_size, in_chans=in_chans, mean=mean, std=std)
    classes, files, labels, empty, ignored = list_image_folder(root, classes)
    if not files:
        raise DataError(f"image folder {root} contains no images ({', '.join(EXTENSIONS)})")
    if empty and not allow_empty_classes:
        raise DataError(f"image folder {root}: class folder(s) {empty} contain no images "
                        f"({', '.join(EXTENSIONS)}); add images or remove the folder")
    return ImageFolderData(root, np.array(files, dtype=object), torch.tensor(labels, dtype=torch.int64), classes,
                           f"folder:{root.name}", transform, empty, ignored)


def load_image_folder(root: str | Path, img_size: int | None = None, in_chans: int | None = None,
                      mean: float | Sequence[float] | None = None, std: float | Sequence[float] | None = None,
                      classes: list[str] | None = None, *, model: nn.Module | None = None,
                      allow_empty_classes: bool = True, num_workers: int = 0) -> LabeledData:
    """The image folder with every image decoded into memory (``open_image_folder(...).materialize()``)."""
    folder = open_image_folder(root, img_size, in_chans, mean, std, classes, model=model,
                               allow_empty_classes=allow_empty_classes)
    return folder.materialize(num_workers)
