"""Per-sample gradients: the ghost (linear-site) engine vs vmap(grad) vs a plain loop vs Opacus."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from privtangent.dp import per_sample_grads
from privtangent.dp.clipping import clip_per_sample, clipped_grad_sum, per_sample_norms
from privtangent.dp.per_sample import FeatureForward, GhostUnsupported, site_gradients
from privtangent.finetune import NonLinearViT
from privtangent.losses import make_loss
from privtangent.tangent import linearize
from tests.conftest import make_tiny_vit

REGIMES = ["full", "bitfit", "layernorm", "fc"]


def _perturb(model: nn.Module, scale: float = 0.05, seed: int = 1) -> None:
    """Non-zero trained values, so that every term of the tangent is exercised."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.trainable_parameters().values():
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)


def _batch(n: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 28, 28, generator=g, dtype=torch.float64), torch.randint(0, 5, (n,), generator=g)


def _max_diff(a: dict, b: dict) -> float:
    assert list(a) == list(b)
    for k in a:
        assert a[k].shape == b[k].shape, k
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("variant", ["last-block", "two-blocks+cls"])
def test_tangent_ghost_engine_matches_vmap_and_loop_exactly(regime, variant):
    base = make_tiny_vit(depth=2).double()
    blocks, cls = (1, False) if variant == "last-block" else (2, True)
    tm = linearize(base, blocks=blocks, regime=regime, reset=True, linearize_cls=cls)
    _perturb(tm)
    x, y = _batch()
    loss = make_loss("ce")
    for output in ("full", "jvp"):
        ghost = per_sample_grads(tm, loss, x, y, output=output, method="ghost")
        vmapped = per_sample_grads(tm, loss, x, y, output=output, method="vmap")
        loop = per_sample_grads(tm, loss, x, y, output=output, method="loop")
        assert list(ghost) == list(tm.trainable_parameters())  # base-model names, model order
        assert all(ghost[k].shape == (6, *p.shape) for k, p in tm.trainable_parameters().items())
        assert _max_diff(ghost, vmapped) < 1e-12
        assert _max_diff(loop, vmapped) < 1e-12
        # the ghost norms (never materialized) equal the norms of the materialized gradients
        sites, _ = site_gradients(tm, loss, tm.prefix(x), y, output)
        torch.testing.assert_close(sites.norms(), per_sample_norms(vmapped), rtol=1e-12, atol=1e-12)
        assert float(per_sample_norms(vmapped).min()) > 0  # a non-trivial comparison


@pytest.mark.parametrize("regime", REGIMES)
def test_nonlinear_per_sample_grads_match_opacus(regime):
    from opacus import GradSampleModule

    base = make_tiny_vit(depth=2).double()
    nl = NonLinearViT(base, blocks=1, regime=regime)
    x, y = _batch(seed=3)
    loss = make_loss("rsl")
    feats = nl.prefix(x)
    ghost = per_sample_grads(nl, loss, feats, y, features=True, method="ghost")
    vmapped = per_sample_grads(nl, loss, feats, y, features=True, method="vmap")
    gsm = GradSampleModule(FeatureForward(nl), batch_first=True, loss_reduction="mean")
    gsm.train()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loss(gsm(feats), y).backward()
        opacus = {k: p.grad_sample.detach().clone() for k, p in nl.trainable_parameters().items()}
    finally:
        gsm._close()
    assert _max_diff(vmapped, opacus) < 1e-8
    assert _max_diff(ghost, opacus) < 1e-8
    assert max(float(t.abs().max()) for t in opacus.values()) > 1e-3


def test_nonlinear_with_fresh_cls_token_ghost_matches_loop():
    base = make_tiny_vit(depth=2).double()
    nl = NonLinearViT(base, blocks=1, regime="bitfit", linearize_cls=True)
    x, y = _batch(seed=4)
    loss = make_loss("ce")
    ghost = per_sample_grads(nl, loss, x, y, method="ghost")
    loop = per_sample_grads(nl, loss, x, y, method="loop")
    assert "cls_token" in ghost
    assert _max_diff(ghost, loop) < 1e-12


def test_images_and_cached_features_give_the_same_gradients():
    base = make_tiny_vit(depth=2).double()
    tm = linearize(base, blocks=1, regime="full")
    _perturb(tm)
    x, y = _batch()
    loss = make_loss("rsl")
    from_images = per_sample_grads(tm, loss, x, y)
    from_features = per_sample_grads(tm, loss, tm.prefix(x), y, features=True)
    assert _max_diff(from_images, from_features) == 0.0


@pytest.mark.parametrize("kind", ["tangent", "nonlinear"])
def test_clipped_sum_of_the_ghost_engine_matches_a_plain_loop(kind):
    base = make_tiny_vit(depth=2).double()
    model = linearize(base, regime="full") if kind == "tangent" else NonLinearViT(base, regime="full")
    if kind == "tangent":
        _perturb(model)
    x, y = _batch(8, seed=5)
    loss = make_loss("ce")
    feats = model.prefix(x)
    output = "jvp" if kind == "tangent" else "full"
    loop = per_sample_grads(model, loss, feats, y, features=True, output=output, method="loop")
    norms = per_sample_norms(loop)
    clip = float(norms.median())  # half the samples are clipped, half are not
    expected = {k: t.sum(0) for k, t in clip_per_sample(loop, clip).items()}
    got = clipped_grad_sum(model, loss, feats, y, clip, output=output, method="ghost")
    assert got.count == 8
    torch.testing.assert_close(got.norms, norms, rtol=1e-12, atol=1e-12)
    assert _max_diff(got.grads, expected) < 1e-12
    unclipped = {k: t.sum(0) for k, t in loop.items()}
    assert _max_diff(got.grads, unclipped) > 1e-6  # clipping did change the sum


class _Toy(nn.Module):
    """A model that uses a trained tensor in an op the ghost engine does not know (W.t())."""

    kind = "toy"

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(3, 4, dtype=torch.float64))

    def trainable_parameters(self):
        return {"w": self.w}

    def prefix(self, x):
        return x

    def forward_features(self, x, output="full"):
        return torch.tanh(x @ self.w.t())


def test_unknown_ops_raise_or_fall_back_to_vmap():
    toy = _Toy()
    x, y = torch.randn(5, 4, dtype=torch.float64), torch.randint(0, 3, (5,))
    loss = make_loss("ce")
    with pytest.raises(GhostUnsupported):
        per_sample_grads(toy, loss, x, y, method="ghost")
    auto = per_sample_grads(toy, loss, x, y)  # falls back to vmap
    loop = per_sample_grads(toy, loss, x, y, method="loop")
    assert _max_diff(auto, loop) < 1e-12


def test_float32_ghost_engine_on_the_default_shapes_agrees_with_vmap():
    """The engine in the dtype training uses, on the embedded default's shapes (D=128, 17 tokens)."""
    base = make_tiny_vit(embed_dim=128, depth=2, num_heads=4)
    tm = linearize(base, regime="full", reset=True)
    _perturb(tm, 0.02)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 1, 28, 28, generator=g), torch.randint(0, 5, (16,), generator=g)
    loss = make_loss("ce")
    ghost = per_sample_grads(tm, loss, x, y, output="jvp")
    vmapped = per_sample_grads(tm, loss, x, y, output="jvp", method="vmap")
    for k in ghost:
        torch.testing.assert_close(ghost[k], vmapped[k], rtol=1e-4, atol=1e-6)
