"""``fit_dp``: DP fine-tuning of a tangent ("Ours") or non-linear ("Reg") model, with a privacy manifest.

The defaults are the paper's DP setting (section 4.5, Appendix A): full-batch DP-GD (q = 1,
every step sees the whole data set), 50 epochs = 50 steps, no learning-rate decay,
cross-entropy, and a tangent model that predicts with the JVP output J·Δw alone.

The model is built by ``privtangent.train.prepare_model`` (fresh seeded head, tangent or
not), trains on cached prefix features (``FeatureCache``) and is evaluated with
``privtangent.train.evaluate``. σ is ``noise_multiplier`` if given, else the smallest σ with
ε ≤ ``target_epsilon`` (``privtangent.dp.calibrate_noise``). The returned manifest records
everything a reviewer needs to check the claim: ε (PRV; exact GDP for q = 1) and the RDP
cross-check, δ, σ, C, q, T, accountant, sampling scheme, whether the noise was seeded.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from torch import Tensor, nn
from tqdm.auto import tqdm

from privtangent.data.dataset import LabeledData
from privtangent.dp.noise import mechanism_randomness
from privtangent.dp.optimizer import DPOptimizer, DPStep, make_torch_optimizer
from privtangent.dp.per_sample import resolve_method, trainable
from privtangent.dp.sampling import BatchSampler, sampling_scheme, steps_for_epochs
from privtangent.errors import ConfigError
from privtangent.features import FeatureCache
from privtangent.losses import LOSSES, make_loss
from privtangent.tangent.regimes import REGIMES
from privtangent.train import TrainConfig, evaluate, prepare_model

UNIT_OF_PRIVACY = "one training example (add/remove-one adjacency)"


@dataclass(frozen=True)
class DPConfig:
    """Every knob of a DP fine-tuning run. Defaults: the paper's full-batch DP-GD setting."""

    # the model (as in TrainConfig)
    tangent: bool = True  # "Ours" (tangent) or "Reg" (non-linear fine-tuning of the same parameters)
    blocks: int = 1
    regime: str = "full"  # full | bitfit | layernorm | fc
    reset: bool = False  # paper PT=F
    linearize_cls: bool = False
    output: str = "auto"  # auto: "jvp" for a tangent model (the paper), "full" otherwise
    loss: str = "ce"
    # optimization
    optimizer: str = "adam"  # adam | sgd
    lr: float = 1e-2
    momentum: float = 0.0  # sgd only
    weight_decay: float = 0.0  # tangent: explicit wd·‖Δw‖² (after privatization); non-linear: decoupled
    epochs: float = 50  # expected passes over the data; steps T = ceil(epochs / q)
    seed: int = 0  # model init (head, reset); never used for the DP noise
    # privacy
    sample_rate: float = 1.0  # q; 1 = full-batch DP-GD
    max_grad_norm: float = 1.0  # C
    target_epsilon: float | None = 3.0  # calibrate σ for this ε ...
    noise_multiplier: float | None = None  # ... or use this σ (checked against target_epsilon if both)
    delta: float = 1e-5
    accountant: str = "prv"
    noise_seed: int | None = None  # seeds noise + sampling: reproducible, NOT for release
    # engineering
    method: str = "auto"  # per-sample engine: auto (ghost) | ghost | vmap | loop
    physical_batch_size: int = 512

    def __post_init__(self) -> None:
        _check(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], section: str = "dp") -> "DPConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{section}.{unknown[0]}: unknown field (known: {', '.join(sorted(known))})")
        return cls(**dict(values))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "DPConfig":
        return dataclasses.replace(self, **changes)

    @property
    def resolved_output(self) -> str:
        if self.output == "auto":
            return "jvp" if self.tangent else "full"
        return self.output

    @property
    def steps(self) -> int:
        return steps_for_epochs(self.epochs, self.sample_rate)

    def train_config(self) -> TrainConfig:
        """The model/loss part as a ``TrainConfig`` (for ``prepare_model``)."""
        return TrainConfig(tangent=self.tangent, blocks=self.blocks, regime=self.regime, reset=self.reset,
                           linearize_cls=self.linearize_cls, loss=self.loss, lr=self.lr,
                           epochs=max(1, int(round(self.epochs))), weight_decay=self.weight_decay,
                           schedule="constant", output=self.resolved_output, seed=self.seed)


def _check(c: DPConfig) -> None:
    def need(ok: bool, name: str, what: str) -> None:
        if not ok:
            raise ConfigError(f"{name}: {what}, got {getattr(c, name)!r}")

    def number(name: str) -> bool:
        v = getattr(c, name)
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    need(c.regime in REGIMES, "regime", f"must be one of {', '.join(REGIMES)}")
    need(c.loss in LOSSES, "loss", f"must be one of {', '.join(LOSSES)}")
    need(c.output in ("auto", "full", "jvp"), "output", "must be auto, full or jvp")
    need(c.output != "jvp" or c.tangent, "output", "'jvp' needs a tangent model")
    need(c.optimizer in ("adam", "sgd"), "optimizer", "must be adam or sgd")
    need(c.method in ("auto", "ghost", "vmap", "loop"), "method", "must be auto, ghost, vmap or loop")
    for name in ("lr", "momentum", "weight_decay", "epochs", "sample_rate", "max_grad_norm", "delta"):
        need(number(name), name, "must be a number")
    need(c.lr > 0, "lr", "must be > 0")
    need(c.epochs > 0, "epochs", "must be > 0")
    need(0 < c.sample_rate <= 1, "sample_rate", "must be in (0, 1] (1 = full batch)")
    need(c.max_grad_norm > 0, "max_grad_norm", "must be > 0")
    need(0 < c.delta < 1, "delta", "must be in (0, 1)")
    need(c.weight_decay >= 0, "weight_decay", "must be ≥ 0")
    need(isinstance(c.physical_batch_size, int) and c.physical_batch_size >= 1, "physical_batch_size", "must be an integer ≥ 1")
    if c.target_epsilon is None and c.noise_multiplier is None:
        raise ConfigError("give target_epsilon (σ is calibrated for it) or noise_multiplier (σ), or both "
                          "(σ is then checked against the target)")
    if c.target_epsilon is not None:
        need(number("target_epsilon") and c.target_epsilon > 0, "target_epsilon", "must be > 0")
    if c.noise_multiplier is not None:
        need(number("noise_multiplier") and c.noise_multiplier >= 0, "noise_multiplier", "must be ≥ 0")
    c.train_config()  # the model part is checked by TrainConfig


@dataclass
class DPResult:
    model: nn.Module
    metrics: dict
    manifest: dict
    history: list[dict] = field(default_factory=list)


def resolve_noise(config: DPConfig, dataset_size: int) -> tuple[float, bool]:
    """(σ, calibrated): σ from the config (checked: ε(σ) ≤ ``target_epsilon`` when both are
    given), or the smallest σ, within 1 %, with ε ≤ ``target_epsilon`` (``calibrate_noise``)."""
    if config.noise_multiplier is not None:
        sigma = float(config.noise_multiplier)
        if config.target_epsilon is not None:
            from privtangent.dp.accounting import epsilon

            eps = epsilon(sigma, config.sample_rate, config.steps, config.delta, config.accountant) if sigma > 0 else float("inf")
            if eps > config.target_epsilon * (1 + 1e-9):
                raise ConfigError(f"noise_multiplier={sigma:g} gives ε={eps:.4g} > target_epsilon={config.target_epsilon:g} "
                                  f"(q={config.sample_rate:g}, steps={config.steps}, δ={config.delta:g})")
        return sigma, False
    from privtangent.dp.calibration import calibrate_noise

    sigma = calibrate_noise(config.target_epsilon, config.delta, config.sample_rate, config.steps,
                            config.accountant, dataset_size=dataset_size)
    return float(sigma), True


@functools.lru_cache(maxsize=256)
def _accounting(sigma: float, q: float, steps: int, delta: float, accountant: str) -> tuple[float, dict | None]:
    """(ε by ``accountant``, ``epsilon_report`` with the RDP cross-check); memoized (PRV bounds
    for q < 1 take seconds, and a regime grid asks for the same (σ, q, T, δ) many times)."""
    from privtangent.dp.accounting import epsilon

    eps = float(epsilon(sigma, q, steps, delta, accountant))
    try:
        from privtangent.dp.accounting import epsilon_report
    except ImportError:  # an accounting module without the cross-check
        return eps, None
    return eps, epsilon_report(sigma, q, steps, delta)


def privacy_manifest(config: DPConfig, *, noise_multiplier: float, calibrated: bool, dataset_size: int,
                     steps_run: int, randomness: dict, method: str) -> dict:
    """The privacy claim of a run, JSON-ready."""
    q, steps = config.sample_rate, config.steps
    manifest: dict[str, Any] = {
        "unit_of_privacy": UNIT_OF_PRIVACY,
        "mechanism": "DP-GD (full batch)" if q == 1.0 else "DP-SGD (Poisson-sampled)",
        "clipping": "flat per-sample L2 clipping, factor min(1, C/||g_i||), over all trained parameters",
        "noise": "Gaussian N(0, (sigma*C)^2) per coordinate on the clipped sum, divided by q*N",
        "epsilon": None,
        "delta": config.delta,
        "target_epsilon": config.target_epsilon,
        "noise_multiplier": noise_multiplier,
        "noise_calibrated": calibrated,
        "max_grad_norm": config.max_grad_norm,
        "sample_rate": q,
        "expected_batch_size": q * dataset_size,
        "dataset_size": dataset_size,
        "steps": steps,
        "steps_run": steps_run,
        "epochs": config.epochs,
        "accountant": config.accountant,
        "sampling": sampling_scheme(q),
        "per_sample_engine": method,
        "model": {"kind": "tangent" if config.tangent else "nonlinear", "regime": config.regime,
                  "blocks": config.blocks, "reset": config.reset, "linearize_cls": config.linearize_cls,
                  "output": config.resolved_output},
        "hyperparameter_tuning": "not accounted for in epsilon (choose C and lr on public data)",
        "released": "the trained parameters and what is computed from them (test metrics); nothing else "
                    "derived from the training data (no training loss, no realized batch sizes)",
        **randomness,
    }
    if noise_multiplier > 0:
        eps, report = _accounting(float(noise_multiplier), float(q), int(steps), float(config.delta), config.accountant)
        manifest["epsilon"] = eps
        if report is not None:
            manifest["epsilon_report"] = copy.deepcopy(report)
            manifest["epsilon_rdp"] = report.get("rdp")
    else:
        manifest["epsilon"] = float("inf")
        manifest["release"] = "NOT PRIVATE: noise_multiplier = 0"
    return manifest


def _regularizer(model: nn.Module, config: DPConfig) -> Callable[[], Tensor] | None:
    if not config.tangent or config.weight_decay == 0:
        return None
    params = list(trainable(model).values())
    return lambda: config.weight_decay * sum(p.pow(2).sum() for p in params)


def fit_dp(base: nn.Module, train: LabeledData, config: DPConfig, *, test: LabeledData | None = None,
           cache: FeatureCache | None = None, progress: bool = True,
           on_step: Callable[[DPStep], None] | None = None,
           extra_per_sample_grads: Mapping[str, Tensor] | Callable[[int], Mapping[str, Tensor] | None] | None = None,
           ) -> DPResult:
    """DP fine-tuning of ``base`` on ``train``; evaluates on ``test`` if given.

    Args:
        on_step: observer called with each step's ``DPStep`` (privatized gradient, batch size, ...).
        extra_per_sample_grads: canary per-sample gradients added to every step's clipped sum
            (a dict {name: (M, ...)}), or a callable step → dict or None (1-based step).

    Returns:
        ``DPResult(model, metrics, manifest, history)``; ``metrics["test_accuracy"]`` is a fraction.
    """
    cache = cache or FeatureCache()
    n = len(train)
    if n < 1:
        raise ConfigError(f"{train.name}: the training set is empty")
    tc = config.train_config()
    model = prepare_model(base, train.num_classes, tc)
    loss_fn = make_loss(config.loss)
    features = cache.features(model.base, model.start, train, progress=progress)
    labels = train.labels
    sigma, calibrated = resolve_noise(config, n)
    randomness = mechanism_randomness(config.noise_seed)
    sampler = BatchSampler(n, config.sample_rate, config.steps, randomness.generator)
    params = list(trainable(model).values())
    weight_decay = 0.0 if config.tangent else config.weight_decay
    optimizer = make_torch_optimizer(params, config.optimizer, config.lr, momentum=config.momentum,
                                     weight_decay=weight_decay)
    output = config.resolved_output
    dp = DPOptimizer(model, optimizer, loss_fn, noise_multiplier=sigma, max_grad_norm=config.max_grad_norm,
                     expected_batch_size=sampler.expected_batch_size, generator=randomness.generator,
                     output=output, method=config.method, physical_batch_size=config.physical_batch_size,
                     regularizer=_regularizer(model, config), observers=[on_step] if on_step else None)
    kind = "Ours" if config.tangent else "Reg"
    history: list[dict] = []
    start = time.perf_counter()
    model.train()
    with tqdm(total=len(sampler), desc=f"DP {kind} {config.regime} on {train.name}", disable=not progress,
              unit="step") as bar:
        for index in sampler:
            extra = extra_per_sample_grads(dp.steps_taken + 1) if callable(extra_per_sample_grads) else extra_per_sample_grads
            info = dp.step(features[index], labels[index], extra_per_sample_grads=extra)
            history.append({"step": info.step, "seconds": time.perf_counter() - start})
            bar.update(1)
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


__all__ = ["DPConfig", "DPResult", "fit_dp", "privacy_manifest", "resolve_noise", "UNIT_OF_PRIVACY"]
