"""``DPConfig``: every knob of a DP fine-tuning run, validated field by field.

The defaults are the paper's DP setting (section 4.5, Appendix A): full-batch DP-GD (q = 1,
every step sees the whole data set), 50 epochs = 50 steps, no learning-rate decay,
cross-entropy, and a tangent model that predicts with the JVP output J·Δw alone. What is
fine-tuned (tangent or not, blocks, regime, reset, CLS) is the shared ``ModelChoice``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from privtangent.choices import ACCOUNTANTS, LOSSES, OPTIMIZERS, PER_SAMPLE_METHODS
from privtangent.config.fields import parse_section
from privtangent.dp.sampling import steps_for_epochs
from privtangent.errors import ConfigError
from privtangent.train.config import ModelChoice, TrainConfig, is_integer, is_number, need


@dataclass(frozen=True)
class DPConfig(ModelChoice):
    """A DP fine-tuning run. Defaults: the paper's full-batch DP-GD setting."""

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
        super().__post_init__()
        need(self.loss in LOSSES, self, "loss", f"must be one of {', '.join(LOSSES)}")
        need(self.output in ("auto", "full", "jvp"), self, "output", "must be auto, full or jvp")
        need(self.output != "jvp" or self.tangent, self, "output", "'jvp' needs a tangent model")
        need(self.optimizer in OPTIMIZERS, self, "optimizer", "must be adam or sgd")
        need(self.method in PER_SAMPLE_METHODS, self, "method", "must be auto, ghost, vmap or loop")
        need(self.accountant in ACCOUNTANTS, self, "accountant", f"must be one of {', '.join(ACCOUNTANTS)}")
        for name in ("lr", "momentum", "weight_decay", "epochs", "sample_rate", "max_grad_norm", "delta"):
            need(is_number(getattr(self, name)), self, name, "must be a number")
        need(self.lr > 0, self, "lr", "must be > 0")
        need(self.epochs > 0, self, "epochs", "must be > 0")
        need(0 < self.sample_rate <= 1, self, "sample_rate", "must be in (0, 1] (1 = full batch)")
        need(self.max_grad_norm > 0, self, "max_grad_norm", "must be > 0")
        need(0 < self.delta < 1, self, "delta", "must be in (0, 1)")
        need(self.weight_decay >= 0, self, "weight_decay", "must be ≥ 0")
        need(is_integer(self.seed) and self.seed >= 0, self, "seed", "must be an integer ≥ 0")
        need(is_integer(self.physical_batch_size) and self.physical_batch_size >= 1, self, "physical_batch_size",
             "must be an integer ≥ 1")
        need(self.noise_seed is None or (is_integer(self.noise_seed) and self.noise_seed >= 0), self, "noise_seed",
             "must be an integer ≥ 0 or null")
        if self.target_epsilon is None and self.noise_multiplier is None:
            raise ConfigError("give target_epsilon (σ is calibrated for it) or noise_multiplier (σ), or both "
                              "(σ is then checked against the target)")
        if self.target_epsilon is not None:
            need(is_number(self.target_epsilon) and self.target_epsilon > 0, self, "target_epsilon", "must be > 0")
        if self.noise_multiplier is not None:
            need(is_number(self.noise_multiplier) and self.noise_multiplier >= 0, self, "noise_multiplier",
                 "must be ≥ 0")

    @classmethod
    def from_dict(cls, values: dict[str, Any], section: str = "dp") -> DPConfig:
        return parse_section(cls, values, section)

    def replace(self, **changes: Any) -> DPConfig:
        return dataclasses.replace(self, **changes)

    @property
    def resolved_output(self) -> str:
        if self.output == "auto":
            return "jvp" if self.tangent else "full"
        return self.output

    @property
    def steps(self) -> int:
        return steps_for_epochs(self.epochs, self.sample_rate)

    @property
    def seeded_noise(self) -> bool:
        """True when the noise is reproducible from ``noise_seed``: such a model is not for release."""
        return self.noise_seed is not None

    def train_config(self) -> TrainConfig:
        """The model/loss part as a ``TrainConfig`` (for ``prepare_model``)."""
        return TrainConfig(**self.model_choice(), loss=self.loss, lr=self.lr,
                           epochs=max(1, int(round(self.epochs))), weight_decay=self.weight_decay,
                           schedule="constant", output=self.resolved_output, seed=self.seed)


__all__ = ["DPConfig"]
