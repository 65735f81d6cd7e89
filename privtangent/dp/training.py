"""``fit_dp``: DP fine-tuning of a tangent ("Ours") or non-linear ("Reg") model, with a privacy manifest.

The model is built by ``privtangent.train.prepare_model`` (fresh seeded head, tangent or
not), trains on cached prefix features (``FeatureCache``) and is evaluated with
``privtangent.train.evaluate``. σ is ``noise_multiplier`` if given, else the smallest σ with
ε ≤ ``target_epsilon`` (``privtangent.dp.calibrate_noise``). Each step is DP-SGD
(``DPOptimizer``: per-sample clipping, Gaussian noise, divided by the expected batch q·N) on a
Poisson sample of rate q (q = 1: the full data set, DP-GD). The returned manifest
(``privtangent.dp.manifest``) records everything a reviewer needs to check the claim.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from timm.models.vision_transformer import VisionTransformer
from torch import Tensor, nn

from privtangent.data.dataset import ImageData
from privtangent.device import current_device
from privtangent.dp.accounting import epsilon, epsilon_spent
from privtangent.dp.calibration import calibrate_noise
from privtangent.dp.config import DPConfig
from privtangent.dp.manifest import privacy_manifest
from privtangent.dp.noise import mechanism_randomness
from privtangent.dp.optimizer import DPOptimizer, DPStep, ExtraGrads, make_torch_optimizer
from privtangent.dp.per_sample import resolve_method, trainable
from privtangent.dp.sampling import BatchSampler
from privtangent.errors import ConfigError
from privtangent.features import FeatureCache
from privtangent.finetune import FineTuneModel
from privtangent.losses import make_loss
from privtangent.progress import Progress
from privtangent.train import evaluate, prepare_model

CanaryGrads = ExtraGrads | Callable[[int], ExtraGrads | None]


@dataclass
class DPResult:
    model: FineTuneModel
    metrics: dict[str, Any]
    manifest: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)


def resolve_noise(config: DPConfig, dataset_size: int) -> tuple[float, bool]:
    """(σ, calibrated): σ from the config (checked: ε(σ) ≤ ``target_epsilon`` when both are
    given), or the smallest σ, within 1 %, with ε ≤ ``target_epsilon`` (``calibrate_noise``)."""
    if config.noise_multiplier is not None:
        sigma = float(config.noise_multiplier)
        if config.target_epsilon is not None:
            eps = (epsilon(sigma, config.sample_rate, config.steps, config.delta, config.accountant)
                   if sigma > 0 else float("inf"))
            if eps > config.target_epsilon * (1 + 1e-9):
                raise ConfigError(f"noise_multiplier={sigma:g} gives ε={eps:.4g} > "
                                  f"target_epsilon={config.target_epsilon:g} "
                                  f"(q={config.sample_rate:g}, steps={config.steps}, δ={config.delta:g})")
        return sigma, False
    assert config.target_epsilon is not None  # DPConfig refuses neither being given
    sigma = calibrate_noise(config.target_epsilon, config.delta, config.sample_rate, config.steps,
                            config.accountant, dataset_size=dataset_size)
    return float(sigma), True


def weight_penalty(model: nn.Module, config: DPConfig) -> Callable[[], Tensor | float] | None:
    """wd·‖Δw‖² for a tangent model (added after privatization: data-independent, no privacy
    cost); None when there is none (non-linear models use decoupled decay in the optimizer)."""
    if not config.tangent or config.weight_decay == 0:
        return None
    params = list(trainable(model).values())
    return lambda: config.weight_decay * sum(p.pow(2).sum() for p in params)


def fit_dp(base: VisionTransformer, train: ImageData, config: DPConfig, *, test: ImageData | None = None,
           cache: FeatureCache | None = None, progress: bool = True,
           on_step: Callable[[DPStep], None] | None = None,
           extra_per_sample_grads: CanaryGrads | None = None, model: FineTuneModel | None = None) -> DPResult:
    """DP fine-tuning of ``base`` on ``train``; evaluates on ``test`` if given.

    Args:
        on_step: observer called with each step's ``DPStep`` (privatized gradient, batch size, ...).
        extra_per_sample_grads: canary per-sample gradients added to every step's clipped sum
            (a dict {name: (M, ...)} or ``ImplicitGrads``), or a callable step → those or None (1-based step).
        model: the model to train, already built by ``prepare_model(base, train.num_classes,
            config.train_config())`` (a caller that needs its initial state builds it first).

    Returns:
        ``DPResult(model, metrics, manifest, history)``; ``metrics["test_accuracy"]`` is a fraction.
    """
    cache = cache or FeatureCache()
    n = len(train)
    if n < 1:
        raise ConfigError(f"{train.name}: the training set is empty")
    model = model if model is not None else prepare_model(base, train.num_classes, config.train_config())
    loss_fn = make_loss(config.loss)
    features = cache.features(model.base, model.start, train, progress=progress)
    labels = train.labels
    sigma, calibrated = resolve_noise(config, n)
    randomness = mechanism_randomness(config.noise_seed, device=current_device())
    sampler = BatchSampler(n, config.sample_rate, config.steps, randomness.generator)
    weight_decay = 0.0 if config.tangent else config.weight_decay
    optimizer = make_torch_optimizer(list(trainable(model).values()), config.optimizer, config.lr,
                                     momentum=config.momentum, weight_decay=weight_decay)
    output = config.resolved_output
    dp = DPOptimizer(model, optimizer, loss_fn, noise_multiplier=sigma, max_grad_norm=config.max_grad_norm,
                     expected_batch_size=sampler.expected_batch_size, generator=randomness.generator,
                     output=output, method=config.method, physical_batch_size=config.physical_batch_size,
                     regularizer=weight_penalty(model, config), observers=[on_step] if on_step else None)
    kind = "Ours" if config.tangent else "Reg"
    steps_per_epoch = max(1, round(1 / config.sample_rate))
    history: list[dict[str, Any]] = []
    start = time.perf_counter()
    model.train()
    with Progress(len(sampler), f"DP {kind} {config.regime} on {train.name}", unit="step", enabled=progress) as bar:
        for index in sampler:
            extra = (extra_per_sample_grads(dp.steps_taken + 1) if callable(extra_per_sample_grads)
                     else extra_per_sample_grads)
            info = dp.step(features[index], labels[index], extra_per_sample_grads=extra)
            history.append({"step": info.step, "seconds": time.perf_counter() - start})
            bar.update(1)
            if progress and sigma > 0 and (info.step % steps_per_epoch == 0 or info.step == len(sampler)):
                spent = epsilon_spent(sigma, config.sample_rate, info.step, config.delta)
                bar.report(**{"ε spent" if config.sample_rate == 1.0 else "ε spent ≤ (RDP)": spent})
    seconds = time.perf_counter() - start
    model.eval()
    manifest = privacy_manifest(config, noise_multiplier=sigma, calibrated=calibrated, dataset_size=n,
                                steps_run=dp.steps_taken, randomness=randomness.manifest(),
                                method=resolve_method(model, config.method))
    metrics: dict[str, Any] = {"train_seconds": seconds, "steps": dp.steps_taken, "noise_multiplier": sigma,
                               "epsilon": manifest["epsilon"], "delta": config.delta}
    if test is not None:
        test_features = cache.features(model.base, model.start, test, progress=progress)
        report = evaluate(model, test_features, test.labels, test.num_classes, loss_fn, output)
        metrics.update({"test_accuracy": report["accuracy"], "test_per_class_accuracy": report["per_class_accuracy"],
                        "test_loss": report.get("loss")})
    return DPResult(model, metrics, manifest, history)


__all__ = ["DPResult", "fit_dp", "resolve_noise", "weight_penalty"]
