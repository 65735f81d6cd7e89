"""Tangent Vision Transformers: ``linearize`` a timm ``VisionTransformer`` (paper eq. 1).

    f_lin(x) = f_w(x) + J_w f(x) · Δw

The network is split in two. The *frozen prefix* (patch embedding, positional embedding,
the first ``depth − blocks`` blocks) carries no tangent, so its output can be computed once
per sample and cached (``prefix`` / ``forward_features``). The *linearized part* (the last
``blocks`` blocks, the final norm and the head) runs the modified forward pass of
``privtangent.tangent.layers``, which returns the primal output and its JVP in one pass.
Only Δw is trainable; the base weights w are frozen buffers of the computation.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping

import torch
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor, nn

from privtangent.errors import ConfigError, PrivtangentError
from privtangent.features import run_prefix
from privtangent.tangent import layers  # noqa: F401  (registers the tangent rules)
from privtangent.tangent.regimes import check_regime, trainable_parameter_names
from privtangent.tangent.registry import Deltas, rule_for, tangent_forward, zeros_if_none

OUTPUTS = ("full", "jvp", "pair")
SUPPORTED_POOLS = ("token", "avg")


def _key(name: str) -> str:
    """ParameterDict keys cannot contain dots."""
    return name.replace(".", "__")


def reset_module(module: nn.Module) -> None:
    """PyTorch's default initialization (Kaiming-uniform Linear, unit LayerNorm)."""
    for sub in module.modules():
        reset_parameters = getattr(sub, "reset_parameters", None)
        if sub is not module and callable(reset_parameters):
            reset_parameters()


def check_model(model: nn.Module, blocks: int) -> None:
    if not isinstance(model, VisionTransformer):
        raise PrivtangentError(
            f"linearize expects a timm VisionTransformer, got {type(model).__name__}"
        )
    depth = len(model.blocks)
    if isinstance(blocks, bool) or not isinstance(blocks, int) or not 1 <= blocks <= depth:
        raise ConfigError(f"blocks must be an integer in [1, {depth}] (the model's depth), got {blocks!r}")
    if model.attn_pool is not None or model.global_pool not in SUPPORTED_POOLS:
        raise PrivtangentError(
            f"global_pool={model.global_pool!r} is not supported; use one of {SUPPORTED_POOLS}"
        )
    if model.global_pool == "token" and not model.has_class_token:
        raise PrivtangentError("token pooling needs a class token")
    for module in [*model.blocks[depth - blocks :], model.norm, model.fc_norm, model.head]:
        for sub in module.modules():
            rule_for(sub)  # raises UnsupportedLayerError naming the layer type


class TangentViT(nn.Module):
    """A timm ViT linearized in its last ``blocks`` blocks; see ``linearize``."""

    cls_anchor: Tensor  # a buffer (1, 1, D), registered only when linearize_cls

    def __init__(
        self,
        model: VisionTransformer,
        blocks: int = 1,
        regime: str = "full",
        reset: bool = False,
        linearize_cls: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        check_model(model, blocks)
        check_regime(regime)
        base = copy.deepcopy(model).eval()
        base.requires_grad_(False)
        self.base = base
        self.blocks = blocks
        self.regime = regime
        self.reset = reset
        self.linearize_cls = linearize_cls
        self.seed = seed
        self.start = len(base.blocks) - blocks
        self.cls_only = base.global_pool == "token"
        generator = torch.Generator().manual_seed(seed)
        if reset:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                for block in base.blocks[self.start :]:
                    reset_module(block)
        if linearize_cls:
            anchor = torch.randn(base.embed_dim, generator=generator).to(base.cls_token) * 0.02
            self.register_buffer("cls_anchor", anchor.view(1, 1, -1))
        self.delta_names = trainable_parameter_names(base, blocks, regime, linearize_cls)
        params = dict(base.named_parameters())
        self.delta = nn.ParameterDict(
            {
                _key(name): nn.Parameter(torch.zeros_like(self.cls_anchor if name == "cls_token" else params[name]))
                for name in self.delta_names
            }
        )

    # -- Δw -----------------------------------------------------------------------------
    def delta_parameters(self) -> Iterator[nn.Parameter]:
        return iter(self.delta.values())

    def named_deltas(self) -> dict[str, Tensor]:
        """Δw keyed by base-model parameter names (live tensors; functional_call-friendly)."""
        return {name: self.delta[_key(name)] for name in self.delta_names}

    def delta_state_dict(self) -> dict[str, Tensor]:
        """A detached copy of Δw keyed by the base model's own parameter names."""
        return {name: t.detach().clone() for name, t in self.named_deltas().items()}

    def load_delta(self, delta: Mapping[str, Tensor], strict: bool = True) -> None:
        """Set Δw from a dict keyed by base-model parameter names."""
        unknown = sorted(set(delta) - set(self.delta_names))
        missing = sorted(set(self.delta_names) - set(delta))
        if unknown or (strict and missing):
            raise PrivtangentError(
                f"delta does not fit this tangent model (regime={self.regime!r}, blocks={self.blocks}): "
                f"unknown {unknown[:5]}, missing {missing[:5]}"
            )
        for name, value in delta.items():  # check every shape before changing anything
            target = self.delta[_key(name)]
            if tuple(value.shape) != tuple(target.shape):
                raise PrivtangentError(
                    f"delta {name!r} has shape {tuple(value.shape)}, expected {tuple(target.shape)}"
                )
        with torch.no_grad():
            for name, value in delta.items():
                self.delta[_key(name)].copy_(value)

    # the interface shared with non-linear fine-tuning (privtangent.finetune)
    kind = "tangent"

    def trainable_parameters(self) -> dict[str, Tensor]:
        return self.named_deltas()

    def trainable_state_dict(self) -> dict[str, Tensor]:
        return self.delta_state_dict()

    def load_trainable(self, state: Mapping[str, Tensor], strict: bool = True) -> None:
        self.load_delta(state, strict)

    def anchor_state_dict(self) -> dict[str, Tensor]:
        """The linearization point w of the linearized part (after any reset)."""
        prefixes = tuple(f"{p}." for p in self._linearized_module_names())
        state = {k: v.detach().clone() for k, v in self.base.state_dict().items() if k.startswith(prefixes)}
        if self.linearize_cls:
            state["cls_anchor"] = self.cls_anchor.detach().clone()
        return state

    def _linearized_module_names(self) -> list[str]:
        depth = len(self.base.blocks)
        return [f"blocks.{i}" for i in range(self.start, depth)] + ["norm", "fc_norm", "head"]

    # -- forward ------------------------------------------------------------------------
    def prefix(self, x: Tensor) -> Tensor:
        """Output of the frozen prefix (B, tokens, D): no tangent, cacheable per sample."""
        return run_prefix(self.base, self.start, x)

    def forward(self, x: Tensor, output: str = "full"):
        return self.forward_features(self.prefix(x), output=output)

    def forward_features(self, features: Tensor, output: str = "full"):
        """The linearized part on cached prefix features.

        ``output="full"`` → f_w + J·Δw; ``"jvp"`` → J·Δw; ``"pair"`` → (f_w, J·Δw).
        """
        if output not in OUTPUTS:
            raise ConfigError(f"output must be one of {OUTPUTS}, got {output!r}")
        base = self.base
        deltas = Deltas(self.named_deltas())
        x, xdot = features, None
        if self.linearize_cls:
            batch = x.shape[0]
            x = torch.cat([self.cls_anchor.expand(batch, 1, -1), x[:, 1:]], dim=1)
            cls_delta = deltas["cls_token"]
            assert cls_delta is not None  # linearize_cls always trains the CLS token
            cls_dot = cls_delta.expand(batch, 1, -1)
            xdot = torch.cat([cls_dot, torch.zeros_like(x[:, 1:])], dim=1)
        depth = len(base.blocks)
        for i in range(self.start, depth):
            last = i == depth - 1
            x, xdot = tangent_forward(
                base.blocks[i], x, xdot, deltas.child(f"blocks.{i}"), cls_only=self.cls_only and last
            )
        x, xdot = tangent_forward(base.norm, x, xdot, deltas.child("norm"))
        x, xdot = self._pool(x), None if xdot is None else self._pool(xdot)
        x, xdot = tangent_forward(base.fc_norm, x, xdot, deltas.child("fc_norm"))
        y, ydot = tangent_forward(base.head, x, xdot, deltas.child("head"))
        if output == "pair":
            return y, zeros_if_none(ydot, y)
        if output == "jvp":
            return zeros_if_none(ydot, y)
        return y if ydot is None else y + ydot

    def _pool(self, x: Tensor) -> Tensor:
        base = self.base
        if base.global_pool == "token":
            return x[:, 0]
        start = 0 if getattr(base, "pool_include_prefix", False) else base.num_prefix_tokens
        return x[:, start:].mean(dim=1)

    def extra_repr(self) -> str:
        n = sum(p.numel() for p in self.delta_parameters())
        return (
            f"blocks={self.blocks}, regime={self.regime!r}, reset={self.reset}, "
            f"linearize_cls={self.linearize_cls}, cls_only={self.cls_only}, delta_params={n}"
        )


def linearize(
    model: VisionTransformer,
    blocks: int = 1,
    regime: str = "full",
    reset: bool = False,
    linearize_cls: bool = False,
    *,
    seed: int = 0,
) -> TangentViT:
    """Linearize the last ``blocks`` blocks of ``model`` around its weights (paper eq. 1).

    Args:
        model: a timm ``VisionTransformer`` (it is copied, never modified).
        blocks: how many of the last blocks to linearize (1 ≤ blocks ≤ depth); the final
            norm and the head are always linearized.
        regime: which parameters get a Δ: "full", "bitfit", "layernorm" or "fc".
        reset: re-initialize the linearized blocks with PyTorch's default initialization
            before linearizing (the paper's PT=F), seeded by ``seed``.
        linearize_cls: replace the CLS token entering the first linearized block by a
            fresh token (seeded) and linearize it too (the paper's CLS=T); its Δ is keyed
            ``cls_token``.
        seed: seed of the reset and of the fresh CLS token.

    Returns:
        a ``TangentViT`` whose forward returns f_w(x) + J·Δw, with Δw = 0 initially.
    """
    return TangentViT(model, blocks, regime, reset, linearize_cls, seed)
