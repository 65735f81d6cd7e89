"""Reference tangent path: ``torch.func.jvp`` of the plain timm forward (tests only).

Forward-mode AD has no rule for PyTorch's fused attention kernels, so the reference runs
timm's math attention path (``fused_attn = False``). It differentiates the very function
the closed form claims to linearize: the linearized part of the (possibly reset) base
model, with the CLS substitution when the CLS token is linearized.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping

import torch
from timm.layers import Attention
from torch import Tensor, nn
from torch.func import functional_call, jvp

from privtangent.tangent.vit import TangentViT


@contextlib.contextmanager
def math_attention(model: nn.Module) -> Iterator[None]:
    """Temporarily switch every timm Attention to the explicit softmax path."""
    saved = [(m, m.fused_attn) for m in model.modules() if isinstance(m, Attention)]
    # timm declares fused_attn Final (a TorchScript constant); eager mode reads it on every call
    for m, _ in saved:
        m.fused_attn = False  # type: ignore[misc]
    try:
        yield
    finally:
        for m, flag in saved:
            m.fused_attn = flag  # type: ignore[misc]


def plain_function(tm: TangentViT, features: Tensor) -> Callable[[Mapping[str, Tensor]], Tensor]:
    """params (base names → values of the trained parameters) ↦ logits, via timm's modules."""
    base = tm.base

    def run(params: Mapping[str, Tensor]) -> Tensor:
        full: dict[str, Tensor] = dict(base.named_parameters())
        full.update({k: v for k, v in params.items() if k != "cls_token"})
        x = features
        if tm.linearize_cls:
            token = params["cls_token"].expand(x.shape[0], 1, -1)
            x = torch.cat([token, x[:, 1:]], dim=1)

        def part(x: Tensor) -> Tensor:
            for block in base.blocks[tm.start :]:
                x = block(x)
            return base.forward_head(base.norm(x))

        with math_attention(base), _reparametrized(base, full):
            return part(x)

    return run


@contextlib.contextmanager
def _reparametrized(module: nn.Module, params: Mapping[str, Tensor]) -> Iterator[None]:
    with torch.nn.utils.stateless._reparametrize_module(module, dict(params)):
        yield


def linearization_point(tm: TangentViT) -> dict[str, Tensor]:
    """w for every trained name (the CLS anchor for ``cls_token``)."""
    params = dict(tm.base.named_parameters())
    return {n: (tm.cls_anchor if n == "cls_token" else params[n]).detach() for n in tm.delta_names}


def reference_jvp(tm: TangentViT, x: Tensor, delta: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
    """(f_w(x), J·Δw) by ``torch.func.jvp`` along the parameter direction Δw."""
    names = list(tm.delta_names)
    run = plain_function(tm, tm.prefix(x))
    w = linearization_point(tm)
    f = lambda *values: run(dict(zip(names, values)))  # noqa: E731
    primal_tangent = jvp(f, tuple(w[n] for n in names), tuple(delta[n] for n in names))
    return primal_tangent[0], primal_tangent[1]  # (the 3-tuple is only with has_aux=True)


def finite_difference(tm: TangentViT, x: Tensor, delta: Mapping[str, Tensor], h: float = 1e-5) -> Tensor:
    """Central difference (f(w + hΔ) − f(w − hΔ)) / 2h ≈ J·Δw."""
    run = plain_function(tm, tm.prefix(x))
    w = linearization_point(tm)
    plus = run({n: w[n] + h * delta[n] for n in w})
    minus = run({n: w[n] - h * delta[n] for n in w})
    return (plus - minus) / (2 * h)


def whole_model_jvp(model: nn.Module, x: Tensor, delta: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
    """``jvp`` of ``functional_call(model, params, x)``: the end-to-end reference."""
    names = list(delta)
    params = dict(model.named_parameters())

    def f(*values: Tensor) -> Tensor:
        return functional_call(model, {**params, **dict(zip(names, values))}, (x,))

    with math_attention(model):
        primal_tangent = jvp(f, tuple(params[n].detach() for n in names), tuple(delta[n] for n in names))
    return primal_tangent[0], primal_tangent[1]  # (the 3-tuple is only with has_aux=True)
