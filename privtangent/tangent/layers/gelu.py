"""Tangent rule of GELU (paper eq. 12, corrected).

The exact derivative of GELU(x) = x Φ(x) is Φ(x) + x φ(x). The published form
GELU(x)/x + x φ(x) equals it for x ≠ 0 but is 0/0 at x = 0, where the derivative is ½.
The tanh approximation has its own exact derivative.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from privtangent.tangent.registry import Deltas, Tangent, register

_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def gelu_derivative(x: Tensor, approximate: str = "none") -> Tensor:
    """d GELU / dx: Φ(x) + x φ(x) (exact), or the derivative of the tanh approximation."""
    if approximate == "tanh":
        inner = _SQRT_2_OVER_PI * (x + 0.044715 * x.pow(3))
        t = torch.tanh(inner)
        return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)
    cdf = 0.5 * (1.0 + torch.erf(x * _INV_SQRT2))
    pdf = torch.exp(-0.5 * x * x) * _INV_SQRT_2PI
    return cdf + x * pdf


def gelu_jvp(x: Tensor, xdot: Tangent, approximate: str = "none") -> tuple[Tensor, Tangent]:
    y = F.gelu(x, approximate=approximate)
    return y, None if xdot is None else gelu_derivative(x, approximate) * xdot


@register(nn.GELU)
def gelu_rule(m: nn.GELU, x: Tensor, xdot: Tangent, d: Deltas, **_):
    return gelu_jvp(x, xdot, m.approximate)
