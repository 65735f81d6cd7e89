"""The disk-backed prefix-feature cache (``FeatureCache`` + ``DiskFeatures`` + feature files).

- features are bit-identical (float32) to running the prefix chunk by chunk and concatenating,
  whether they are held in memory, read back from disk by rows, or streamed from an image folder;
- float16 files are close to float32 (and half the size);
- the in-memory part is bounded: least recently used sets are evicted, sets over the budget are
  served from disk, also by DP-SGD's Poisson batches and the trainer's epochs (same results);
- ``purge_ids`` removes the rows of given IDs from every file and the memory part, and a view of
  the remaining samples is still served from the purged file;
- a leftover temporary or truncated file is never trusted; an interrupted computation leaves nothing.
"""

from __future__ import annotations

import gc
import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

from privtangent.data import LabeledData, open_image_folder
from privtangent.dp import DPConfig, fit_dp
from privtangent.errors import DataError
from privtangent.features import DiskFeatures, FeatureCache, FeatureFileWriter, read_header, run_prefix
from privtangent.train import TrainConfig, fit
from tests.conftest import make_tiny_vit

START = 1


def make_data(n: int = 40, seed: int = 0, name: str = "synthetic") -> LabeledData:
    g = torch.Generator().manual_seed(seed)
    return LabeledData(torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 5, (n,), generator=g),
                       torch.arange(n, dtype=torch.int64) + 1000 * seed, [str(i) for i in range(5)], name)


def concatenated_prefix(model, start: int, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The pre-streaming computation: the prefix chunk by chunk, then one torch.cat."""
    model.eval()
    return torch.cat([run_prefix(model, start, images[i : i + batch_size]) for i in range(0, len(images), batch_size)])


def set_bytes(data, model) -> int:
    tokens = (28 // 7) ** 2 + 1
    return len(data) * tokens * model.embed_dim * 4


@pytest.fixture(scope="module")
def model():
    return make_tiny_vit(depth=2, seed=3)


def test_memory_and_disk_features_are_bit_identical_to_the_concatenated_prefix(model, tmp_path):
    data = make_data(45)
    reference = concatenated_prefix(model, START, data.images, batch_size=8)
    in_memory = FeatureCache(tmp_path / "a", batch_size=8).features(model, START, data)
    assert isinstance(in_memory, torch.Tensor) and torch.equal(in_memory, reference)
    on_disk = FeatureCache(tmp_path / "b", batch_size=8, memory_bytes=0).features(model, START, data)
    assert isinstance(on_disk, DiskFeatures) and on_disk.shape == reference.shape and len(on_disk) == 45
    assert torch.equal(on_disk[torch.arange(45)], reference) and torch.equal(on_disk.to_tensor(), reference)
    assert torch.equal(on_disk.ids, data.ids)
    # every kind of index training uses reads exactly those rows, in the order asked
    index = torch.tensor([44, 3, 3, 0, 17, 18, 19, 2])
    assert torch.equal(on_disk[index], reference[index])
    mask = torch.rand(45, generator=torch.Generator().manual_seed(1)) < 0.3
    assert torch.equal(on_disk[mask], reference[mask]) and torch.equal(on_disk[5:30:4], reference[5:30:4])
    assert torch.equal(on_disk[-1], reference[-1]) and on_disk[torch.tensor([], dtype=torch.long)].shape == (0, 17, 32)
    with pytest.raises(IndexError):
        on_disk[torch.tensor([45])]
    view = pickle.loads(pickle.dumps(on_disk.take(np.array([4, 1]))))  # e.g. sent to a worker process
    assert torch.equal(view[torch.arange(2)], reference[[4, 1]]) and torch.equal(view.ids, data.ids[[4, 1]])
    # the file is a standard safetensors file: IDs, features and metadata readable by the library
    (path,) = (tmp_path / "b").iterdir()
    with safe_open(str(path), "pt") as handle:
        assert torch.equal(handle.get_tensor("ids"), data.ids)
        assert handle.metadata()["data"] == "synthetic" and handle.metadata()["start"] == str(START)
    assert torch.equal(load_file(str(path))["features"], reference)


def test_streamed_folder_features_equal_eager_features(model, tmp_path):
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (tmp_path / "data" / label).mkdir(parents=True)
        for i in range(13):
            Image.fromarray(rng.integers(0, 256, (30, 30), dtype=np.uint8)).save(tmp_path / "data" / label / f"{i}.png")
    folder = open_image_folder(tmp_path / "data", model=model)
    eager = folder.materialize()
    reference = concatenated_prefix(model, START, eager.images, batch_size=8)
    streamed = FeatureCache(tmp_path / "cache", batch_size=8, memory_bytes=0, num_workers=2).features(model, START, folder)
    assert isinstance(streamed, DiskFeatures) and torch.equal(streamed[torch.arange(len(folder))], reference)
    assert torch.equal(FeatureCache(batch_size=8).features(model, START, eager), reference)


def test_float16_files_are_close_and_half_the_size(model, tmp_path):
    data = make_data(30)
    exact = FeatureCache(tmp_path / "f32", memory_bytes=0).features(model, START, data)
    half_cache = FeatureCache(tmp_path / "f16", memory_bytes=0, dtype=torch.float16)
    half = half_cache.features(model, START, data)
    assert read_header(half.path).dtype == torch.float16 and half[0].dtype == torch.float32
    rows = torch.arange(30)
    assert ((half[rows] - exact[rows]).norm() / exact[rows].norm()).item() < 1e-3
    assert half.path.stat().st_size < 0.55 * exact.path.stat().st_size
    assert half_cache.key(model, START, data) != FeatureCache().key(model, START, data)
    in_memory = FeatureCache(dtype=torch.float16).features(model, START, data)
    assert torch.equal(in_memory, half[rows])  # memory and disk hold the same rounded values


def test_memory_part_is_bounded_and_evicts_the_least_recently_used(model, tmp_path):
    sets = [make_data(20, seed=s, name=f"s{s}") for s in range(3)]
    budget = 2 * set_bytes(sets[0], model)
    cache = FeatureCache(tmp_path, memory_bytes=budget)
    keys = [cache.key(model, START, d) for d in sets]
    first = cache.features(model, START, sets[0])
    cache.features(model, START, sets[1])
    cache.features(model, START, sets[0])  # s0 is now the most recently used
    assert cache.hits == 1 and cache.resident_keys() == [keys[1], keys[0]]
    cache.features(model, START, sets[2])
    assert cache.resident_keys() == [keys[0], keys[2]] and cache.memory_bytes_used <= budget
    again = cache.features(model, START, sets[1])  # evicted from memory: read back from its file
    assert (cache.hits, cache.misses) == (2, 3) and torch.equal(again, concatenated_prefix(model, START, sets[1].images, 256))
    assert torch.equal(cache.features(model, START, sets[0]), first)
    big = make_data(60, seed=7)
    assert isinstance(cache.features(model, START, big), DiskFeatures)  # over the budget: never in memory
    assert cache.memory_bytes_used <= budget


def test_without_a_directory_large_sets_spill_to_a_temporary_folder(model, tmp_path):
    cache = FeatureCache(memory_bytes=1000, spill_directory=tmp_path)
    feats = cache.features(model, START, make_data(10))
    assert isinstance(feats, DiskFeatures) and feats.path.parent.parent == tmp_path
    spill = feats.path.parent
    del cache, feats
    gc.collect()
    assert not spill.exists()


@pytest.mark.parametrize("memory_bytes", [0, 1 << 30])
def test_dp_sgd_and_the_trainer_read_the_same_rows_from_disk(model, tmp_path, memory_bytes):
    train = make_data(64)
    config = DPConfig(regime="full", epochs=1, sample_rate=0.25, noise_multiplier=1.0, target_epsilon=None,
                      noise_seed=3, max_grad_norm=1.0)
    disk = FeatureCache(tmp_path, memory_bytes=memory_bytes)
    assert isinstance(disk.features(model, 1, train), DiskFeatures) == (memory_bytes == 0)
    reference = fit_dp(model, train, config, cache=FeatureCache(), progress=False)
    result = fit_dp(model, train, config, test=make_data(16, seed=1), cache=disk, progress=False)
    assert result.metrics["steps"] == reference.metrics["steps"] == 4
    for name, value in reference.model.trainable_state_dict().items():
        assert torch.equal(result.model.trainable_state_dict()[name], value), name
    tc = TrainConfig(epochs=1, batch_size=16, seed=0)
    plain = fit(model, train, tc, cache=FeatureCache(), progress=False).model.trainable_state_dict()
    streamed = fit(model, train, tc, cache=disk, progress=False).model.trainable_state_dict()
    assert all(torch.equal(streamed[n], v) for n, v in plain.items())


def test_purge_removes_the_rows_of_given_ids(model, tmp_path):
    data, other = make_data(30), make_data(10, seed=1, name="other")
    cache = FeatureCache(tmp_path, memory_bytes=0)
    full = cache.features(model, START, data)[torch.arange(30)]
    cache.features(model, START, other)
    data_file = cache.features(model, START, data).path
    forget = data.ids[[2, 7, 29]]
    assert list(cache.files_holding(forget)) == [data_file] and torch.equal(cache.files_holding(forget)[data_file], forget)
    assert cache.purge_ids(forget) == [data_file]
    (stored,) = [s for s in cache.stored_sets() if s.path == data_file]
    assert len(stored.ids) == 27 and not torch.isin(forget, stored.ids).any() and stored.purged_rows == 3
    assert cache.files_holding(forget) == {} and len(cache.stored_sets()) == 2
    # the remaining samples are served from the purged file (no recomputation), row for row
    remaining = data.select_ids(forget, keep=False)
    hits, misses = cache.hits, cache.misses
    served = cache.features(model, START, remaining)
    assert (cache.hits, cache.misses) == (hits + 1, misses)
    keep = ~torch.isin(data.ids, forget)
    assert torch.equal(served[torch.arange(27)], full[keep])
    # the full data set (still holding those samples) is recomputed, not served with rows missing
    assert torch.equal(cache.features(model, START, data)[torch.arange(30)], full) and cache.misses == misses + 1
    # purging every ID of a file deletes it; in-memory sets holding an ID are dropped
    memory = FeatureCache(tmp_path, memory_bytes=1 << 30)
    memory.features(model, START, other)
    assert memory.resident_keys()
    assert memory.purge_ids(other.ids.tolist()) == [memory.directory / f"{memory.key(model, START, other)}.safetensors"]
    assert memory.resident_keys() == [] and len(memory.stored_sets()) == 1


def test_leftover_temporary_and_truncated_files_are_never_trusted(model, tmp_path):
    data = make_data(12)
    cache = FeatureCache(tmp_path, memory_bytes=0)
    key = cache.key(model, START, data)
    # crashed writers (processes that no longer exist) left temporary files, for this key and another
    leftover = tmp_path / f".{key}.safetensors.999999999.abcd1234.tmp"
    other = tmp_path / f".{'0' * 32}.safetensors.999999999.abcd1234.tmp"
    for path in (leftover, other):
        path.write_bytes(b"\0" * 100)
    feats = cache.features(model, START, data)
    assert cache.misses == 1 and feats.path.name == f"{key}.safetensors" and len(cache.stored_sets()) == 1
    assert not leftover.exists() and other.exists()  # computing a key clears its own dead leftovers
    reference = feats[torch.arange(12)]
    # a truncated final file (a disk error, a copy cut short) is recomputed and replaced
    feats.path.write_bytes(feats.path.read_bytes()[:-100])
    again = FeatureCache(tmp_path, memory_bytes=0)
    assert torch.equal(again.features(model, START, data)[torch.arange(12)], reference) and again.misses == 1
    assert again.purge_ids([12345]) == [other] and not other.exists()


def test_an_interrupted_computation_leaves_no_file(model, tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "data" / "a").mkdir(parents=True)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(tmp_path / "data" / "a" / f"{i}.png")
    (tmp_path / "data" / "a" / "5.png").write_bytes(b"broken")
    folder = open_image_folder(tmp_path / "data", model=model)
    cache = FeatureCache(tmp_path / "cache", batch_size=2, memory_bytes=0)
    with pytest.raises(DataError, match="5.png"):
        cache.features(model, START, folder)
    assert list((tmp_path / "cache").iterdir()) == []
    writer = FeatureFileWriter(tmp_path / "w.safetensors", torch.arange(4), torch.float32, {})
    with writer:
        writer.append(torch.zeros(2, 3, 5))
    assert list(tmp_path.glob("*w.safetensors*")) == []  # never committed: nothing stays
