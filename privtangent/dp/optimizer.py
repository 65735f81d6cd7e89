"""One DP-SGD / DP-GD step around any torch optimizer (Adam, SGD, ...).

    ĝ = ( Σ_{i ∈ batch} g_i · min(1, C/‖g_i‖)  +  N(0, σ²C² I) ) / (q·N)

then ``optimizer.step()`` with ĝ as the gradient. The logical batch is processed in physical
micro-batches (``physical_batch_size``), so a full-batch step over the whole data set fits
in memory. A data-independent regularizer (e.g. wd·‖Δw‖²) is added *after* privatization
(post-processing, no privacy cost).

Hooks for white-box audits (kept deliberately small):

- ``on_step`` observers receive a ``DPStep`` after each step: the privatized gradient ĝ
  exactly as the optimizer used it (before the regularizer's gradient is added), the batch
  size, the noise std. The noise-free sum is never exposed.
- ``step(..., extra_per_sample_grads={name: (M, ...)})`` adds M extra per-sample gradients
  ("canaries", e.g. Dirac gradients) to the sum, clipped to C like any record, before the
  noise. They count in ``DPStep.batch_size`` but not in the expected batch size q·N.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from privtangent.dp.clipping import ClippedSum, clip_and_sum, clip_factors, clipped_grad_sum
from privtangent.dp.noise import privatize
from privtangent.dp.parameters import check_max_grad_norm, check_noise_multiplier
from privtangent.dp.per_sample import DEFAULT_CHUNK, LossFn, trainable
from privtangent.dp.sampling import micro_batches
from privtangent.errors import ConfigError
from privtangent.features import Features


@dataclass
class DPStep:
    """What an observer sees of one step (everything here is already privatized or public)."""

    step: int  # 1-based
    grad: dict[str, Tensor]  # ĝ: the noisy clipped sum / expected batch size, per base parameter name
    batch_size: int  # records summed (sampled + canaries); under Poisson sampling NOT private: do not publish
    num_canaries: int
    expected_batch_size: float  # q·N, the divisor
    noise_multiplier: float  # σ
    max_grad_norm: float  # C
    noise_std: float  # σ·C, std of the noise added to the sum (per coordinate)


Observer = Callable[[DPStep], None]


@runtime_checkable
class ImplicitGrads(Protocol):
    """M per-sample gradients given implicitly (e.g. sparse Dirac canaries, ``audits.privacy.canaries``):
    ``norms()`` → (M,) L2 norms, ``weighted_sum(factors)`` → {name: Σ_i f_i g_i} for the tensors hit."""

    def __len__(self) -> int: ...

    def norms(self) -> Tensor: ...

    def weighted_sum(self, factors: Tensor) -> Mapping[str, Tensor]: ...


ExtraGrads = Mapping[str, Tensor] | ImplicitGrads  # explicit {name: (M, ...)} or implicit per-sample gradients


class DPOptimizer:
    """DP-SGD around ``optimizer`` for ``model``'s trainable parameters (flat clipping, Gaussian noise).

    Args:
        model: TangentViT / NonLinearViT (or an ``nn.Module`` with ``forward_features``).
        optimizer: a torch optimizer over ``trainable(model).values()``.
        loss_fn: batch-mean loss (logits, y) → scalar.
        noise_multiplier: σ (0 means no noise: not private, for tests).
        max_grad_norm: C.
        expected_batch_size: q·N (N for full-batch DP-GD).
        generator: the mechanism's generator (``privtangent.dp.noise.mechanism_randomness``).
        output: "full" or "jvp" (tangent models: predict with J·Δw only).
        method: per-sample engine, "auto" | "ghost" | "vmap" | "loop".
        physical_batch_size: records per micro-batch.
        regularizer: () → scalar, data-independent; its gradient is added after privatization
            (a constant, e.g. 0.0, adds none).
        observers: callables receiving a ``DPStep`` after each step.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: LossFn, *,
                 noise_multiplier: float, max_grad_norm: float, expected_batch_size: float,
                 generator: torch.Generator, output: str = "full", method: str = "auto",
                 physical_batch_size: int = 256, chunk_size: int = DEFAULT_CHUNK,
                 regularizer: Callable[[], Tensor | float] | None = None,
                 observers: list[Observer] | None = None) -> None:
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        self.noise_multiplier = check_noise_multiplier(noise_multiplier, allow_zero=True)
        self.max_grad_norm = check_max_grad_norm(max_grad_norm)
        if not expected_batch_size > 0:
            raise ConfigError(f"expected_batch_size must be > 0, got {expected_batch_size!r}")
        self.expected_batch_size = float(expected_batch_size)
        self.generator, self.output, self.method = generator, output, method
        if physical_batch_size < 1:
            raise ConfigError(f"physical_batch_size must be ≥ 1, got {physical_batch_size}")
        self.physical_batch_size, self.chunk_size = physical_batch_size, chunk_size
        self.regularizer = regularizer
        self.observers: list[Observer] = list(observers or [])
        self.params = trainable(model)
        self.steps_taken = 0

    def add_observer(self, observer: Observer) -> None:
        self.observers.append(observer)

    def clipped_sum(self, features: Features, labels: Tensor) -> ClippedSum:
        """Σ of clipped per-sample gradients over a logical batch, micro-batch by micro-batch."""
        total = ClippedSum.zeros(self.params)
        device = next(iter(self.params.values())).device
        for idx in micro_batches(torch.arange(len(labels)), self.physical_batch_size):
            batch, targets = features[idx].to(device), labels[idx].to(device)  # one micro-batch on the device at a time
            part = clipped_grad_sum(self.model, self.loss_fn, batch, targets, self.max_grad_norm,
                                    output=self.output, method=self.method, chunk_size=self.chunk_size)
            total.add_(part)
        return total

    def _add_canaries(self, total: ClippedSum, extra: ExtraGrads | None) -> int:
        if not extra:
            return 0
        if isinstance(extra, ImplicitGrads):
            return self._add_implicit_canaries(total, extra)
        unknown = sorted(set(extra) - set(self.params))
        if unknown:
            raise ConfigError(f"extra_per_sample_grads has unknown parameter names {unknown[:3]}")
        count = {int(t.shape[0]) for t in extra.values()}
        if len(count) != 1:
            raise ConfigError("extra_per_sample_grads: every tensor needs the same number of rows (canaries)")
        m = count.pop()
        full = {}
        for n, p in self.params.items():
            if n in extra:
                t = extra[n].to(dtype=p.dtype, device=p.device)
                if tuple(t.shape[1:]) != tuple(p.shape):
                    raise ConfigError(f"extra_per_sample_grads[{n!r}] has shape {tuple(t.shape)}, expected (M, *{tuple(p.shape)})")
                full[n] = t
            else:
                full[n] = p.new_zeros((m, *p.shape))
        summed, norms = clip_and_sum(full, self.max_grad_norm)
        total.add_(ClippedSum(summed, norms, m))
        return m

    def _add_implicit_canaries(self, total: ClippedSum, extra: ImplicitGrads) -> int:
        """Canaries given implicitly (e.g. sparse Dirac gradients, ``audits.privacy.canaries``):
        ``extra.norms()`` → (M,) per-sample norms, ``extra.weighted_sum(factors)`` → {name: Σ_i f_i g_i};
        clipped by the same rule as every record (``clip_factors`` with this optimizer's C)."""
        norms = extra.norms()
        summed = extra.weighted_sum(clip_factors(norms, self.max_grad_norm))
        unknown = sorted(set(summed) - set(self.params))
        if unknown:
            raise ConfigError(f"extra_per_sample_grads has unknown parameter names {unknown[:3]}")
        grads = {n: t.to(dtype=self.params[n].dtype, device=self.params[n].device) for n, t in summed.items()}
        total.add_(ClippedSum(grads, norms.to(total.norms.dtype), int(norms.numel())))
        return int(norms.numel())

    def step(self, features: Tensor, labels: Tensor, *,
             extra_per_sample_grads: ExtraGrads | None = None) -> DPStep:
        """One DP step on a logical batch (cached prefix features and labels; may be empty)."""
        total = self.clipped_sum(features, labels)
        canaries = self._add_canaries(total, extra_per_sample_grads)
        noisy = privatize(total.grads, self.noise_multiplier, self.max_grad_norm, self.expected_batch_size,
                          self.generator)
        reg_grads = None
        if self.regularizer is not None:
            names = list(self.params)
            reg = self.regularizer()
            if isinstance(reg, Tensor) and reg.requires_grad:
                grads = torch.autograd.grad(reg, [self.params[n] for n in names], allow_unused=True)
                reg_grads = {n: g for n, g in zip(names, grads) if g is not None}
        for n, p in self.params.items():
            g = noisy[n].detach()
            if reg_grads and n in reg_grads:
                g = g + reg_grads[n].detach()
            elif self.observers:
                g = g.clone()  # the observers' copy stays untouched by the optimizer
            p.grad = g
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.steps_taken += 1
        info = DPStep(self.steps_taken, {n: t.detach() for n, t in noisy.items()}, total.count, canaries,
                      self.expected_batch_size, self.noise_multiplier, self.max_grad_norm,
                      self.noise_multiplier * self.max_grad_norm)
        for observer in self.observers:
            observer(info)
        return info


def make_torch_optimizer(params: list[Tensor], name: str, lr: float, *, momentum: float = 0.0,
                         weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """Adam / AdamW (decoupled ``weight_decay``) / SGD over ``params``."""
    if name == "adam":
        if weight_decay:
            return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        return torch.optim.Adam(params, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ConfigError(f"optimizer must be 'adam' or 'sgd', got {name!r}")


__all__ = ["DPOptimizer", "DPStep", "ExtraGrads", "ImplicitGrads", "Observer", "make_torch_optimizer"]
