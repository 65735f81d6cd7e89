"""Which images each part of a regime comparison sees: private training set, public tuning data, test set.

Hyperparameters chosen on the private training set would leak it (and would have to be
accounted for in ε). So every data set is cut into four disjoint parts:

- ``train``: the private training set, the only data the DP runs touch;
- ``public_train`` / ``public_val``: the tuning data, declared public (its use is not
  accounted for in ε, and every output says so);
- ``test``: what the reported accuracies are measured on.

Where the public part comes from depends on the data set (``PUBLIC_PARTS``):

- ``fashion-near`` (Fashion-MNIST 5–9: 30,000 training / 5,000 test images): the whole
  training split stays private; 2,000 of the test images (stratified, seeded) become the
  public part (1,000 to train, 1,000 to validate) and the other 3,000 are the test set.
- ``digits`` (1,437 training / 360 test images): the test split is too small to share, so
  360 training images (stratified, seeded) become the public part (180 + 180); the private
  training set is the other 1,077, and the test set is the whole test split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from privtangent.data import load_task
from privtangent.data.dataset import LabeledData
from privtangent.errors import ConfigError

# data set -> (split the public part is taken from, public training images, public validation images)
PUBLIC_PARTS: dict[str, tuple[str, int, int]] = {"fashion-near": ("test", 1000, 1000), "digits": ("train", 180, 180)}


@dataclass(frozen=True)
class TaskSplit:
    """The four disjoint parts of one data set (see the module docstring)."""

    name: str
    train: LabeledData
    test: LabeledData
    public_train: LabeledData
    public_val: LabeledData
    rule: str  # one sentence: where each part comes from

    def describe(self) -> str:
        return (f"{self.name}: {len(self.train):,} private training images, {len(self.public_train):,} + "
                f"{len(self.public_val):,} public tuning images ({self.rule}), {len(self.test):,} test images")


def _stratified_pick(data: LabeledData, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(picked rows, remaining rows), both sorted; ``size`` rows stratified by label."""
    rows = np.arange(len(data))
    picked, rest = train_test_split(rows, train_size=size, random_state=seed, stratify=data.labels.numpy())
    return np.sort(picked), np.sort(rest)


def _rows(data: LabeledData, rows: np.ndarray, name: str) -> LabeledData:
    return data.subset(torch.as_tensor(rows, dtype=torch.long), name)


def split_task(name: str, *, train_limit: int | None = None, test_limit: int | None = None,
               seed: int = 0) -> TaskSplit:
    """The private / public / test parts of the named task (``PUBLIC_PARTS`` says how).

    ``train_limit`` keeps the first N private training images, ``test_limit`` the first N
    test images; neither changes the public part.
    """
    if name not in PUBLIC_PARTS:
        raise ConfigError(f"data {name!r}: no public tuning split is defined for it (defined for "
                          f"{', '.join(PUBLIC_PARTS)}); pass fixed hyperparameters instead of tuning")
    source, n_fit, n_val = PUBLIC_PARTS[name]
    train, test = load_task(name, "train"), load_task(name, "test")
    pool = test if source == "test" else train
    if len(pool) < n_fit + n_val + 100:
        raise ConfigError(f"data {name!r}: its {source} split has {len(pool)} images, too few to set aside "
                          f"{n_fit + n_val} public ones")
    public, rest = _stratified_pick(pool, n_fit + n_val, seed)
    public_pool = _rows(pool, public, f"{name}/public")
    fit_rows, val_rows = _stratified_pick(public_pool, n_fit, seed)
    public_train = _rows(public_pool, fit_rows, f"{name}/public-train")
    public_val = _rows(public_pool, val_rows, f"{name}/public-val")
    if source == "test":
        test = _rows(test, rest, f"{name}/test-private")
        rule = f"{n_fit + n_val:,} of the {len(pool):,} test images, stratified (seed {seed})"
    else:
        train = _rows(train, rest, f"{name}/train-private")
        rule = f"{n_fit + n_val:,} of the {len(pool):,} training images, stratified (seed {seed})"
    if train_limit is not None:
        train = train.limit(train_limit)
    if test_limit is not None:
        test = test.limit(test_limit)
    return TaskSplit(name, train, test, public_train, public_val, rule)


__all__ = ["PUBLIC_PARTS", "TaskSplit", "split_task"]
