"""The two ways to fine-tune the last blocks of a ViT, behind one interface.

- ``TangentViT`` (privtangent.tangent): TAFT, trains Δw of the linearized model ("Ours");
- ``NonLinearViT`` (here): NLFT, trains the same parameters of the original network ("Reg").

Both expose ``start`` (first trained block), ``prefix(x)`` (frozen, cacheable),
``forward_features(features)`` → logits, ``trainable_parameters()`` (base names →
live tensors), ``trainable_state_dict()`` / ``load_trainable(d)`` and ``kind``;
``FineTuneModel`` is the type of either.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TypeAlias

import torch
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor, nn

from privtangent.errors import PrivtangentError
from privtangent.features import run_prefix
from privtangent.tangent.regimes import check_regime, trainable_parameter_names
from privtangent.tangent.vit import TangentViT, check_model, reset_module


class NonLinearViT(nn.Module):
    """Plain fine-tuning of the parameters a regime selects (NLFT-k, FC, BitFit, LayerNorm).

    With ``reset``/``linearize_cls`` it starts from the same re-initialized blocks and the
    same fresh CLS token as the tangent model with the same seed, so the two differ only
    in linearization.
    """

    kind = "nonlinear"

    def __init__(self, model: VisionTransformer, blocks: int = 1, regime: str = "full",
                 reset: bool = False, linearize_cls: bool = False, seed: int = 0) -> None:
        super().__init__()
        check_model(model, blocks)
        check_regime(regime)
        base = copy.deepcopy(model).eval()
        base.requires_grad_(False)
        self.base, self.blocks, self.regime = base, blocks, regime
        self.reset, self.linearize_cls, self.seed = reset, linearize_cls, seed
        self.start = len(base.blocks) - blocks
        if reset:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                for block in base.blocks[self.start :]:
                    reset_module(block)
        self.cls_token: nn.Parameter | None = None
        if linearize_cls:
            generator = torch.Generator().manual_seed(seed)
            anchor = torch.randn(base.embed_dim, generator=generator).to(base.cls_token) * 0.02
            self.cls_token = nn.Parameter(anchor.view(1, 1, -1))
        self.trained_names = trainable_parameter_names(base, blocks, regime, linearize_cls)
        params = dict(base.named_parameters())
        for name in self.trained_names:
            if name != "cls_token":
                params[name].requires_grad_(True)

    def trainable_parameters(self) -> dict[str, Tensor]:
        params: dict[str, Tensor] = dict(self.base.named_parameters())
        if self.cls_token is not None:  # the fresh token replaces the base's (trained_names has it)
            params["cls_token"] = self.cls_token
        return {n: params[n] for n in self.trained_names}

    def trainable_state_dict(self) -> dict[str, Tensor]:
        return {n: t.detach().clone() for n, t in self.trainable_parameters().items()}

    def load_trainable(self, state: Mapping[str, Tensor], strict: bool = True) -> None:
        own = self.trainable_parameters()
        unknown, missing = sorted(set(state) - set(own)), sorted(set(own) - set(state))
        if unknown or (strict and missing):
            raise PrivtangentError(f"state does not fit this model: unknown {unknown[:5]}, missing {missing[:5]}")
        for name, value in state.items():  # check every shape before changing anything
            if tuple(value.shape) != tuple(own[name].shape):
                raise PrivtangentError(f"{name!r} has shape {tuple(value.shape)}, expected {tuple(own[name].shape)}")
        with torch.no_grad():
            for name, value in state.items():
                own[name].copy_(value)

    def prefix(self, x: Tensor) -> Tensor:
        return run_prefix(self.base, self.start, x)

    def forward_features(self, features: Tensor, output: str = "full") -> Tensor:
        if output != "full":
            raise PrivtangentError("a non-linear model has no JVP output; use output='full'")
        base, x = self.base, features
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], 1, -1), x[:, 1:]], dim=1)
        for block in base.blocks[self.start :]:
            x = block(x)
        return base.forward_head(base.norm(x))

    def forward(self, x: Tensor, output: str = "full") -> Tensor:
        return self.forward_features(self.prefix(x), output)


FineTuneModel: TypeAlias = TangentViT | NonLinearViT


def build_finetune_model(model: VisionTransformer, *, tangent: bool, blocks: int = 1, regime: str = "full",
                         reset: bool = False, linearize_cls: bool = False, seed: int = 0) -> FineTuneModel:
    """TangentViT (``tangent=True``) or NonLinearViT over the same parameters."""
    cls: type[FineTuneModel] = TangentViT if tangent else NonLinearViT
    return cls(model, blocks, regime, reset, linearize_cls, seed)
