"""Executors: a local Ray instance and the spawn process pool give the same Δw as in-process training."""

from __future__ import annotations

import pytest
import torch

from privtangent.io.hashing import tensor_hash
from privtangent.shards import LocalPoolExecutor, RayExecutor, SerialExecutor, make_shard_map, train_shards
from tests.test_shards import CONFIG, TINY, make_tiny_vit


def _train(executor, data, cache):
    shard_map = make_shard_map(data, 3, seed=1)
    outputs = train_shards(make_tiny_vit(), data, shard_map, CONFIG, base_name="vit_tiny_patch16_224",
                           base_kwargs=TINY, executor=executor, cache_dir=cache)
    assert [o.shard for o in outputs] == [0, 1, 2]
    return outputs


def test_the_local_pool_gives_the_same_delta_as_serial(near_small, tmp_path):
    data, cache = near_small[0], tmp_path / "cache"
    serial = _train(SerialExecutor(), data, cache)
    pool = _train(LocalPoolExecutor(workers=2), data, cache)
    for a, b in zip(serial, pool):
        assert tensor_hash(a.trainable) == tensor_hash(b.trainable), a.shard
        assert a.ids_sha256 == b.ids_sha256 and a.num_samples == b.num_samples
    assert serial[0].worker not in {o.worker for o in pool}  # the jobs really ran in other processes
    assert not torch.equal(serial[0].trainable["head.weight"], serial[1].trainable["head.weight"])


@pytest.mark.ray
def test_ray_gives_the_same_delta_as_serial(near_small, tmp_path):
    ray = pytest.importorskip("ray")
    data, cache = near_small[0], tmp_path / "cache"
    serial = _train(SerialExecutor(), data, cache)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = _train(RayExecutor(), data, cache)
    finally:
        ray.shutdown()
    for a, b in zip(serial, remote):
        assert tensor_hash(a.trainable) == tensor_hash(b.trainable), a.shard
        assert a.ids_sha256 == b.ids_sha256
    assert serial[0].worker not in {o.worker for o in remote}
