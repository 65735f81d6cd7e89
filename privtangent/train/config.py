"""``TrainConfig``: every knob of TAFT / NLFT / FC training, validated field by field."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any

from privtangent.errors import ConfigError
from privtangent.losses import LOSSES
from privtangent.tangent.regimes import REGIMES


@dataclass(frozen=True)
class TrainConfig:
    """Defaults are the TAFT recipe that works on the embedded default (NOTES.md)."""

    tangent: bool = True  # TAFT (True) or non-linear fine-tuning of the same parameters
    blocks: int = 1  # how many last blocks are fine-tuned
    regime: str = "full"  # full | bitfit | layernorm | fc
    reset: bool = False  # re-initialize the fine-tuned blocks first (paper PT=F)
    linearize_cls: bool = False  # reset and train the CLS token (paper CLS=T)
    loss: str = "rsl"  # rsl | ce | mse
    alpha: float = 1.0  # RSL α (eq. 2)
    kappa: float = 15.0  # RSL κ (eq. 2)
    lr: float = 1e-2
    epochs: int = 10
    batch_size: int = 32
    weight_decay: float = 1e-4  # TAFT: explicit wd·‖Δw‖² penalty; NLFT: decoupled (AdamW)
    project_radius: float | None = None  # project Δw onto the L2 ball of this radius (App. B)
    schedule: str = "step"  # step (÷10 at 50% and 83% of epochs) | constant
    output: str = "full"  # full: f_w + J·Δw; jvp: J·Δw only (the paper's DP setting)
    seed: int = 0

    def __post_init__(self) -> None:
        _check(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], section: str = "train") -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{section}.{unknown[0]}: unknown field (known: {', '.join(sorted(known))})")
        try:
            return cls(**values)
        except ConfigError as err:
            raise ConfigError(f"{section}.{err}") from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


def _check(c: TrainConfig) -> None:
    def need(ok: bool, field: str, what: str) -> None:
        if not ok:
            raise ConfigError(f"{field}: {what}, got {getattr(c, field)!r}")

    for name in ("tangent", "reset", "linearize_cls"):
        need(isinstance(getattr(c, name), bool), name, "must be true or false")
    for name in ("blocks", "epochs", "batch_size", "seed"):
        need(isinstance(getattr(c, name), int) and not isinstance(getattr(c, name), bool), name, "must be an integer")
    need(c.blocks >= 1, "blocks", "must be ≥ 1")
    need(c.epochs >= 1, "epochs", "must be ≥ 1")
    need(c.batch_size >= 1, "batch_size", "must be ≥ 1")
    need(c.regime in REGIMES, "regime", f"must be one of {', '.join(REGIMES)}")
    need(c.loss in LOSSES, "loss", f"must be one of {', '.join(LOSSES)}")
    for name in ("alpha", "kappa", "lr", "weight_decay"):
        need(isinstance(getattr(c, name), (int, float)) and not isinstance(getattr(c, name), bool), name, "must be a number")
    need(c.lr > 0, "lr", "must be > 0")
    need(c.weight_decay >= 0, "weight_decay", "must be ≥ 0")
    need(c.alpha > 0, "alpha", "must be > 0")
    need(c.project_radius is None or c.project_radius > 0, "project_radius", "must be > 0 or null")
    need(c.schedule in ("step", "constant"), "schedule", "must be 'step' or 'constant'")
    need(c.output in ("full", "jvp"), "output", "must be 'full' or 'jvp'")
    need(c.output == "full" or c.tangent, "output", "'jvp' needs a tangent model")
