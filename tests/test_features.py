"""The frozen prefix: cached features, the CLS-only last block, and the FeatureCache.

- the cached-feature path (``forward_features(prefix(x))`` via ``FeatureCache``) and the CLS-only
  path give the same outputs as the plain path (float32, ≤ 1e-6 relative);
- the prefix carries no tangent: its output does not depend on Δw and is computed without
  autograd;
- ``FeatureCache`` computes a data set's prefix once (hits/misses), keys on the prefix weights,
  the start block and the data, and its safetensors disk copy round-trips.
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from privtangent.data import LabeledData
from privtangent.features import FeatureCache, prefix_state, run_prefix
from privtangent.finetune import NonLinearViT
from privtangent.tangent import linearize
from tests.conftest import make_tiny_vit

TOL = 1e-6


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def make_data(n: int = 20, seed: int = 0, name: str = "synthetic") -> LabeledData:
    g = torch.Generator().manual_seed(seed)
    return LabeledData(torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 5, (n,), generator=g),
                       torch.arange(n, dtype=torch.int64) + 1000 * seed, [str(i) for i in range(5)], name)


def random_delta(tm, seed: int = 0, scale: float = 0.05):
    g = torch.Generator().manual_seed(seed)
    return {n: torch.randn(t.shape, generator=g) * scale for n, t in tm.named_deltas().items()}


@pytest.fixture(scope="module")
def model():
    return make_tiny_vit(depth=3, seed=5)


@pytest.mark.parametrize("blocks", [1, 2])
@pytest.mark.parametrize("linearize_cls", [False, True])
def test_cached_features_path_equals_plain_path(model, blocks, linearize_cls):
    data = make_data()
    tm = linearize(model, blocks=blocks, reset=True, linearize_cls=linearize_cls)
    tm.load_delta(random_delta(tm))
    cache = FeatureCache(batch_size=7)  # several chunks
    feats = cache.features(tm.base, tm.start, data)
    assert feats.shape == (20, 17, 32)
    plain = tm(data.images)
    assert rel_err(tm.forward_features(feats), plain) <= TOL
    assert rel_err(tm.forward_features(feats, output="jvp"), tm(data.images, output="jvp")) <= TOL
    # same for non-linear fine-tuning of the same blocks
    nl = NonLinearViT(model, blocks=blocks, reset=True, linearize_cls=linearize_cls)
    assert rel_err(nl.forward_features(cache.features(nl.base, nl.start, data)), nl(data.images)) <= TOL


@pytest.mark.parametrize("blocks", [1, 2])
def test_cls_only_path_equals_plain_path(model, blocks):
    """Only the CLS row reaches the head: the last block computes queries, attention and MLP
    for it alone. Same outputs (f_w and J·Δw) as running every row, and as timm's forward."""
    x = make_data(8).images
    tm = linearize(model, blocks=blocks, regime="full")
    assert tm.cls_only
    tm.load_delta(random_delta(tm, 1))
    primal, tangent = tm(x, output="pair")
    tm.cls_only = False  # every row through the last block
    try:
        full_primal, full_tangent = tm(x, output="pair")
    finally:
        tm.cls_only = True
    assert rel_err(primal, full_primal) <= TOL
    assert rel_err(tangent, full_tangent) <= TOL
    with torch.no_grad():
        assert rel_err(primal, model(x)) <= TOL
    avg = linearize(make_tiny_vit(global_pool="avg"), blocks=1)
    assert not avg.cls_only  # average pooling reads every row


def test_prefix_carries_no_tangent(model):
    x = make_data(4).images
    tm = linearize(model, blocks=1)
    before = tm.prefix(x)
    tm.load_delta(random_delta(tm, 2, scale=1.0))
    after = tm.prefix(x)
    assert torch.equal(before, after)  # the prefix does not depend on Δw
    assert torch.equal(after, run_prefix(model, tm.start, x))  # it is the base model's own prefix
    assert not after.requires_grad  # no autograd graph: a constant for training
    with torch.no_grad():  # and it is what timm's blocks compute
        expected = model.norm_pre(model.patch_drop(model._pos_embed(model.patch_embed(x))))
        for block in model.blocks[: tm.start]:
            expected = block(expected)
    torch.testing.assert_close(after, expected, rtol=1e-6, atol=1e-6)
    # gradients of the output reach Δw only (there is no Δ for the prefix to reach)
    tm(x).sum().backward()
    assert all(p.grad is not None for p in tm.delta_parameters())
    assert all(p.grad is None for p in tm.base.parameters())


def test_feature_cache_computes_once(model):
    data, other = make_data(), make_data(seed=1, name="other")
    cache = FeatureCache(batch_size=8)
    tm1 = linearize(model, blocks=1)
    first = cache.features(tm1.base, tm1.start, data)
    assert (cache.hits, cache.misses) == (0, 1)
    again = cache.features(tm1.base, tm1.start, data)
    assert again is first and (cache.hits, cache.misses) == (1, 1)
    # a reset of the linearized block does not change the prefix: same key, a hit
    tm_reset = linearize(model, blocks=1, reset=True, seed=9)
    assert cache.key(tm_reset.base, tm_reset.start, data) == cache.key(tm1.base, tm1.start, data)
    cache.features(tm_reset.base, tm_reset.start, data)
    assert (cache.hits, cache.misses) == (2, 1)
    # another start block, other data, other prefix weights: misses
    tm2 = linearize(model, blocks=2)
    feats2 = cache.features(tm2.base, tm2.start, data)
    assert cache.misses == 2 and not torch.equal(feats2, first)
    cache.features(tm1.base, tm1.start, other)
    assert cache.misses == 3
    changed = make_tiny_vit(depth=3, seed=6)
    assert cache.key(changed, 2, data) != cache.key(model, 2, data)
    # the batch size does not change the features
    whole = FeatureCache(batch_size=1000).features(tm1.base, tm1.start, data)
    torch.testing.assert_close(whole, first, rtol=1e-6, atol=1e-6)


def test_feature_cache_disk_round_trip(model, tmp_path):
    data = make_data(12)
    tm = linearize(model, blocks=2)
    writer = FeatureCache(tmp_path / "features", batch_size=5)
    feats = writer.features(tm.base, tm.start, data)
    files = list((tmp_path / "features").iterdir())
    assert [f.name for f in files] == [f"{writer.key(tm.base, tm.start, data)}.safetensors"]  # no temp files left
    assert torch.equal(load_file(str(files[0]))["features"], feats)
    reader = FeatureCache(tmp_path / "features")  # a new process would start like this
    loaded = reader.features(tm.base, tm.start, data)
    assert (reader.hits, reader.misses) == (1, 0)
    assert torch.equal(loaded, feats)
    assert rel_err(tm.forward_features(loaded), tm(data.images)) <= TOL


def test_prefix_state_is_the_prefix_only(model):
    state = prefix_state(model, 2)
    assert "cls_token" in state and "pos_embed" in state and "patch_embed.proj.weight" in state
    assert any(k.startswith("blocks.1.") for k in state)
    assert not any(k.startswith(("blocks.2.", "norm.", "head.")) for k in state)
