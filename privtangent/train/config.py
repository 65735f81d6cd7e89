"""``TrainConfig``: every knob of TAFT / NLFT / FC training, validated field by field.

``TrainConfig()`` is the TAFT recipe that works on the embedded default (NOTES.md);
``TrainConfig.recipe(tangent=..., regime=...)`` gives the defaults that suit each method
(lr 1e-2 and the rescaled square loss for TAFT; lr 1e-3 and cross-entropy for non-linear
fine-tuning and for the head alone), with explicit overrides on top.
``read_config_file`` reads a YAML or TOML run file and ``TrainConfig.from_dict`` validates
one section of it, naming the bad field (``train.lr: must be > 0, got -1``).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from privtangent.errors import ConfigError
from privtangent.losses import LOSSES
from privtangent.tangent.regimes import REGIMES

TAFT_LR = 1e-2  # NOTES.md "Making TAFT work": Adam, lr 1e-2, batch 32
NLFT_LR = 1e-3  # plain fine-tuning and the head alone


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
    lr: float = TAFT_LR
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
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_dict(cls, values: dict[str, Any], section: str = "train") -> "TrainConfig":
        """Validate ``values`` (a config-file section); errors name ``section.field``."""
        if not isinstance(values, dict):
            raise ConfigError(f"{section}: must be a mapping of training fields, got {type(values).__name__}")
        known = set(cls.field_names())
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{section}.{unknown[0]}: unknown field (known: {', '.join(sorted(known))})")
        values = {k: _coerce(k, v) for k, v in values.items()}
        try:
            return cls(**values)
        except ConfigError as err:
            raise ConfigError(f"{section}.{err}" if section else str(err)) from None

    @classmethod
    def recipe(cls, tangent: bool = True, regime: str = "full", section: str = "train",
               **overrides: Any) -> "TrainConfig":
        """The method's defaults (``default_lr`` / ``default_loss``) with ``overrides`` on top.

        ``None`` values in ``overrides`` mean "not given" and take the default.
        """
        given = {k: v for k, v in overrides.items() if v is not None}
        values = {"tangent": tangent, "regime": regime, **given}
        values.setdefault("lr", default_lr(values["tangent"], values["regime"]))
        values.setdefault("loss", default_loss(values["tangent"]))
        return cls.from_dict(values, section)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    @property
    def method(self) -> str:
        """The paper's name of the method: ``TAFT-1``, ``NLFT-2``, ``FC``, ``TAFT-1 bitfit``, ..."""
        if self.regime == "fc":
            return "FC" if not self.tangent else "TAFT-FC"
        name = f"{'TAFT' if self.tangent else 'NLFT'}-{self.blocks}"
        return name if self.regime == "full" else f"{name} {self.regime}"


def default_lr(tangent: bool, regime: str = "full") -> float:
    """lr 1e-2 for TAFT (NOTES.md), 1e-3 for non-linear fine-tuning and the head alone."""
    return TAFT_LR if tangent and regime != "fc" else NLFT_LR


def default_loss(tangent: bool) -> str:
    """TAFT: the rescaled square loss (convex, paper eq. 2); non-linear: cross-entropy."""
    return "rsl" if tangent else "ce"


def _coerce(name: str, value: Any) -> Any:
    """YAML reads ``1e-3`` as a string (YAML 1.1); accept numeric strings for float fields."""
    if name in ("alpha", "kappa", "lr", "weight_decay", "project_radius") and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _check(c: TrainConfig) -> None:
    def need(ok: bool, field: str, what: str) -> None:
        if not ok:
            raise ConfigError(f"{field}: {what}, got {getattr(c, field)!r}")

    def is_number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value  # not NaN

    for name in ("tangent", "reset", "linearize_cls"):
        need(isinstance(getattr(c, name), bool), name, "must be true or false")
    for name in ("blocks", "epochs", "batch_size", "seed"):
        need(isinstance(getattr(c, name), int) and not isinstance(getattr(c, name), bool), name, "must be an integer")
    need(c.blocks >= 1, "blocks", "must be ≥ 1")
    need(c.epochs >= 1, "epochs", "must be ≥ 1")
    need(c.batch_size >= 1, "batch_size", "must be ≥ 1")
    need(c.seed >= 0, "seed", "must be ≥ 0")
    need(isinstance(c.regime, str) and c.regime in REGIMES, "regime", f"must be one of {', '.join(REGIMES)}")
    need(isinstance(c.loss, str) and c.loss in LOSSES, "loss", f"must be one of {', '.join(LOSSES)}")
    for name in ("alpha", "kappa", "lr", "weight_decay"):
        need(is_number(getattr(c, name)), name, "must be a number")
    need(c.lr > 0 and c.lr != float("inf"), "lr", "must be > 0")
    need(c.weight_decay >= 0, "weight_decay", "must be ≥ 0")
    need(c.alpha > 0, "alpha", "must be > 0")
    need(c.project_radius is None or (is_number(c.project_radius) and c.project_radius > 0),
         "project_radius", "must be > 0 or null")
    need(c.schedule in ("step", "constant"), "schedule", "must be 'step' or 'constant'")
    need(c.output in ("full", "jvp"), "output", "must be 'full' or 'jvp'")
    need(c.output == "full" or c.tangent, "output", "'jvp' needs a tangent model (tangent: true)")


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A run file as a dict: YAML (``.yaml``/``.yml``), TOML (``.toml``) or JSON (``.json``)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    text = path.read_text()
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif suffix == ".json":
            data = json.loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            raise ConfigError(f"config file {path}: unknown format {suffix!r}; use .yaml, .yml, .toml or .json")
    except ConfigError:
        raise
    except Exception as err:  # yaml.YAMLError, tomllib.TOMLDecodeError, json.JSONDecodeError
        raise ConfigError(f"config file {path} is not valid {suffix.lstrip('.').upper()}: {err}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: the top level must be a mapping, got {type(data).__name__}")
    return data
