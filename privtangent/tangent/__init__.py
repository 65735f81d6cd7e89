"""Tangent transformers: closed-form JVP layers and ``linearize`` (paper section 3.1)."""

from privtangent.tangent.regimes import REGIMES, trainable_parameter_names
from privtangent.tangent.registry import Deltas, UnsupportedLayerError, register, tangent_forward
from privtangent.tangent.vit import TangentViT, linearize

__all__ = [
    "REGIMES",
    "Deltas",
    "TangentViT",
    "UnsupportedLayerError",
    "linearize",
    "register",
    "tangent_forward",
    "trainable_parameter_names",
]
