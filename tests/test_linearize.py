"""``linearize``: the tangent ViT against the jvp references, linearity, Δw naming, errors,
and the primal cache (tangent-only training of the last block).

Float64 throughout the exactness checks. For every tiny ViT config, blocks ∈ {1, 2}, every
regime, reset and CLS option, the closed-form output must match:

- ``reference.reference_jvp`` (torch.func.jvp of timm's own forward of the linearized part,
  math attention, CLS substitution when linearized): ≤ 1e-9 relative, primal and tangent;
- ``reference.whole_model_jvp`` (jvp of the whole base model, end to end) when there is no
  reset and no CLS linearization: ≤ 1e-9;
- ``reference.finite_difference`` (central difference of the plain forward): ≤ 1e-6.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

import privtangent.tangent.vit as vit_module
from privtangent.errors import ConfigError, PrivtangentError
from privtangent.finetune import NonLinearViT
from privtangent.tangent import REGIMES, TangentViT, UnsupportedLayerError, linearize
from privtangent.tangent.primal_cache import (
    PrimalCache,
    build_primal_cache,
    cached_forward,
    cached_jvp,
)
from privtangent.tangent.reference import finite_difference, reference_jvp, whole_model_jvp
from tests.conftest import make_tiny_vit

DTYPE = torch.float64


# Three tiny ViTs that differ in every dimension linearize must handle.
CONFIGS = {
    # depth 2, 2 heads, 7×7 patches of 28×28×1, token pooling, qkv bias, no LayerScale
    "tok28": dict(),
    # depth 3, 3 heads, 4×4 patches of 16×16×3, average pooling (fc_norm, norm = Identity),
    # no qkv bias, LayerScale
    "avg16": dict(embed_dim=24, depth=3, num_heads=3, img_size=16, patch_size=4, in_chans=3,
                  global_pool="avg", qkv_bias=False, init_values=0.1),
    # depth 2, 4 heads, 8×8 patches of 24×24×2, token pooling, qk_norm, LayerScale, MLP ratio 2,
    # two register tokens after the CLS token
    "qkn24": dict(embed_dim=16, depth=2, num_heads=4, img_size=24, patch_size=8, in_chans=2,
                  qk_norm=True, init_values=1e-2, mlp_ratio=2.0, reg_tokens=2),
}


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm().clamp_min(1e-300)).item()


def _model(config: str) -> nn.Module:
    model = make_tiny_vit(seed=1, **{**CONFIGS, **EXTRA_CONFIGS}[config]).to(DTYPE)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():  # move LayerNorm/LayerScale/bias parameters off their init values
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=DTYPE) * 0.02)
    return model


# Used by the primal-cache tests only: token pooling with LayerScale, fc_norm and no qkv bias.
EXTRA_CONFIGS = {"tok28_ls": dict(embed_dim=24, num_heads=3, qkv_bias=False, init_values=0.1, fc_norm=True)}

_MODELS: dict[str, nn.Module] = {}


def model_for(config: str) -> nn.Module:
    """The config's model (float64, built once per session; tests never modify it)."""
    if config not in _MODELS:
        _MODELS[config] = _model(config)
    return _MODELS[config]


def images_for(model: nn.Module, batch: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    c, (h, w) = model.patch_embed.proj.in_channels, model.patch_embed.img_size
    return torch.randn(batch, c, h, w, generator=g, dtype=DTYPE)


def random_delta(tm: TangentViT, seed: int = 0, scale: float = 0.05) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {n: torch.randn(t.shape, generator=g, dtype=t.dtype) * scale for n, t in tm.named_deltas().items()}


# -- exactness against the references ---------------------------------------------------------------
@pytest.mark.parametrize(("config", "blocks"), list(itertools.product(CONFIGS, (1, 2))))
def test_matches_references_every_regime_reset_cls(config, blocks):
    model = model_for(config)
    x = images_for(model)
    for regime, reset, linearize_cls in itertools.product(REGIMES, (False, True), (False, True)):
        case = f"{config} blocks={blocks} regime={regime} reset={reset} cls={linearize_cls}"
        tm = linearize(model, blocks=blocks, regime=regime, reset=reset, linearize_cls=linearize_cls, seed=3)
        delta = random_delta(tm, seed=blocks)
        tm.load_delta(delta)
        primal, tangent = tm(x, output="pair")
        ref_primal, ref_tangent = reference_jvp(tm, x, delta)
        assert rel_err(primal, ref_primal) <= 1e-9, case
        assert rel_err(tangent, ref_tangent) <= 1e-9, f"{case}: {rel_err(tangent, ref_tangent):.2e}"
        fd = finite_difference(tm, x, delta, h=1e-5)
        assert rel_err(tangent, fd) <= 1e-6, f"{case}: finite difference {rel_err(tangent, fd):.2e}"
        if not reset and not linearize_cls:
            whole_primal, whole_tangent = whole_model_jvp(model, x, delta)
            assert rel_err(primal, whole_primal) <= 1e-9, case
            assert rel_err(tangent, whole_tangent) <= 1e-9, case
        torch.testing.assert_close(tm(x), primal + tangent, rtol=0, atol=0)


def test_whole_model_jvp_of_unlinearized_parameters_is_not_ours():
    """A sanity check of the references themselves: the whole-model jvp along a frozen-block
    direction is non-zero, so agreement above is not vacuous."""
    model = model_for("tok28")
    x = images_for(model)
    params = dict(model.named_parameters())
    _, tangent = whole_model_jvp(model, x, {"blocks.0.attn.qkv.weight": torch.ones_like(params["blocks.0.attn.qkv.weight"])})
    assert tangent.abs().max() > 1e-3


# -- linearity, start point, output modes ------------------------------------------------------------
@pytest.mark.parametrize("config", list(CONFIGS))
def test_linear_in_delta(config):
    model = model_for(config)
    x = images_for(model)
    tm = linearize(model, blocks=2, regime="full", reset=True, linearize_cls=config != "avg16", seed=0)
    f0 = tm(x).clone()
    d1, d2 = random_delta(tm, 1, scale=1.0), random_delta(tm, 2, scale=1.0)
    tm.load_delta(d1)
    f1 = tm(x)
    tm.load_delta(d2)
    f2 = tm(x)
    tm.load_delta({n: d1[n] + d2[n] for n in d1})
    f12 = tm(x)
    lhs, rhs = f12 - f0, (f1 - f0) + (f2 - f0)
    assert (lhs - rhs).norm() <= 1e-10 * lhs.norm()
    tm.load_delta({n: 3.0 * d1[n] for n in d1})  # homogeneity
    assert (tm(x) - f0 - 3.0 * (f1 - f0)).norm() <= 1e-10 * (f1 - f0).norm() * 3


@pytest.mark.parametrize("config", list(CONFIGS))
def test_delta_starts_at_zero_and_output_equals_base(config):
    model = model_for(config)
    x = images_for(model)
    tm = linearize(model, blocks=1)
    assert all(torch.count_nonzero(t) == 0 for t in tm.delta_parameters())
    with torch.no_grad():
        expected = model(x)  # timm's own forward (fused attention kernel)
    assert rel_err(tm(x), expected) <= 1e-12
    assert torch.count_nonzero(tm(x, output="jvp")) == 0


def test_output_modes():
    model = model_for("tok28")
    x = images_for(model)
    tm = linearize(model, blocks=2, regime="bitfit")
    tm.load_delta(random_delta(tm))
    primal, tangent = tm(x, output="pair")
    assert rel_err(primal, model(x)) <= 1e-12  # pair's first element is f_w(x), Δw-independent
    torch.testing.assert_close(tm(x, output="jvp"), tangent, rtol=0, atol=0)
    torch.testing.assert_close(tm(x, output="full"), primal + tangent, rtol=0, atol=0)
    with pytest.raises(ConfigError, match="output must be one of"):
        tm(x, output="logits")


def test_only_delta_is_trainable_and_base_untouched():
    model = model_for("avg16")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng_before = torch.get_rng_state()
    tm = linearize(model, blocks=2, regime="full", reset=True, seed=5)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the reset is seeded, global RNG untouched
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # model was copied
    trainable = [p for p in tm.parameters() if p.requires_grad]
    assert {id(p) for p in trainable} == {id(p) for p in tm.delta_parameters()}
    # reset uses PyTorch's default init (Kaiming-uniform Linear, unit LayerNorm), reproducibly
    block = tm.base.blocks[-1]
    assert block.attn.qkv.weight.abs().max() <= 1 / block.attn.qkv.in_features ** 0.5
    assert torch.equal(block.norm1.weight, torch.ones_like(block.norm1.weight))
    again = linearize(model, blocks=2, regime="full", reset=True, seed=5)
    other = linearize(model, blocks=2, regime="full", reset=True, seed=6)
    assert torch.equal(again.base.blocks[-1].attn.qkv.weight, block.attn.qkv.weight)
    assert not torch.equal(other.base.blocks[-1].attn.qkv.weight, block.attn.qkv.weight)
    assert torch.equal(tm.base.blocks[0].attn.qkv.weight, model.blocks[0].attn.qkv.weight)  # frozen prefix kept


# -- frozen blocks carry no tangent -------------------------------------------------------------------
@pytest.mark.parametrize("linearize_cls", [False, True])
def test_tangent_starts_at_first_linearized_block(monkeypatch, linearize_cls):
    model = model_for("tok28")
    x = images_for(model)
    tm = linearize(model, blocks=1, linearize_cls=linearize_cls)
    delta = random_delta(tm)
    tm.load_delta(delta)
    calls = []
    real = vit_module.tangent_forward

    def spy(module, x_in, xdot, deltas, **options):
        calls.append((module, xdot))
        return real(module, x_in, xdot, deltas, **options)

    monkeypatch.setattr(vit_module, "tangent_forward", spy)
    tm(x)
    modules = [m for m, _ in calls]
    base = tm.base
    assert modules == [base.blocks[1], base.norm, base.fc_norm, base.head]  # no frozen block is run
    entering = calls[0][1]
    if not linearize_cls:
        assert entering is None  # ẋ = 0 enters the first linearized block
    else:  # only the fresh CLS token carries a tangent: Δcls on row 0, zero elsewhere
        torch.testing.assert_close(entering[:, 0], delta["cls_token"][0].expand(len(x), -1), rtol=0, atol=0)
        assert torch.count_nonzero(entering[:, 1:]) == 0


# -- Δw names --------------------------------------------------------------------------------------------
def test_delta_state_dict_uses_base_names():
    model = model_for("tok28")  # depth 2
    names = [n for n, _ in model.named_parameters()]
    expected = {
        "full": [n for n in names if n.startswith(("blocks.1.", "norm.", "head."))],
        "bitfit": [n for n in names if n.startswith(("blocks.1.", "norm.")) and n.endswith(".bias")
                   or n.startswith("head.")],
        "layernorm": [n for n in names if n.startswith(("blocks.1.norm1.", "blocks.1.norm2.", "norm.", "head."))],
        "fc": ["head.weight", "head.bias"],
    }
    for regime, names_expected in expected.items():
        tm = linearize(model, blocks=1, regime=regime)
        state = tm.delta_state_dict()
        assert list(state) == names_expected, regime
        params = dict(model.named_parameters())
        assert all(state[n].shape == params[n].shape for n in state)
    full = linearize(model, blocks=1).delta_state_dict()
    assert {"blocks.1.attn.qkv.weight", "norm.bias", "head.weight"} <= set(full)
    two = linearize(model, blocks=2, regime="full").delta_state_dict()
    assert "blocks.0.mlp.fc2.weight" in two and not any(n.startswith("patch_embed") for n in two)
    cls = linearize(model, blocks=1, regime="fc", linearize_cls=True).delta_state_dict()
    assert list(cls) == ["cls_token", "head.weight", "head.bias"] and cls["cls_token"].shape == (1, 1, 32)
    ls = linearize(model_for("avg16"), blocks=1, regime="layernorm").delta_state_dict()
    assert "fc_norm.weight" in ls and "blocks.2.ls1.gamma" not in ls and "blocks.2.norm1.bias" in ls
    assert "blocks.2.ls1.gamma" in linearize(model_for("avg16"), blocks=1).delta_state_dict()
    qkn = linearize(model_for("qkn24"), blocks=1, regime="layernorm").delta_state_dict()
    assert "blocks.1.attn.q_norm.weight" in qkn


def test_delta_state_dict_is_a_copy_and_load_round_trips():
    model = model_for("qkn24")
    x = images_for(model)
    tm = linearize(model, blocks=2, regime="full", linearize_cls=True)
    tm.load_delta(random_delta(tm, 7))
    state = tm.delta_state_dict()
    out = tm(x)
    for t in state.values():
        t.zero_()  # mutating the copy must not touch the model
    assert torch.equal(tm(x), out)
    state = tm.delta_state_dict()
    fresh = linearize(model, blocks=2, regime="full", linearize_cls=True)
    fresh.load_delta(state)
    assert torch.equal(fresh(x), out)
    assert all(torch.equal(fresh.delta_state_dict()[n], state[n]) for n in state)


def test_load_delta_rejects_wrong_keys_and_shapes():
    model = model_for("tok28")
    tm = linearize(model, blocks=1, regime="bitfit")
    good = random_delta(tm)
    with pytest.raises(PrivtangentError, match="blocks.0.attn.qkv.bias"):  # a frozen block's name
        tm.load_delta({**good, "blocks.0.attn.qkv.bias": torch.zeros(96, dtype=DTYPE)})
    with pytest.raises(PrivtangentError, match="blocks.1.attn.qkv.weight"):  # not trained in bitfit
        tm.load_delta({**good, "blocks.1.attn.qkv.weight": torch.zeros(96, 32, dtype=DTYPE)})
    missing = dict(good)
    missing.pop("head.bias")
    with pytest.raises(PrivtangentError, match="missing.*head.bias"):
        tm.load_delta(missing)
    untouched = tm.delta_state_dict()
    with pytest.raises(PrivtangentError, match=r"'head.weight' has shape \(3, 32\), expected \(5, 32\)"):
        tm.load_delta({**good, "head.weight": torch.zeros(3, 32, dtype=DTYPE)})
    assert all(torch.equal(t, untouched[n]) for n, t in tm.delta_state_dict().items())  # nothing half-loaded
    with pytest.raises(PrivtangentError, match="unknown.*blocks_1"):  # ParameterDict-style keys are not names
        tm.load_delta({"blocks_1.attn.qkv.bias": torch.zeros(96)}, strict=False)
    before = tm.delta_state_dict()
    tm.load_delta({"head.bias": torch.ones(5, dtype=DTYPE)}, strict=False)  # partial, non-strict
    after = tm.delta_state_dict()
    assert torch.equal(after["head.bias"], torch.ones(5, dtype=DTYPE))
    assert torch.equal(after["blocks.1.attn.qkv.bias"], before["blocks.1.attn.qkv.bias"])


def test_nonlinear_load_trainable_is_all_or_nothing():
    nl = NonLinearViT(model_for("tok28"), blocks=1, regime="bitfit")
    state = {n: torch.ones_like(t) for n, t in nl.trainable_state_dict().items()}
    before = nl.trainable_state_dict()
    with pytest.raises(PrivtangentError, match="'head.bias' has shape"):
        nl.load_trainable({**state, "head.bias": torch.ones(3, dtype=DTYPE)})
    assert all(torch.equal(t, before[n]) for n, t in nl.trainable_state_dict().items())
    nl.load_trainable(state)
    assert all(torch.equal(t, state[n]) for n, t in nl.trainable_state_dict().items())


# -- bad input -------------------------------------------------------------------------------------------
def test_rejects_non_vit_models():
    with pytest.raises(PrivtangentError, match="timm VisionTransformer.*Sequential"):
        linearize(nn.Sequential(nn.Linear(3, 3)))
    with pytest.raises(PrivtangentError, match="timm VisionTransformer"):
        NonLinearViT(nn.Linear(3, 3))


@pytest.mark.parametrize("blocks", [0, -1, 3, True, 1.0, "1", None])
def test_rejects_bad_block_counts(blocks):
    with pytest.raises(ConfigError, match=r"blocks must be an integer in \[1, 2\]"):
        linearize(model_for("tok28"), blocks=blocks)


def test_rejects_unknown_regime():
    with pytest.raises(ConfigError, match="unknown regime 'lora'.*full, bitfit, layernorm, fc"):
        linearize(model_for("tok28"), regime="lora")


def test_rejects_unsupported_models():
    with pytest.raises(UnsupportedLayerError, match="ReLU"):
        linearize(make_tiny_vit(act_layer=nn.ReLU))
    with pytest.raises(PrivtangentError, match="global_pool='map'"):
        linearize(make_tiny_vit(global_pool="map"))
    no_cls = make_tiny_vit(class_token=False, global_pool="avg")
    linearize(no_cls)  # fine without the CLS option
    with pytest.raises(ConfigError, match="class token"):
        linearize(no_cls, linearize_cls=True)  # would otherwise overwrite patch token 0
    with pytest.raises(ConfigError, match="class token"):
        NonLinearViT(no_cls, linearize_cls=True)


# -- primal cache: only the tangent per training step ---------------------------------------------------
@pytest.mark.parametrize("config", ["tok28", "tok28_ls"])
@pytest.mark.parametrize("reset", [False, True])
def test_primal_cache_equals_full_tangent(config, reset):
    model = model_for(config)
    x = images_for(model, batch=5)
    for regime in REGIMES:
        tm = linearize(model, blocks=1, regime=regime, reset=reset)
        tm.load_delta(random_delta(tm, 11, scale=1.0))
        features = tm.prefix(x)
        cache = build_primal_cache(tm, features, batch_size=2)
        assert isinstance(cache, PrimalCache) and len(cache) == 5
        primal, tangent = tm.forward_features(features, output="pair")
        c_primal, c_tangent = cached_forward(tm, cache, output="pair")
        assert rel_err(c_primal, primal) <= 1e-13, regime
        assert rel_err(c_tangent, tangent) <= 1e-13, regime
        assert rel_err(cached_forward(tm, cache), primal + tangent) <= 1e-13
        assert rel_err(cached_jvp(tm, cache[1:3]), tangent[1:3]) <= 1e-13  # batches of the cache


def test_primal_cache_gradients_equal_full_path_float32():
    """A training step on the cache gives the same Δw gradients as the full tangent forward."""
    model = make_tiny_vit(seed=2)
    x = torch.randn(6, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    tm = linearize(model, blocks=1, regime="full", reset=True)
    tm.load_delta({n: t * 0.1 for n, t in random_delta(tm, 3).items()})
    features = tm.prefix(x)
    cache = build_primal_cache(tm, features)
    grads = []
    for forward in (lambda: tm.forward_features(features), lambda: cached_forward(tm, cache)):
        tm.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(forward(), y).backward()
        grads.append({n: p.grad.clone() for n, p in tm.named_deltas().items()})
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-4, atol=1e-6, msg=name)


def test_primal_cache_refuses_what_it_cannot_do():
    model = model_for("tok28")
    x = images_for(model)
    with pytest.raises(ConfigError, match="blocks=1"):
        build_primal_cache(linearize(model, blocks=2), x)
    with pytest.raises(ConfigError, match="linearize_cls"):
        build_primal_cache(linearize(model, linearize_cls=True), x)
    with pytest.raises(ConfigError, match="token-pooled"):
        build_primal_cache(linearize(model_for("avg16")), x)
    with pytest.raises(UnsupportedLayerError, match="qk_norm"):
        build_primal_cache(linearize(model_for("qkn24")), x)
