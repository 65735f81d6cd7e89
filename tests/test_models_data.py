"""Models (build, heads, safetensors checkpoints, never pickle) and data (stable IDs, tasks).

- ``build_vit`` never downloads (``pretrained=True`` is refused) and only builds ViTs;
- ``load_checkpoint`` loads a local ``.safetensors`` state dict, replaces a head of another
  size and says so, names every mismatch, and refuses pickle files without unpickling them;
- data sets have stable unique IDs, the class selections relabel correctly, the digits
  split is fixed, a missing Debian data package is a clear ``DataError``;
- the embedded base model reaches ≥ 85 % on the 5,000 fashion-pretrain test images.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from timm.models.vision_transformer import VisionTransformer

from privtangent.data import LabeledData, load_task
from privtangent.data.fashion_mnist import CLASSES, TEST_ID_OFFSET, load_fashion_mnist
from privtangent.errors import CheckpointError, ConfigError, DataError, PrivtangentError
from privtangent.models import build_vit, load_checkpoint, read_safetensors, replace_head
from tests.conftest import make_tiny_vit


def save_state(model, path) -> None:
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))


# -- build_vit / replace_head ---------------------------------------------------------------------------------
TINY = dict(img_size=28, patch_size=7, in_chans=1, embed_dim=32, depth=1, num_heads=2, num_classes=3)


def test_build_vit_never_downloads():
    with pytest.raises(ConfigError, match="pretrained=True"):
        build_vit("vit_tiny_patch16_224", pretrained=True, **TINY)
    model = build_vit("vit_tiny_patch16_224", pretrained=False, **TINY)
    assert isinstance(model, VisionTransformer) and not model.training
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 3)


def test_build_vit_names_bad_input():
    with pytest.raises(ConfigError, match="model.name"):
        build_vit("vit_does_not_exist")
    with pytest.raises(ConfigError, match="not a timm VisionTransformer"):
        build_vit("test_resnet")
    with pytest.raises(ConfigError, match="model.kwargs"):
        build_vit("vit_tiny_patch16_224", no_such_argument=1, **TINY)


@pytest.mark.parametrize("pool", ["token", "avg"])
def test_replace_head(pool):
    model = make_tiny_vit(global_pool=pool).double()
    replace_head(model, 7, seed=1)
    assert model.head.in_features == 32 and model.head.out_features == 7 and model.num_classes == 7
    assert model.head.weight.dtype == torch.float64
    assert model.head.weight.abs().max() <= 1 / 32 ** 0.5  # PyTorch's default Linear init
    assert model(torch.zeros(2, 1, 28, 28, dtype=torch.float64)).shape == (2, 7)
    same, other = replace_head(make_tiny_vit(global_pool=pool), 7, seed=1), replace_head(make_tiny_vit(), 7, seed=2)
    assert torch.equal(same.head.weight, model.head.weight.float())  # seeded, reproducible
    assert not torch.equal(other.head.weight, same.head.weight)


# -- checkpoints ---------------------------------------------------------------------------------------------------
def test_checkpoint_round_trip(tmp_path):
    source, target = make_tiny_vit(seed=1), make_tiny_vit(seed=2)
    save_state(source, tmp_path / "base.safetensors")
    info = load_checkpoint(target, tmp_path / "base.safetensors")
    assert info == {"checkpoint": str(tmp_path / "base.safetensors"), "head_replaced": False}
    for name, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[name], value), name


def test_checkpoint_with_another_head_size_replaces_the_head_and_says_so(tmp_path):
    imagenet_like = make_tiny_vit(seed=1, num_classes=10)
    save_state(imagenet_like, tmp_path / "base.safetensors")
    task_model = make_tiny_vit(seed=2, num_classes=5)
    own_head = task_model.head.weight.clone()
    info = load_checkpoint(task_model, tmp_path / "base.safetensors")
    assert info["head_replaced"] is True
    assert torch.equal(task_model.head.weight, own_head)  # the task's head is kept
    assert torch.equal(task_model.blocks[1].attn.qkv.weight, imagenet_like.blocks[1].attn.qkv.weight)
    with pytest.raises(CheckpointError, match=r"head.weight \(10, 32\) vs \(5, 32\)"):
        load_checkpoint(make_tiny_vit(num_classes=5), tmp_path / "base.safetensors", allow_new_head=False)


def test_checkpoint_that_does_not_fit_is_refused(tmp_path):
    save_state(make_tiny_vit(embed_dim=32), tmp_path / "wide.safetensors")
    with pytest.raises(CheckpointError, match=r"wide.safetensors does not fit the model: .*shape mismatch: .*\(32"):
        load_checkpoint(make_tiny_vit(embed_dim=16), tmp_path / "wide.safetensors")
    state = {k: v.contiguous() for k, v in make_tiny_vit().state_dict().items()}
    state.pop("blocks.0.attn.qkv.bias")
    state["extra.weight"] = torch.zeros(2)
    save_file(state, str(tmp_path / "partial.safetensors"))
    with pytest.raises(CheckpointError, match="unexpected: extra.weight; missing: blocks.0.attn.qkv.bias"):
        load_checkpoint(make_tiny_vit(), tmp_path / "partial.safetensors")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(make_tiny_vit(), tmp_path / "absent.safetensors")
    (tmp_path / "corrupt.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(CheckpointError, match="not a valid .safetensors file"):
        load_checkpoint(make_tiny_vit(), tmp_path / "corrupt.safetensors")


class _Payload:
    """Unpickling this creates a file: proof of whether a loader runs pickled code."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.mark.parametrize("name", ["model.pt", "model.PTH", "weights.bin", "model.ckpt", "disguised.safetensors"])
def test_pickle_checkpoint_is_refused_without_unpickling(tmp_path, name):
    marker = tmp_path / "code_ran"
    blob = pickle.dumps({"state_dict": _Payload(str(marker))})
    path = tmp_path / name
    path.write_bytes(blob)
    expected = "not a valid .safetensors" if name.endswith(".safetensors") else "pickle-based checkpoints .* never loaded"
    with pytest.raises(CheckpointError, match=expected):
        load_checkpoint(make_tiny_vit(), path)
    with pytest.raises(CheckpointError):
        read_safetensors(path)
    assert not marker.exists()  # no code ran
    pickle.loads(blob)["state_dict"].close()  # control: unpickling the same bytes does run code
    assert marker.exists()


def test_checkpoint_errors_are_user_errors():
    assert issubclass(CheckpointError, PrivtangentError) and issubclass(DataError, PrivtangentError)


# -- data ----------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fashion():
    return load_fashion_mnist("train"), load_fashion_mnist("test")


def test_missing_debian_package_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PRIVTANGENT_FASHION_MNIST", str(tmp_path))
    for task in ("fashion-near", "fashion-pretrain", "fashion"):
        with pytest.raises(DataError, match=rf"not found under {tmp_path}.*dataset-fashion-mnist"):
            load_task(task, "train")


def test_fashion_ids_stable_and_unique(fashion):
    train, test = fashion
    assert len(train) == 60_000 and len(test) == 10_000
    assert torch.equal(train.ids, torch.arange(60_000))
    assert torch.equal(test.ids, torch.arange(10_000) + TEST_ID_OFFSET)
    assert not set(train.ids[:100].tolist()) & set(test.ids.tolist())
    assert train.images.shape == (60_000, 1, 28, 28) and train.images.dtype == torch.float32
    assert abs(train.images.mean().item()) < 0.01 and abs(train.images.std().item() - 1) < 0.01  # normalized
    again = load_fashion_mnist("test")
    assert again.content_hash() == test.content_hash()  # same IDs, labels, pixels in every run


@pytest.mark.parametrize(("task", "originals"), [("fashion-pretrain", [0, 1, 2, 3, 4]), ("fashion-near", [5, 6, 7, 8, 9])])
def test_class_selection_and_relabelling(fashion, task, originals):
    full = {"train": fashion[0], "test": fashion[1]}
    for split, size in (("train", 30_000), ("test", 5_000)):
        data = load_task(task, split)
        source = full[split]
        assert len(data) == size and data.classes == [CLASSES[c] for c in originals]
        assert sorted(data.labels.unique().tolist()) == [0, 1, 2, 3, 4]
        position = data.ids - (0 if split == "train" else TEST_ID_OFFSET)
        assert torch.equal(source.labels[position], torch.tensor(originals)[data.labels])  # relabelled
        assert torch.equal(source.images[position], data.images)  # same pixels under the same ID
        assert bool((data.ids[1:] > data.ids[:-1]).all())  # original order kept
    first = load_task(task, "test", limit=7)
    assert len(first) == 7 and torch.equal(first.ids, load_task(task, "test").ids[:7])


def test_digits_split_is_fixed():
    from sklearn.datasets import load_digits

    train, test = load_task("digits", "train"), load_task("digits", "test")
    assert (len(train), len(test)) == (1437, 360)
    assert not set(train.ids.tolist()) & set(test.ids.tolist())
    assert sorted(train.ids.tolist() + test.ids.tolist()) == list(range(1797))
    # the split is pinned: forget requests and shard maps refer to these IDs
    assert test.ids[:10].tolist() == [21, 24, 28, 34, 35, 37, 39, 42, 45, 51]
    assert int(test.ids.sum()) == 337_944
    assert torch.equal(load_task("digits", "test").ids, test.ids)
    target = torch.as_tensor(load_digits().target)
    assert torch.equal(train.labels, target[train.ids]) and torch.equal(test.labels, target[test.ids])
    counts = np.bincount(test.labels.numpy(), minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # stratified 20 %
    assert train.images.shape == (1437, 1, 28, 28)


def test_bad_task_names_and_labeled_data_checks():
    with pytest.raises(DataError, match="unknown data set 'mnist'.*fashion-near"):
        load_task("mnist")
    with pytest.raises(DataError, match="split"):
        load_task("digits", "validation")
    images = torch.zeros(3, 1, 2, 2)
    with pytest.raises(DataError, match="unique"):
        LabeledData(images, torch.zeros(3, dtype=torch.long), torch.tensor([1, 1, 2]), ["a"], "dup")
    with pytest.raises(DataError, match="same length"):
        LabeledData(images, torch.zeros(2, dtype=torch.long), torch.tensor([1, 2, 3]), ["a"], "short")
    data = LabeledData(images, torch.zeros(3, dtype=torch.long), torch.tensor([10, 11, 12]), ["a"], "ok")
    assert data.select_ids([11]).ids.tolist() == [11]
    assert data.select_ids([11], keep=False).ids.tolist() == [10, 12]
    with pytest.raises(DataError, match="limit"):
        data.limit(0)


# -- the embedded base model ------------------------------------------------------------------------------------
def test_base_model_accuracy(base_model):
    test = load_task("fashion-pretrain", "test")
    assert len(test) == 5_000
    correct = 0
    with torch.inference_mode():
        for i in range(0, len(test), 1000):
            correct += (base_model(test.images[i : i + 1000]).argmax(-1) == test.labels[i : i + 1000]).sum().item()
    assert correct / len(test) >= 0.85
