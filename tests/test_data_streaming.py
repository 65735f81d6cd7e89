"""Image folders streamed from disk (``open_image_folder`` / ``ImageFolderData``).

- sample IDs are the 63-bit blake2b hash of the path relative to the root: adding or removing
  other files never changes them;
- pixels are timm's evaluation transform for the model (``resolve_data_config`` with the model's
  own input shape) unless the caller overrides mean/std; batches streamed by worker processes
  equal the eager ``materialize()`` and the transform applied file by file;
- a truncated or corrupt file is a ``DataError`` naming it; an empty class folder is listed in
  ``empty_classes`` for the caller to report (a ``DataError`` naming it with
  ``allow_empty_classes=False``); a test split's unknown class folders in ``ignored_classes``;
- views (subset/limit/select_ids) stay lazy; the content hash covers file bytes and transform.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from timm.data import create_transform, resolve_data_config

from privtangent.data import ImageData, ImageFolderData, LabeledData, load_image_folder, open_image_folder, path_id
from privtangent.errors import DataError
from tests.conftest import make_tiny_vit


def write_folder(root: Path, counts: dict[str, int], size=(20, 24), seed: int = 0, mode: str = "RGB") -> Path:
    rng = np.random.default_rng(seed)
    for label, count in counts.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            shape = (*size, 3) if mode == "RGB" else size
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(root / label / f"{i:03d}.png")
    return root


@pytest.fixture
def rgb_model():
    return make_tiny_vit(img_size=16, patch_size=4, in_chans=3)


def test_ids_are_the_path_hash_and_survive_other_files(tmp_path, rgb_model):
    root = write_folder(tmp_path / "data", {"cat": 4, "dog": 3})
    before = open_image_folder(root, model=rgb_model)
    expected = int.from_bytes(hashlib.blake2b(b"cat/000.png", digest_size=8).digest(), "big") >> 1
    assert path_id("cat/000.png") == expected == 250565975809747433  # as computed by the eager loader before streaming
    assert before.ids.tolist() == [path_id(rel) for rel in before.files]
    assert list(before.files[:2]) == ["cat/000.png", "cat/001.png"] and before.labels.tolist() == [0] * 4 + [1] * 3
    # add files to both classes (one sorting before the others) and delete one: the rest keep their IDs
    write_folder(tmp_path / "extra", {"cat": 2, "dog": 2}, seed=1)
    (tmp_path / "extra" / "cat" / "000.png").rename(root / "cat" / "0000-first.png")
    (tmp_path / "extra" / "dog" / "001.png").rename(root / "dog" / "zzz.png")
    (root / "dog" / "001.png").unlink()
    after = open_image_folder(root, model=rgb_model)
    old = dict(zip(before.files, before.ids.tolist()))
    new = dict(zip(after.files, after.ids.tolist()))
    del old["dog/001.png"]
    assert all(new[rel] == sample_id for rel, sample_id in old.items())
    assert len(after) == len(before) + 1


def test_timm_eval_transform_by_default_and_mean_std_override(tmp_path, rgb_model):
    root = write_folder(tmp_path / "data", {"a": 2, "b": 2})
    data = open_image_folder(root, model=rgb_model)
    config = resolve_data_config({"input_size": (3, 16, 16)}, model=rgb_model)
    assert config["crop_pct"] == 0.9 and config["interpolation"] == "bicubic"  # timm's ViT eval defaults
    expected = torch.stack([create_transform(**config, is_training=False)(Image.open(p).convert("RGB"))
                            for p in data.paths])
    streamed = torch.cat([images for images, _ in data.iter_images(batch_size=3)])
    assert streamed.shape == (4, 3, 16, 16) and torch.equal(streamed, expected)
    # an override of mean/std (a config's data.mean / data.std) is honoured, the rest stays timm's
    mean, std = [0.2, 0.3, 0.4], 0.25
    override = open_image_folder(root, model=rgb_model, mean=mean, std=std)
    assert override.transform.mean == (0.2, 0.3, 0.4) and override.transform.std == (0.25,) * 3
    expected_override = torch.stack([create_transform(**{**config, "mean": mean, "std": (std,) * 3},
                                                      is_training=False)(Image.open(p).convert("RGB"))
                                     for p in data.paths])
    assert torch.equal(override.materialize().images, expected_override)
    # same pixels before normalization
    unnormalized = streamed * 0.5 + 0.5
    torch.testing.assert_close(override.materialize().images * std + torch.tensor(mean).view(3, 1, 1), unnormalized)
    assert override.content_hash() != data.content_hash()  # the transform is part of the data's identity
    with pytest.raises(DataError, match="data.mean"):
        open_image_folder(root, model=rgb_model, mean=[0.1, 0.2])


def test_grayscale_model_and_explicit_size_without_model(tmp_path):
    root = write_folder(tmp_path / "data", {"a": 2, "b": 1}, mode="L")
    gray = open_image_folder(root, model=make_tiny_vit())  # 28×28, one channel
    assert gray.transform.input_size == (1, 28, 28) and gray.transform.mean == (0.5,)
    assert gray.materialize().images.shape == (3, 1, 28, 28)
    explicit = load_image_folder(root, 12, 3, mean=0.0, std=1.0)  # no model: resize the whole image
    assert explicit.images.shape == (3, 3, 12, 12) and explicit.images.min() >= 0 and explicit.images.max() <= 1
    with pytest.raises(DataError, match="img_size and in_chans"):
        open_image_folder(root)


def test_workers_stream_the_same_batches_as_eager_loading(tmp_path, rgb_model):
    root = write_folder(tmp_path / "data", {"a": 5, "b": 6})
    data = open_image_folder(root, model=rgb_model)
    eager = load_image_folder(root, model=rgb_model)
    batches = list(data.iter_images(batch_size=4, num_workers=2))
    assert [rows.tolist() for _, rows in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10]]
    assert torch.equal(torch.cat([images for images, _ in batches]), eager.images)
    assert torch.equal(eager.ids, data.ids) and torch.equal(eager.labels, data.labels)
    # LabeledData offers the same iterator (no copy: slices of its images)
    again = list(eager.iter_images(batch_size=4))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(batches, again))
    assert eager.materialize() is eager


@pytest.mark.parametrize("damage", ["truncated", "not-an-image"])
@pytest.mark.parametrize("workers", [0, 2])
def test_unreadable_file_is_a_data_error_naming_it(tmp_path, rgb_model, damage, workers):
    root = write_folder(tmp_path / "data", {"a": 3, "b": 3})
    bad = root / "b" / "001.png"
    if damage == "truncated":
        bad.write_bytes(bad.read_bytes()[: len(bad.read_bytes()) // 2])
    else:
        bad.write_bytes(b"this is no PNG")
    data = open_image_folder(root, model=rgb_model)  # listing decodes nothing
    with pytest.raises(DataError, match=str(bad)) as info:
        for _ in data.iter_images(batch_size=2, num_workers=workers):
            pass
    assert "Traceback" not in str(info.value)
    with pytest.raises(DataError, match=str(bad)):
        load_image_folder(root, model=rgb_model)


def test_empty_class_folder_is_reported(tmp_path, rgb_model):
    root = write_folder(tmp_path / "train", {"a": 2, "b": 2})
    (root / "c").mkdir()
    (root / "c" / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match=r"\['c'\] contain no images"):
        open_image_folder(root, model=rgb_model, allow_empty_classes=False)
    allowed = open_image_folder(root, model=rgb_model)
    assert allowed.classes == ["a", "b", "c"] and allowed.empty_classes == ["c"] and len(allowed) == 4
    assert allowed.limit(2).empty_classes == ["c"]  # views keep what the folder held
    with pytest.raises(DataError, match="no class sub-folders"):
        open_image_folder(tmp_path / "train" / "c", model=rgb_model)
    with pytest.raises(DataError, match="does not exist"):
        open_image_folder(tmp_path / "missing", model=rgb_model)


def test_test_split_uses_the_train_classes(tmp_path, rgb_model):
    train = open_image_folder(write_folder(tmp_path / "train", {"a": 2, "b": 2, "c": 1}), model=rgb_model)
    test_root = write_folder(tmp_path / "test", {"b": 2, "c": 1})
    test = open_image_folder(test_root, model=rgb_model, classes=train.classes)
    assert test.classes == ["a", "b", "c"] and test.labels.tolist() == [1, 1, 2] and test.empty_classes == ["a"]
    assert test.ignored_classes == []
    write_folder(test_root, {"zebra": 1})  # a class the training split lacks: its files are left out, and named
    with_zebra = open_image_folder(test_root, model=rgb_model, classes=train.classes)
    assert with_zebra.ignored_classes == ["zebra"] and torch.equal(with_zebra.ids, test.ids)


def test_views_stay_lazy_and_hash_what_they_hold(tmp_path, rgb_model):
    root = write_folder(tmp_path / "data", {"a": 4, "b": 4})
    data = open_image_folder(root, model=rgb_model)
    assert isinstance(data, ImageData) and isinstance(load_image_folder(root, model=rgb_model), ImageData)
    with pytest.raises(AttributeError, match="iter_images"):
        data.images
    view = data.select_ids(data.ids[[1, 5]], keep=False)
    assert isinstance(view, ImageFolderData) and len(view) == 6
    assert torch.equal(view.ids, data.ids[[0, 2, 3, 4, 6, 7]]) and view.source_hash() == data.content_hash()
    first = data.limit(3)
    assert list(first.files) == list(data.files[:3]) and data.subset(data.labels == 1).labels.tolist() == [1] * 4
    assert torch.equal(view.materialize().images, data.materialize().images[[0, 2, 3, 4, 6, 7]])
    assert view.content_hash() != data.content_hash()
    # the hash reads file bytes: one changed pixel changes it
    before = data.content_hash()
    path = root / "b" / "003.png"
    pixels = np.asarray(Image.open(path)).copy()
    pixels[0, 0, 0] ^= 1
    Image.fromarray(pixels).save(path)
    assert open_image_folder(root, model=rgb_model).content_hash() != before
    assert open_image_folder(root, model=rgb_model).ids_hash() == data.ids_hash()


def test_labeled_data_subset_remembers_its_source_hash():
    g = torch.Generator().manual_seed(0)
    data = LabeledData(torch.randn(6, 1, 4, 4, generator=g), torch.zeros(6, dtype=torch.int64),
                       torch.arange(6), ["x"], "d")
    assert data.limit(2).source_hash() is None  # the parent's hash was not known: nothing recorded
    parent = data.content_hash()
    assert data.limit(2).source_hash() == parent and data.limit(3).limit(2).source_hash() == parent
