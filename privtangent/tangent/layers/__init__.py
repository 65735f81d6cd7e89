"""Closed-form tangent rules, one file per layer type (paper eqs. 5–12).

Importing this package registers every rule with ``privtangent.tangent.registry``.
"""

from privtangent.tangent.layers import (  # noqa: F401  (imported for registration)
    attention,
    block,
    elementwise,
    gelu,
    layernorm,
    linear,
    mlp,
)
from privtangent.tangent.layers.attention import softmax_jvp
from privtangent.tangent.layers.gelu import gelu_derivative, gelu_jvp
from privtangent.tangent.layers.layernorm import layer_norm_jvp
from privtangent.tangent.layers.linear import linear_jvp

__all__ = ["gelu_derivative", "gelu_jvp", "layer_norm_jvp", "linear_jvp", "softmax_jvp"]
