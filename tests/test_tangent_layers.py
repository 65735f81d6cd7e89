"""Each closed-form tangent rule against ``torch.func.jvp`` and a central finite difference.

For a layer y = m(x; w), the rule must return (y, ẏ) with ẏ = J_x·ẋ + J_w·Δw, the directional
derivative along (ẋ, Δw) (paper eq. 5). Everything runs in float64 on timm's own modules with
the math attention kernel (``fused_attn = False``) for the reference, and checks:

- ẏ against ``torch.func.jvp`` of the plain module: relative error ≤ 1e-9;
- ẏ against (m(x + hẋ; w + hΔw) − m(x − hẋ; w − hΔw)) / 2h: relative error ≤ 1e-6;
- y against the plain module's output;

for three tangent patterns: (ẋ, every Δw), ẋ only (frozen layer inside the linearized part),
and Δw only with ẋ = None (the first linearized block, whose input carries no tangent).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from timm.layers import Attention, DropPath, LayerScale, Mlp
from timm.models.vision_transformer import Block
from torch import nn
from torch.func import functional_call, jvp

from privtangent.tangent import Deltas, UnsupportedLayerError, tangent_forward
from privtangent.tangent.layers import gelu_derivative, gelu_jvp, layer_norm_jvp, softmax_jvp

DTYPE = torch.float64


JVP_TOL = 1e-9
FD_TOL = 1e-6
FD_STEP = 1e-5


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm().clamp_min(1e-300)).item()


def _randn(shape, generator, scale=1.0):
    return torch.randn(shape, generator=generator, dtype=DTYPE) * scale


def _math_attention(module: nn.Module) -> nn.Module:
    for sub in module.modules():
        if isinstance(sub, Attention):
            sub.fused_attn = False
    return module


def _perturb_params(module: nn.Module, generator: torch.Generator) -> None:
    """Move parameters off their init (LayerNorm γ = 1, β = 0; LayerScale γ = 1e-5) so every
    term of the rule is exercised with generic values."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(_randn(p.shape, generator, 0.1))


def check_rule(module: nn.Module, x_shape, *, pattern: str, cls_only: bool = False, seed: int = 0):
    """Compare ``tangent_forward(module, ...)`` with jvp and a central difference."""
    g = torch.Generator().manual_seed(seed)
    module = _math_attention(module.to(DTYPE).eval())
    _perturb_params(module, g)
    params = {n: p.detach() for n, p in module.named_parameters()}
    x = _randn(x_shape, g)
    xdot = None if pattern == "w_only" else _randn(x_shape, g)
    names = [] if pattern == "x_only" else list(params)
    delta = {n: _randn(params[n].shape, g, 0.5) for n in names}

    y, ydot = tangent_forward(module, x, xdot, Deltas(delta), cls_only=cls_only)

    def f(x_in, *values):
        out = functional_call(module, {**params, **dict(zip(names, values))}, (x_in,))
        return out[:, :1] if cls_only else out

    primals = (x, *(params[n] for n in names))
    tangents = (torch.zeros_like(x) if xdot is None else xdot, *(delta[n] for n in names))
    ref_y, ref_ydot = jvp(f, primals, tangents)
    plus = f(*(p + FD_STEP * t for p, t in zip(primals, tangents)))
    minus = f(*(p - FD_STEP * t for p, t in zip(primals, tangents)))
    fd = (plus - minus) / (2 * FD_STEP)

    assert y.shape == ref_y.shape and ydot is not None and ydot.shape == ref_ydot.shape
    assert rel_err(y, ref_y) <= 1e-12
    assert rel_err(ydot, ref_ydot) <= JVP_TOL, f"jvp mismatch {rel_err(ydot, ref_ydot):.2e}"
    assert rel_err(ydot, fd) <= FD_TOL, f"finite-difference mismatch {rel_err(ydot, fd):.2e}"
    return ydot


D, HEADS, TOKENS, BATCH = 12, 3, 7, 2

LAYERS = {
    "linear": (lambda: nn.Linear(D, 9), (BATCH, TOKENS, D), {}),
    "linear_nobias": (lambda: nn.Linear(D, 9, bias=False), (BATCH, TOKENS, D), {}),
    "layernorm": (lambda: nn.LayerNorm(D, eps=1e-6), (BATCH, TOKENS, D), {}),
    "layernorm_noaffine": (lambda: nn.LayerNorm(D, elementwise_affine=False), (BATCH, TOKENS, D), {}),
    "gelu": (lambda: nn.GELU(), (BATCH, TOKENS, D), {}),
    "gelu_tanh": (lambda: nn.GELU(approximate="tanh"), (BATCH, TOKENS, D), {}),
    "layerscale": (lambda: LayerScale(D, init_values=1e-5), (BATCH, TOKENS, D), {}),
    "identity": (lambda: nn.Identity(), (BATCH, TOKENS, D), {}),
    "dropout_eval": (lambda: nn.Dropout(0.5), (BATCH, TOKENS, D), {}),
    "droppath_eval": (lambda: DropPath(0.3), (BATCH, TOKENS, D), {}),
    "attention": (lambda: Attention(D, num_heads=HEADS, qkv_bias=True), (BATCH, TOKENS, D), {}),
    "attention_nobias": (lambda: Attention(D, num_heads=HEADS, qkv_bias=False), (BATCH, TOKENS, D), {}),
    "attention_qk_norm": (
        lambda: Attention(D, num_heads=HEADS, qkv_bias=True, qk_norm=True, norm_layer=nn.LayerNorm),
        (BATCH, TOKENS, D), {}),
    "attention_scale_norm": (
        lambda: Attention(D, num_heads=HEADS, scale_norm=True, norm_layer=nn.LayerNorm), (BATCH, TOKENS, D), {}),
    "attention_cls_only": (lambda: Attention(D, num_heads=HEADS, qkv_bias=True), (BATCH, TOKENS, D),
                           {"cls_only": True}),
    "attention_cls_only_qk_norm": (
        lambda: Attention(D, num_heads=HEADS, qk_norm=True, norm_layer=nn.LayerNorm), (BATCH, TOKENS, D),
        {"cls_only": True}),
    "mlp": (lambda: Mlp(D, 2 * D), (BATCH, TOKENS, D), {}),
    "mlp_tanh_norm": (lambda: Mlp(D, 2 * D, act_layer=lambda: nn.GELU(approximate="tanh"), norm_layer=nn.LayerNorm),
                      (BATCH, TOKENS, D), {}),
    "block": (lambda: Block(D, HEADS, mlp_ratio=2.0, qkv_bias=True), (BATCH, TOKENS, D), {}),
    "block_layerscale": (lambda: Block(D, HEADS, mlp_ratio=2.0, init_values=1e-5), (BATCH, TOKENS, D), {}),
    "block_qk_norm": (lambda: Block(D, HEADS, qkv_bias=True, qk_norm=True, init_values=0.1), (BATCH, TOKENS, D), {}),
    "block_scale_norms": (lambda: Block(D, HEADS, scale_attn_norm=True, scale_mlp_norm=True), (BATCH, TOKENS, D), {}),
    "block_cls_only": (lambda: Block(D, HEADS, qkv_bias=True, init_values=0.1), (BATCH, TOKENS, D),
                       {"cls_only": True}),
    "block_cls_only_qk_norm": (lambda: Block(D, HEADS, qk_norm=True), (BATCH, TOKENS, D), {"cls_only": True}),
}


PARAMETER_FREE = {"layernorm_noaffine", "gelu", "gelu_tanh", "identity", "dropout_eval", "droppath_eval"}
CASES = [(layer, pattern) for layer in LAYERS for pattern in ("x_and_w", "x_only", "w_only")
         if not (pattern == "w_only" and layer in PARAMETER_FREE)]


@pytest.mark.parametrize(("layer", "pattern"), CASES)
def test_rule_matches_jvp_and_finite_difference(layer, pattern):
    make, shape, opts = LAYERS[layer]
    torch.manual_seed(0)
    check_rule(make(), shape, pattern=pattern, seed=list(LAYERS).index(layer), **opts)


def test_partial_deltas_are_zero_tangents():
    """A parameter without a Δ (not trained in the regime) contributes nothing: the rule
    equals jvp with a zero tangent for it (here: BitFit-like, biases only)."""
    torch.manual_seed(1)
    block = _math_attention(Block(D, HEADS, qkv_bias=True, init_values=0.1).to(DTYPE).eval())
    g = torch.Generator().manual_seed(3)
    params = {n: p.detach() for n, p in block.named_parameters()}
    delta = {n: _randn(p.shape, g) if n.endswith(".bias") else torch.zeros_like(p) for n, p in params.items()}
    x = _randn((BATCH, TOKENS, D), g)
    _, ours = tangent_forward(block, x, None, Deltas({n: t for n, t in delta.items() if n.endswith(".bias")}))
    _, ref = jvp(lambda *v: functional_call(block, dict(zip(params, v)), (x,)),
                 tuple(params.values()), tuple(delta.values()))
    assert rel_err(ours, ref) <= JVP_TOL


def test_zero_tangent_stays_none():
    """ẋ = None and no Δ: the rule returns no tangent at all (frozen layers cost nothing extra)."""
    block = Block(D, HEADS).eval()
    x = torch.randn(BATCH, TOKENS, D)
    y, ydot = tangent_forward(block, x, None, Deltas({}))
    assert ydot is None
    block.attn.fused_attn = False
    torch.testing.assert_close(y, block(x), rtol=1e-5, atol=1e-6)


def test_softmax_tangent_is_row_wise_jacobian():
    """Ṗ = P ⊙ (Ṡ − Σ P Ṡ) equals (diag(p) − p pᵀ) ṡ per row (paper eq. 6) and jvp of softmax."""
    g = torch.Generator().manual_seed(0)
    s, sdot = _randn((2, 3, 5, 6), g), _randn((2, 3, 5, 6), g)
    p, pdot = softmax_jvp(s, sdot)
    _, ref = jvp(lambda t: t.softmax(-1), (s,), (sdot,))
    assert rel_err(pdot, ref) <= 1e-12
    row_p, row_s = p[0, 0, 0], sdot[0, 0, 0]
    dense = (torch.diag(row_p) - torch.outer(row_p, row_p)) @ row_s
    assert rel_err(pdot[0, 0, 0], dense) <= 1e-12
    torch.testing.assert_close(pdot.sum(-1), torch.zeros_like(pdot.sum(-1)), atol=1e-14, rtol=0)
    assert softmax_jvp(s, None)[1] is None


def test_layer_norm_jvp_keeps_eps():
    """The tangent is the derivative of the primal actually computed (with eps), even when the
    variance is small enough for eps to matter."""
    g = torch.Generator().manual_seed(0)
    x, xdot = _randn((4, 8), g, 1e-3), _randn((4, 8), g, 1e-3)
    w, b = _randn((8,), g), _randn((8,), g)
    eps = 1e-5
    _, ours = layer_norm_jvp(x, xdot, w, b, None, None, eps)
    _, ref = jvp(lambda t: F.layer_norm(t, (8,), w, b, eps), (x,), (xdot,))
    assert rel_err(ours, ref) <= 1e-10


# -- GELU: the exact derivative, and why the published form is wrong at 0 -------------------------
def _published_gelu_tangent(x: torch.Tensor, xdot: torch.Tensor) -> torch.Tensor:
    """Paper eq. 12 as published: (GELU(x)/x + x·φ(x))·ẋ."""
    pdf = torch.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    return (F.gelu(x) / x + x * pdf) * xdot


def test_gelu_tangent_at_zero_is_half_xdot():
    x = torch.zeros(4, dtype=DTYPE)
    xdot = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=DTYPE)
    for approximate in ("none", "tanh"):
        y, ydot = gelu_jvp(x, xdot, approximate)
        assert torch.equal(y, torch.zeros_like(x))
        assert torch.equal(ydot, 0.5 * xdot)  # GELU'(0) = Φ(0) + 0·φ(0) = ½ exactly
        _, ref = jvp(lambda t: F.gelu(t, approximate=approximate), (x,), (xdot,))
        assert torch.equal(ydot, ref)
    # The published form is 0/0 at x = 0: GELU(0)/0 = nan, so every tangent through a
    # pre-activation that is exactly 0 (ReLU-like sparsity, zero padding) would be nan.
    published = _published_gelu_tangent(x, xdot)
    assert torch.isnan(published).all()
    # GELU(x)/x = Φ(x) for x ≠ 0, so both forms agree everywhere else.
    xs = torch.tensor([-6.0, -1.0, -1e-8, 1e-8, 0.3, 2.0, 7.0], dtype=DTYPE)
    ones = torch.ones_like(xs)
    torch.testing.assert_close(_published_gelu_tangent(xs, ones), gelu_jvp(xs, ones)[1], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_derivative_matches_autograd(approximate):
    xs = torch.cat([torch.linspace(-10, 10, 2001, dtype=DTYPE), torch.zeros(1, dtype=DTYPE)]).requires_grad_(True)
    (grad,) = torch.autograd.grad(F.gelu(xs, approximate=approximate).sum(), xs)
    torch.testing.assert_close(gelu_derivative(xs.detach(), approximate), grad, rtol=1e-12, atol=1e-14)


def test_unsupported_layer_is_named():
    with pytest.raises(UnsupportedLayerError, match="ReLU"):
        tangent_forward(nn.ReLU(), torch.zeros(2, 3), None, Deltas({}))


def test_gated_attention_is_refused():
    m = Attention(D, num_heads=HEADS)
    m.gate = nn.Linear(D, D)  # the gated variant of newer timm versions
    with pytest.raises(UnsupportedLayerError, match="gated"):
        tangent_forward(m, torch.zeros(1, 3, D), None, Deltas({}))
