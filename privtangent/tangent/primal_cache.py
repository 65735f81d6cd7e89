"""Primal cache: train the last block of a tangent ViT by computing only the tangent per step.

When only the last block of a token-pooled ViT is linearized (``blocks=1``, no CLS
linearization), no tangent enters it (ẋ = 0) and its primal activations are fixed functions
of the sample. They can be computed once per data set, like the prefix features; a training
step then evaluates only J·Δw. For the CLS row that the output reads, with x̂ the normalized
block input (LN₁ statistics), h = γ₁ ⊙ x̂ + β₁, per head h with query q (CLS row only):

    q̇  = ΔW_q h₀ + Δb_q + W_q (Δγ₁ ⊙ x̂₀ + Δβ₁)
    Ṡₙ = scale · ρ · x̂ₙ + c,   ρ = γ₁ ⊙ (W_kᵀ q̇ + ΔW_kᵀ q) + Δγ₁ ⊙ (W_kᵀ q)
    Ṗ  = P ⊙ (Ṡ − Σₙ Pₙ Ṡₙ)                               (the constant c drops out)
    Ȯ  = W_v (γ₁ ⊙ Σₙ Ṗₙ x̂ₙ + Δγ₁ ⊙ z + Δβ₁) + ΔW_v (γ₁ ⊙ z + β₁) + Δb_v,   z = Σₙ Pₙ x̂ₙ

(the key bias Δb_k and every other per-row constant of Ṡ cancel in the softmax tangent;
Σₙ Ṗₙ = 0 removes β₁ and b_v from Ṗ V). So the keys and values of the N tokens are never
recomputed: a step costs O(H·N·D + D²) per sample instead of O(N·D²). The cached tensors
are x̂ (the size of the features), the CLS row's attention probabilities P, q, W_kᵀq, z, and
the inputs (or LN statistics, GELU derivatives) of every layer after the attention, which
only see the CLS row. The rest of the block, the final norm and the head reuse the closed
forms of ``privtangent.tangent.layers`` with their primal inputs read from the cache.

The cache is valid for the ``TangentViT`` it was built from (its anchor weights never change;
Δw may change freely). ``cached_forward(tm, cache)`` equals ``tm.forward_features(features)``
to float precision (tests/test_linearize.py checks it).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import cast

import torch
import torch.nn.functional as F
from timm.layers import Attention, DropPath, LayerScale
from torch import Tensor, nn

from privtangent.errors import ConfigError, PrivtangentError
from privtangent.tangent.layers.elementwise import layer_scale_tangent
from privtangent.tangent.layers.gelu import gelu_derivative
from privtangent.tangent.layers.layernorm import layer_norm_tangent
from privtangent.tangent.layers.linear import linear_tangent
from privtangent.tangent.registry import Deltas, Tangent, UnsupportedLayerError, add
from privtangent.tangent.vit import OUTPUTS, TangentViT

_IDENTITY = (nn.Identity, nn.Dropout, DropPath)


class PrimalCache:
    """Per-sample primal quantities of a ``TangentViT``'s last block (CLS row), batch-first."""

    def __init__(self, tensors: Mapping[str, Tensor], start: int) -> None:
        sizes = {t.shape[0] for t in tensors.values()}
        if len(sizes) > 1:
            raise PrivtangentError(f"primal cache tensors disagree on the number of samples: {sorted(sizes)}")
        self.tensors = dict(tensors)
        self.start = start

    def __len__(self) -> int:
        return next(iter(self.tensors.values())).shape[0] if self.tensors else 0

    def __getitem__(self, index) -> "PrimalCache":
        """The rows ``index`` (a slice, an index tensor or a boolean mask)."""
        return PrimalCache({k: v[index] for k, v in self.tensors.items()}, self.start)

    @property
    def logits(self) -> Tensor:
        """f_w(x): the base model's output (of the linearization point)."""
        return self.tensors["logits"]

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors.values())


def check_supported(tm: TangentViT) -> None:
    """Raise a ``PrivtangentError`` naming why ``tm`` cannot use a primal cache."""
    if not isinstance(tm, TangentViT):
        raise PrivtangentError(f"a primal cache needs a TangentViT, got {type(tm).__name__}")
    if tm.blocks != 1:
        raise ConfigError(f"a primal cache supports blocks=1 (the last block only), got blocks={tm.blocks}")
    if tm.linearize_cls:
        raise ConfigError("a primal cache does not support linearize_cls=True (a tangent enters the block)")
    if not tm.cls_only:
        raise ConfigError("a primal cache needs a token-pooled ViT (global_pool='token', CLS row only)")
    block = tm.base.blocks[tm.start]
    attn = block.attn
    if not isinstance(attn, Attention):
        raise UnsupportedLayerError(f"a primal cache needs timm's Attention, got {type(attn).__name__}")
    if not isinstance(attn.q_norm, nn.Identity) or not isinstance(attn.k_norm, nn.Identity):
        raise UnsupportedLayerError("a primal cache does not support qk_norm=True")
    if getattr(attn, "gate", None) is not None:
        raise UnsupportedLayerError("a primal cache does not support gated attention")
    if not isinstance(block.norm1, nn.LayerNorm):
        raise UnsupportedLayerError("a primal cache needs a LayerNorm before the attention")


def _attention_and_norm(tm: TangentViT) -> tuple[Attention, nn.LayerNorm]:
    """The last block's attention and the LayerNorm before it (``check_supported`` checked both)."""
    block = tm.base.blocks[tm.start]
    return cast(Attention, block.attn), cast(nn.LayerNorm, block.norm1)


# -- the layers after the attention (CLS row only): primal saves, tangent reads ----------------
def _tail(tm: TangentViT) -> Iterator[tuple[str, nn.Module | None]]:
    """(name, module) of the layers after the attention, in order; ("+", None) marks a residual."""
    base, i = tm.base, tm.start
    block = base.blocks[i]
    for name in ("attn.norm", "attn.proj", "ls1", "drop_path1", "+", "norm2", "mlp.fc1", "mlp.act",
                 "mlp.norm", "mlp.fc2", "ls2", "drop_path2", "+"):
        yield (name, None) if name == "+" else (f"blocks.{i}.{name}", block.get_submodule(name))
    for name in ("norm", "fc_norm", "head"):
        yield name, base.get_submodule(name)


def _primal_step(m: nn.Module, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    if isinstance(m, nn.Linear):
        return F.linear(x, m.weight, m.bias), {"in": x}
    if isinstance(m, nn.LayerNorm):
        centered = x - x.mean(-1, keepdim=True)
        rstd = torch.rsqrt(centered.pow(2).mean(-1, keepdim=True) + m.eps)
        y = F.layer_norm(x, x.shape[-1:], m.weight, m.bias, m.eps)
        return y, {"xhat": centered * rstd, "rstd": rstd}
    if isinstance(m, nn.GELU):
        return F.gelu(x, approximate=m.approximate), {"deriv": gelu_derivative(x, m.approximate)}
    if isinstance(m, LayerScale):
        return x * m.gamma, {"in": x}
    if isinstance(m, _IDENTITY):
        return x, {}
    raise UnsupportedLayerError(f"a primal cache has no rule for {type(m).__name__}")


def _tangent_step(m: nn.Module, saved: Mapping[str, Tensor], xdot: Tangent, d: Deltas) -> Tangent:
    """The layer's output tangent from its cached primal input (same closed forms as layers/)."""
    if isinstance(m, nn.Linear):
        return linear_tangent(saved["in"], xdot, m.weight, d["weight"], d["bias"])
    if isinstance(m, nn.LayerNorm):
        return layer_norm_tangent(saved["xhat"], saved["rstd"], xdot, m.weight, d["weight"], d["bias"])
    if isinstance(m, nn.GELU):
        return None if xdot is None else saved["deriv"] * xdot
    if isinstance(m, LayerScale):
        return layer_scale_tangent(saved["in"], xdot, m.gamma, d["gamma"])
    return xdot  # identity at inference


# -- building the cache ------------------------------------------------------------------------
def _heads_weight(w: Tensor, heads: int, head_dim: int) -> Tensor:
    """(H·d, D) → (H, d, D)."""
    return w.reshape(heads, head_dim, -1)


@torch.no_grad()
def _primal_chunk(tm: TangentViT, x: Tensor) -> dict[str, Tensor]:
    attn, norm1 = _attention_and_norm(tm)
    batch, tokens, _ = x.shape
    heads, head_dim = attn.num_heads, attn.head_dim
    width = heads * head_dim
    w, b = attn.qkv.weight, attn.qkv.bias
    wq, wk, wv = w[:width], w[width : 2 * width], w[2 * width :]
    bq, bk, bv = (None, None, None) if b is None else (b[:width], b[width : 2 * width], b[2 * width :])

    centered = x - x.mean(-1, keepdim=True)
    rstd = torch.rsqrt(centered.pow(2).mean(-1, keepdim=True) + norm1.eps)
    xhat = centered * rstd
    h = F.layer_norm(x, x.shape[-1:], norm1.weight, norm1.bias, norm1.eps)
    q = F.linear(h[:, 0], wq, bq).reshape(batch, heads, head_dim)
    k = F.linear(h, wk, bk).reshape(batch, tokens, heads, head_dim).transpose(1, 2)
    v = F.linear(h, wv, bv).reshape(batch, tokens, heads, head_dim).transpose(1, 2)
    scores = ((q * attn.scale).unsqueeze(2) @ k.transpose(-2, -1)).squeeze(2)  # (B, H, N)
    probs = scores.softmax(dim=-1)
    out = (probs.unsqueeze(2) @ v).squeeze(2).reshape(batch, width)  # (B, H·d)

    saved = {
        "xhat": xhat,  # (B, N, D)
        "h0": h[:, 0],  # (B, D)
        "q": q,  # (B, H, d)
        "probs": probs,  # (B, H, N)
        "kq": torch.einsum("bhd,hdD->bhD", q, _heads_weight(wk, heads, head_dim)),  # W_kᵀ q (B, H, D)
        "z": torch.einsum("bhn,bnD->bhD", probs, xhat),  # Σₙ Pₙ x̂ₙ (B, H, D)
    }
    y, residual = out, x[:, 0]
    for name, module in _tail(tm):
        if module is None:
            y = residual = residual + y
            continue
        y, step = _primal_step(module, y)
        saved.update({f"{name}:{k}": t for k, t in step.items()})
    saved["logits"] = y
    return {k: t.contiguous() for k, t in saved.items()}


def build_primal_cache(tm: TangentViT, features: Tensor, batch_size: int = 64) -> PrimalCache:
    """Primal quantities of ``tm``'s last block for every row of ``features`` (the prefix output)."""
    check_supported(tm)
    if features.ndim != 3:
        raise PrivtangentError(f"features must be (N, tokens, D) prefix outputs, got shape {tuple(features.shape)}")
    chunks = [_primal_chunk(tm, features[i : i + batch_size]) for i in range(0, features.shape[0], batch_size)]
    if not chunks:
        raise PrivtangentError("cannot build a primal cache of zero samples")
    return PrimalCache({k: torch.cat([c[k] for c in chunks]) for k in chunks[0]}, tm.start)


# -- the per-step tangent -----------------------------------------------------------------------
def _mul(a: Tangent, b: Tangent) -> Tangent:
    return None if a is None or b is None else a * b


def _einsum(spec: str, a: Tangent, b: Tangent) -> Tangent:
    return None if a is None or b is None else torch.einsum(spec, a, b)


def _slice(t: Tangent, start: int, stop: int) -> Tangent:
    return None if t is None else t[start:stop]


def cached_jvp(tm: TangentViT, cache: PrimalCache) -> Tensor:
    """J·Δw for the cached samples (B, K), differentiable in ``tm``'s Δw."""
    check_supported(tm)
    if cache.start != tm.start:
        raise PrivtangentError(f"the primal cache was built for block {cache.start}, the model starts at {tm.start}")
    c = cache.tensors
    attn, norm1 = _attention_and_norm(tm)
    heads, head_dim = attn.num_heads, attn.head_dim
    width = heads * head_dim
    batch = len(cache)
    deltas = Deltas(tm.named_deltas())
    d = deltas.child(f"blocks.{tm.start}")
    dn, dqkv = d.child("norm1"), d.child("attn").child("qkv")

    gamma, beta = norm1.weight, norm1.bias
    dgamma, dbeta = dn["weight"], dn["bias"]
    w, dw, db = attn.qkv.weight, dqkv["weight"], dqkv["bias"]
    wq, wk, wv = w[:width], w[width : 2 * width], w[2 * width :]
    dwq, dwk, dwv = _slice(dw, 0, width), _slice(dw, width, 2 * width), _slice(dw, 2 * width, 3 * width)
    dbq, dbv = _slice(db, 0, width), _slice(db, 2 * width, 3 * width)

    # q̇ of the CLS row: ΔW_q h₀ + Δb_q + W_q ḣ₀, with ḣ₀ = Δγ₁ ⊙ x̂₀ + Δβ₁
    xhat0 = c["xhat"][:, 0]
    h0_dot = add(_mul(xhat0, dgamma), None if dbeta is None else dbeta.expand_as(xhat0))
    q_dot = None if h0_dot is None else F.linear(h0_dot, wq)
    q_dot = add(q_dot, None if dwq is None else F.linear(c["h0"], dwq))
    q_dot = add(q_dot, None if dbq is None else dbq.expand(batch, -1))
    q_dot = None if q_dot is None else q_dot.reshape(batch, heads, head_dim)

    # ρ: Ṡₙ = scale · ρ · x̂ₙ + (a constant per row, which the softmax tangent removes)
    wk_h = _heads_weight(wk, heads, head_dim)
    rho = add(_einsum("bhd,hdD->bhD", q_dot, wk_h),
              None if dwk is None else torch.einsum("bhd,hdD->bhD", c["q"], _heads_weight(dwk, heads, head_dim)))
    if rho is not None and gamma is not None:
        rho = rho * gamma
    rho = add(rho, _mul(c["kq"], dgamma))

    probs, z = c["probs"], c["z"]
    inner = None
    if rho is not None:
        s_dot = torch.einsum("bhD,bnD->bhn", rho, c["xhat"])
        mean = torch.einsum("bhD,bhD->bh", rho, z).unsqueeze(-1)  # Σₙ Pₙ (ρ · x̂ₙ)
        p_dot = probs * (s_dot - mean) * attn.scale
        inner = torch.einsum("bhn,bnD->bhD", p_dot, c["xhat"])
        inner = inner if gamma is None else inner * gamma
    inner = add(inner, _mul(z, dgamma))
    inner = add(inner, None if dbeta is None else dbeta.expand_as(z))
    o_dot = _einsum("bhD,hdD->bhd", inner, _heads_weight(wv, heads, head_dim))
    if dwv is not None:
        hz = z if gamma is None else z * gamma
        hz = hz if beta is None else hz + beta
        o_dot = add(o_dot, torch.einsum("bhD,hdD->bhd", hz, _heads_weight(dwv, heads, head_dim)))
    if dbv is not None:
        o_dot = add(o_dot, dbv.reshape(heads, head_dim).expand(batch, -1, -1))
    xdot = None if o_dot is None else o_dot.reshape(batch, width)

    residual_dot = None
    for name, module in _tail(tm):
        if module is None:
            xdot = residual_dot = add(residual_dot, xdot)
            continue
        saved = {k.split(":", 1)[1]: t for k, t in c.items() if k.startswith(name + ":")}
        xdot = _tangent_step(module, saved, xdot, deltas.child(name))
    return torch.zeros_like(cache.logits) if xdot is None else xdot


def cached_forward(tm: TangentViT, cache: PrimalCache, output: str = "full"):
    """Like ``tm.forward_features(features, output)``, from a primal cache of those features."""
    if output not in OUTPUTS:
        raise ConfigError(f"output must be one of {OUTPUTS}, got {output!r}")
    jvp = cached_jvp(tm, cache)
    if output == "jvp":
        return jvp
    if output == "pair":
        return cache.logits, jvp
    return cache.logits + jvp
