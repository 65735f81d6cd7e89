"""Tangent rule of timm's multi-head self-attention, ``TangentAttention`` (paper eqs. 5–8).

Per head, with S = scale · Q Kᵀ, P = softmax(S) row-wise and O = P V:

    Ṡ = scale · (Q̇ Kᵀ + Q K̇ᵀ)                               (Ψ in eq. 7)
    Ṗ = P ⊙ (Ṡ − rowsum(P ⊙ Ṡ))                              (eq. 6, row-wise: no N×N diag product)
    Ȯ = Ṗ V + P V̇                                            (eq. 6)

Q̇, K̇, V̇ come from the tangent rule of the fused ``qkv`` projection (ΔW_q x + W_q ẋ, ...).

``cls_only=True`` computes queries, attention and output for the CLS row only; keys and
values are still computed for every token. That is exact for the last block of a
token-pooled ViT, whose output only reads the CLS row, and about N times cheaper there.
"""

from __future__ import annotations

from typing import overload

from timm.layers import Attention
from torch import Tensor

from privtangent.tangent.layers.linear import linear_jvp
from privtangent.tangent.registry import (
    Deltas,
    Tangent,
    UnsupportedLayerError,
    add,
    register,
    tangent_forward,
)


def softmax_jvp(scores: Tensor, scores_dot: Tangent) -> tuple[Tensor, Tangent]:
    """(P, Ṗ) of a row-wise softmax: Ṗ = P ⊙ (Ṡ − Σ_j P_j Ṡ_j)."""
    probs = scores.softmax(dim=-1)
    if scores_dot is None:
        return probs, None
    return probs, probs * (scores_dot - (probs * scores_dot).sum(-1, keepdim=True))


def _slice(t: Tangent, start: int, stop: int) -> Tangent:
    return None if t is None else t[start:stop]


# _heads and _merge reshape a primal (a tensor) and its tangent (None: zero) alike
@overload
def _heads(t: Tensor, batch: int, tokens: int, heads: int, head_dim: int) -> Tensor: ...
@overload
def _heads(t: Tangent, batch: int, tokens: int, heads: int, head_dim: int) -> Tangent: ...
def _heads(t: Tangent, batch: int, tokens: int, heads: int, head_dim: int) -> Tangent:
    """(B, N, H·d) → (B, H, N, d)."""
    return None if t is None else t.reshape(batch, tokens, heads, head_dim).transpose(1, 2)


@overload
def _merge(t: Tensor, batch: int, tokens: int) -> Tensor: ...
@overload
def _merge(t: Tangent, batch: int, tokens: int) -> Tangent: ...
def _merge(t: Tangent, batch: int, tokens: int) -> Tangent:
    """(B, H, N, d) → (B, N, H·d)."""
    return None if t is None else t.transpose(1, 2).reshape(batch, tokens, -1)


def _matmul_jvp(a: Tensor, adot: Tangent, b: Tensor, bdot: Tangent) -> Tangent:
    """Tangent of a @ b."""
    out = None if adot is None else adot @ b
    return add(out, None if bdot is None else a @ bdot)


@register(Attention)
def attention_rule(
    m: Attention, x: Tensor, xdot: Tangent, d: Deltas, *, cls_only: bool = False, **_
) -> tuple[Tensor, Tangent]:
    if getattr(m, "gate", None) is not None:
        raise UnsupportedLayerError("gated timm Attention has no tangent rule yet")
    batch, tokens, _embed = x.shape
    heads, head_dim, width = m.num_heads, m.head_dim, m.num_heads * m.head_dim
    qkv = d.child("qkv")
    w, b, dw, db = m.qkv.weight, m.qkv.bias, qkv["weight"], qkv["bias"]

    q_in = x[:, :1] if cls_only else x
    q_in_dot = None if xdot is None else (xdot[:, :1] if cls_only else xdot)
    q_tokens = q_in.shape[1]
    q, q_dot = linear_jvp(q_in, q_in_dot, w[:width], _slice(b, 0, width), _slice(dw, 0, width), _slice(db, 0, width))
    k, k_dot = linear_jvp(
        x, xdot, w[width : 2 * width], _slice(b, width, 2 * width), _slice(dw, width, 2 * width), _slice(db, width, 2 * width)
    )
    v, v_dot = linear_jvp(
        x, xdot, w[2 * width :], _slice(b, 2 * width, 3 * width), _slice(dw, 2 * width, 3 * width), _slice(db, 2 * width, 3 * width)
    )
    q, q_dot = _heads(q, batch, q_tokens, heads, head_dim), _heads(q_dot, batch, q_tokens, heads, head_dim)
    k, k_dot = _heads(k, batch, tokens, heads, head_dim), _heads(k_dot, batch, tokens, heads, head_dim)
    v, v_dot = _heads(v, batch, tokens, heads, head_dim), _heads(v_dot, batch, tokens, heads, head_dim)
    q, q_dot = tangent_forward(m.q_norm, q, q_dot, d.child("q_norm"))
    k, k_dot = tangent_forward(m.k_norm, k, k_dot, d.child("k_norm"))

    kt, kt_dot = k.transpose(-2, -1), None if k_dot is None else k_dot.transpose(-2, -1)
    scores = (q * m.scale) @ kt
    scores_dot = _matmul_jvp(q, q_dot, kt, kt_dot)
    scores_dot = None if scores_dot is None else scores_dot * m.scale
    probs, probs_dot = softmax_jvp(scores, scores_dot)
    out, out_dot = probs @ v, _matmul_jvp(probs, probs_dot, v, v_dot)

    out, out_dot = _merge(out, batch, q_tokens), _merge(out_dot, batch, q_tokens)
    out, out_dot = tangent_forward(m.norm, out, out_dot, d.child("norm"))
    return tangent_forward(m.proj, out, out_dot, d.child("proj"))
