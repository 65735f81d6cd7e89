"""Which base-model parameters each fine-tuning regime trains (paper Table 3).

- ``full``: every parameter of the linearized blocks, the final norm(s) and the head;
- ``bitfit``: the biases of those modules (BitFit, Ben Zaken et al.);
- ``layernorm``: the affine parameters of their LayerNorms;
- ``fc``: the head only.

The classification head is trained in every regime: a downstream task has its own,
freshly initialized head, and leaving it at random would make every regime but FC
meaningless. ``cls_token`` is added when the CLS token is linearized.

The same names serve non-linear fine-tuning ("Reg"), which trains these parameters of
the original network instead of their Δ.
"""

from __future__ import annotations

from timm.models.vision_transformer import VisionTransformer
from torch import nn

from privtangent.choices import REGIMES
from privtangent.errors import ConfigError


def linearized_prefixes(depth: int, blocks: int) -> list[str]:
    """Module names of the linearized part: the last ``blocks`` blocks, final norms, head."""
    return [f"blocks.{i}" for i in range(depth - blocks, depth)] + ["norm", "fc_norm", "head"]


def check_regime(regime: str) -> str:
    if regime not in REGIMES:
        raise ConfigError(f"unknown regime {regime!r}; choose one of {', '.join(REGIMES)}")
    return regime


def trainable_parameter_names(
    model: VisionTransformer, blocks: int, regime: str, linearize_cls: bool = False
) -> list[str]:
    """Base-model parameter names trained in ``regime`` (in the model's own order)."""
    check_regime(regime)
    if linearize_cls and not getattr(model, "has_class_token", True):
        # without this, linearize_cls would silently replace the first patch token
        raise ConfigError("linearize_cls=True needs a model with a class token (class_token=True)")
    prefixes = tuple(p + "." for p in linearized_prefixes(len(model.blocks), blocks))
    layernorm_params = {
        f"{mod_name}.{p}"
        for mod_name, module in model.named_modules()
        if isinstance(module, nn.LayerNorm)
        for p, _ in module.named_parameters(recurse=False)
    }
    names = []
    for name, _ in model.named_parameters():
        if not name.startswith(prefixes):
            continue
        if name.startswith("head."):
            names.append(name)
        elif regime == "full":
            names.append(name)
        elif regime == "bitfit" and name.endswith(".bias"):
            names.append(name)
        elif regime == "layernorm" and name in layernorm_params:
            names.append(name)
    if linearize_cls:
        names.insert(0, "cls_token")
    return names
