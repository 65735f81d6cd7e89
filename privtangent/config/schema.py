"""The one config schema of every privtangent command and config file.

Sections (each optional; fields not given take defaults):

- ``model``: the base model — a timm ``VisionTransformer`` name, its kwargs, and a local
  ``.safetensors`` checkpoint (no name: the embedded default);
- ``data``: a named task of the embedded default, or image folders (one sub-folder per class);
- ``training``: a ``TrainConfig`` — what is fine-tuned (tangent or not, blocks, regime, reset,
  CLS) and the non-private recipe; the DP runs fine-tune the same model part;
- ``privacy``: the claimed ε values and the DP mechanism — every ``DPConfig`` field that is not
  part of the model (δ, C = ``max_grad_norm``, q, epochs, lr, optimizer, accountant, noise seed);
- ``regimes``, ``shards``, ``audit``: the sizes of the main job's regime comparison, forget
  scenario and attacks;
- run settings: ``out`` (a directory), ``threads``, ``device``.

Paths are relative to the config file's folder. Short forms accepted for a one-model run file:
``data: NAME`` (a task), top-level ``data_limit`` / ``test_limit`` (``data.train_limit`` /
``data.test_limit``), ``train:`` for ``training:``, and training fields at the top level.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from privtangent.choices import REGIMES, TASKS
from privtangent.config.fields import coerce, parse_section, unknown_key_error
from privtangent.config.files import read_config_file
from privtangent.dp.config import DPConfig
from privtangent.errors import ConfigError
from privtangent.train.config import ModelChoice, TrainConfig, is_integer, is_number, need

# timm kwargs that would load weights from a file or a hub, or reach the network: a base model
# is built from its name with pretrained=False, and its weights come from model.checkpoint alone.
FORBIDDEN_MODEL_KWARGS = ("pretrained", "pretrained_cfg", "pretrained_cfg_overlay", "pretrained_strict",
                          "checkpoint_path", "cache_dir", "hf_hub_id", "url", "file")


@dataclass(frozen=True)
class ModelSpec:
    """``model:`` — the base model (no name: the embedded default)."""

    name: str | None = None  # a timm VisionTransformer name, built with pretrained=False
    kwargs: Mapping[str, Any] = field(default_factory=dict)  # passed to timm.create_model
    checkpoint: str | None = None  # a local .safetensors state_dict (without a name: the default's architecture)

    def __post_init__(self) -> None:
        need(self.name is None or (isinstance(self.name, str) and self.name != ""), self, "name",
             "must be a timm model name")
        need(isinstance(self.kwargs, Mapping), self, "kwargs", "must be a mapping")
        bad = sorted(k for k in self.kwargs if k in FORBIDDEN_MODEL_KWARGS)
        if bad:
            raise ConfigError(f"kwargs: {bad[0]!r} would load weights or reach the network; privtangent builds "
                              "the model with pretrained=False and loads weights only from model.checkpoint "
                              "(a local .safetensors file)")
        need(self.checkpoint is None or isinstance(self.checkpoint, str), self, "checkpoint", "must be a file path")
        need(not self.kwargs or self.name is not None, self, "kwargs", "needs model.name")

    @property
    def embedded_default(self) -> bool:
        return self.name is None


def _is_stat(value: Any) -> bool:
    """A normalization mean/std: a number or a non-empty list of numbers."""
    if isinstance(value, (list, tuple)):
        return bool(value) and all(is_number(v) and math.isfinite(v) for v in value)
    return is_number(value) and math.isfinite(value)


@dataclass(frozen=True)
class DataSpec:
    """``data:`` — a named task, or image folders with one sub-folder per class."""

    task: str = "fashion-near"  # a task of the embedded default (ignored when train/test folders are given)
    train: str | None = None  # image folder: one sub-folder per class
    test: str | None = None
    train_limit: int | None = None  # training samples (a seeded random subset; null = all)
    test_limit: int | None = None
    mean: float | tuple[float, ...] | None = None  # image-folder normalization (null: the model's data config)
    std: float | tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        need(self.task in TASKS, self, "task", f"unknown data set; choose one of {', '.join(TASKS)}")
        if (self.train is None) != (self.test is None):
            missing = "test" if self.test is None else "train"
            raise ConfigError(f"{missing}: an image-folder data set needs both data.train and data.test folders")
        for name in ("train_limit", "test_limit"):
            value = getattr(self, name)
            need(value is None or (is_integer(value) and value >= 1), self, name, "must be an integer ≥ 1 or null")
        for name in ("mean", "std"):
            value = getattr(self, name)
            need(value is None or _is_stat(value), self, name, "must be a number or a list of numbers")
        if self.std is not None:
            stds = self.std if isinstance(self.std, (list, tuple)) else [self.std]
            need(all(s > 0 for s in stds), self, "std", "must be > 0")

    @property
    def folders(self) -> bool:
        return self.train is not None


@dataclass(frozen=True)
class PrivacySpec:
    """``privacy:`` — the claimed ε values and the DP mechanism (``DPConfig`` without the model part)."""

    epsilons: tuple[float, ...] = (1.0, 3.0, 8.0)
    mechanism: DPConfig = field(default_factory=lambda: DPConfig(target_epsilon=1.0))

    def __post_init__(self) -> None:
        ok = (isinstance(self.epsilons, tuple) and len(self.epsilons) > 0
              and all(is_number(e) and 0 < e < math.inf for e in self.epsilons))
        need(ok, self, "epsilons", "must be a non-empty list of finite numbers > 0")

    def dp_config(self, training: TrainConfig, epsilon: float | None = None) -> DPConfig:
        """The DP run that fine-tunes ``training``'s model part for the claim ``epsilon``."""
        return self.mechanism.replace(**training.model_choice(), seed=training.seed,
                                      target_epsilon=float(self.epsilons[0] if epsilon is None else epsilon))


# DPConfig fields that a privacy section sets (the model part comes from `training`)
PRIVACY_FIELDS = tuple(f.name for f in dataclasses.fields(DPConfig)
                       if f.name not in ModelChoice.field_names() + ["target_epsilon", "seed"])


@dataclass(frozen=True)
class RegimesSpec:
    """``regimes:`` — the main job's regime comparison (Full/BitFit/LayerNorm/FC × Ours/Reg × ε)."""

    regimes: tuple[str, ...] = REGIMES  # any of full, bitfit, layernorm, fc
    epsilons: tuple[float, ...] | None = None  # default: privacy.epsilons
    seeds: int = 3  # at least 2 for an interval over seeds
    train_limit: int | None = None  # training samples (null: all of data.train_limit)
    # CPU seconds for the comparison: Poisson DP-SGD whose steps and batch size are planned to fit
    # (privtangent.experiments.regimes.run_quick_comparison). null: the training recipe's DP-GD
    # for every cell, however long it takes.
    budget_seconds: float | None = 120.0

    def __post_init__(self) -> None:
        need(isinstance(self.regimes, tuple) and len(self.regimes) > 0 and all(r in REGIMES for r in self.regimes),
             self, "regimes", f"must be a non-empty list of {', '.join(REGIMES)}")
        need(self.epsilons is None or (isinstance(self.epsilons, tuple) and len(self.epsilons) > 0
                                       and all(is_number(e) and 0 < e < math.inf for e in self.epsilons)),
             self, "epsilons", "must be a list of numbers > 0 or null")
        need(is_integer(self.seeds) and self.seeds >= 1, self, "seeds", "must be an integer ≥ 1")
        need(self.train_limit is None or (is_integer(self.train_limit) and self.train_limit >= 10), self,
             "train_limit", "must be an integer ≥ 10 or null")
        need(self.budget_seconds is None or (is_number(self.budget_seconds) and 0 < self.budget_seconds < math.inf),
             self, "budget_seconds", "must be a number of seconds > 0 or null")


@dataclass(frozen=True)
class ShardsSpec:
    """``shards:`` — the forget scenario the main job serves and audits."""

    num_shards: int = 2  # more shards dilute each sample's trace below what the audit can detect
    forget: int = 32  # samples in the forget request

    def __post_init__(self) -> None:
        need(is_integer(self.num_shards) and self.num_shards >= 2, self, "num_shards", "must be an integer ≥ 2")
        need(is_integer(self.forget) and self.forget >= 1, self, "forget", "must be an integer ≥ 1")


@dataclass(frozen=True)
class AuditSpec:
    """``audit:`` — the sizes of the attacks and the confidence of every bound."""

    population: int = 256  # samples the membership audit draws members/non-members from
    shadows: int = 8  # models per audited procedure (each attacked with the others as LiRA shadows)
    canaries: int = 64  # black-box one-run canaries (mislabelled samples)
    whitebox_canaries: int = 20000  # white-box Dirac gradient canaries (cost nothing extra)
    whitebox_guesses: int | None = None  # None: fixed in advance from m and the claim
    input_canaries: int = 0  # crafted canary images of the output-only audit (0: not run)
    confidence: float = 0.95

    def __post_init__(self) -> None:
        for name in ("population", "canaries", "whitebox_canaries"):
            need(is_integer(getattr(self, name)) and getattr(self, name) >= 2, self, name, "must be an integer ≥ 2")
        need(self.whitebox_guesses is None or (is_integer(self.whitebox_guesses) and self.whitebox_guesses >= 2),
             self, "whitebox_guesses", "must be an integer ≥ 2 or null")
        need(is_integer(self.shadows) and self.shadows >= 3, self, "shadows",
             "must be an integer ≥ 3 (each target needs ≥ 2 shadows)")
        need(self.whitebox_guesses is None or self.whitebox_guesses <= self.whitebox_canaries, self,
             "whitebox_guesses", "must be ≤ audit.whitebox_canaries")
        need(is_number(self.confidence) and 0.5 <= self.confidence < 1, self, "confidence", "must be in [0.5, 1)")
        need(is_integer(self.input_canaries) and (self.input_canaries == 0 or self.input_canaries >= 4), self,
             "input_canaries", "must be 0 (off) or an integer ≥ 4")


@dataclass(frozen=True)
class RunConfig:
    """A whole config file, validated (see the module docstring)."""

    model: ModelSpec = field(default_factory=ModelSpec)
    data: DataSpec = field(default_factory=DataSpec)
    training: TrainConfig = field(default_factory=TrainConfig)
    privacy: PrivacySpec = field(default_factory=PrivacySpec)
    regimes: RegimesSpec = field(default_factory=RegimesSpec)
    shards: ShardsSpec = field(default_factory=ShardsSpec)
    audit: AuditSpec = field(default_factory=AuditSpec)
    out: str | None = None
    threads: int | None = None
    device: str | None = None
    source: str | None = None  # the config file, if any

    def __post_init__(self) -> None:
        need(self.threads is None or (is_integer(self.threads) and self.threads >= 1), self, "threads",
             "must be an integer ≥ 1")
        need(self.out is None or isinstance(self.out, str), self, "out", "must be a directory path")
        need(self.device is None or isinstance(self.device, str), self, "device", "must be a device name (cpu, cuda)")

    def dp_config(self, epsilon: float | None = None) -> DPConfig:
        """The DP run of this config for the claim ``epsilon`` (default: the first claimed ε)."""
        return self.privacy.dp_config(self.training, epsilon)

    @property
    def regime_epsilons(self) -> tuple[float, ...]:
        return tuple(self.regimes.epsilons or self.privacy.epsilons)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["privacy"] = {"epsilons": list(self.privacy.epsilons),
                          **{k: getattr(self.privacy.mechanism, k) for k in PRIVACY_FIELDS}}
        return out


SECTIONS = ("model", "data", "training", "privacy", "regimes", "shards", "audit")
RUN_KEYS = ("out", "threads", "device")
SHORT_FORMS = ("train", "data_limit", "test_limit")


def _privacy(values: Any, where: str, base: PrivacySpec) -> PrivacySpec:
    if values is None:
        return base
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where}: must be a mapping of fields, got {type(values).__name__}")
    known = ["epsilons", *PRIVACY_FIELDS]
    for key in values:
        if key not in known:
            raise unknown_key_error(str(key), known, f"{where}.")
    mechanism = {k: v for k, v in values.items() if k != "epsilons"}
    spec = parse_section(DPConfig, mechanism, where, base.mechanism)
    epsilons = values.get("epsilons", base.epsilons)
    if isinstance(epsilons, (int, float, str)) and not isinstance(epsilons, bool):
        epsilons = [epsilons]
    if isinstance(epsilons, (list, tuple)):
        epsilons = tuple(float(e) if is_number(e) else e for e in coerce(tuple[float, ...], epsilons))
    try:
        return PrivacySpec(epsilons=epsilons, mechanism=spec)
    except ConfigError as err:
        raise ConfigError(f"{where}.{err}") from None


def _normalize(raw: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The canonical sections of ``raw`` (short forms expanded) and the name each was written as."""
    training_fields = set(TrainConfig.field_names())
    for key in raw:
        if key not in (*SECTIONS, *RUN_KEYS, *SHORT_FORMS) and key not in training_fields:
            raise unknown_key_error(str(key), [*SECTIONS, *RUN_KEYS], "")
    if "train" in raw and "training" in raw:
        raise ConfigError("train: given both as train: and training:; keep one")
    names = {s: s for s in SECTIONS}
    out: dict[str, Any] = {k: v for k, v in raw.items() if k in SECTIONS or k in RUN_KEYS}
    if "train" in raw:
        out["training"], names["training"] = raw["train"], "train"
    top = {k: v for k, v in raw.items() if k in training_fields}
    if top:
        section = out.get("training") or {}
        if not isinstance(section, Mapping):
            raise ConfigError(f"{names['training']}: must be a mapping of fields, got {type(section).__name__}")
        both = sorted(set(top) & set(section))
        if both:
            raise ConfigError(f"{both[0]}: given both at the top level and under {names['training']}:; keep one")
        out["training"] = {**section, **top}
        if not section:
            names["training"] = ""  # errors name top-level fields by their bare name
    data = out.get("data")
    if isinstance(data, str):
        if data not in TASKS:
            raise ConfigError(f"data: unknown data set {data!r}; choose one of {', '.join(TASKS)} "
                              "or give image folders {train: DIR, test: DIR}")
        out["data"] = {"task": data}
    for short, canonical in (("data_limit", "train_limit"), ("test_limit", "test_limit")):
        if short in raw:
            value = raw[short]
            if value is not None and not (is_integer(value) and value >= 1):
                raise ConfigError(f"{short}: must be an integer ≥ 1, got {value!r}")
            data = out.get("data") or {}
            if not isinstance(data, Mapping):
                raise ConfigError(f"data: must be a data set name or a mapping, got {type(data).__name__}")
            out["data"] = {**data, canonical: value}
    return out, names


def _resolve_paths(config: RunConfig, folder: Path) -> RunConfig:
    def rel(value: str | None) -> str | None:
        return value if value is None or Path(value).is_absolute() else str((folder / value).resolve())

    return dataclasses.replace(
        config,
        model=dataclasses.replace(config.model, checkpoint=rel(config.model.checkpoint)),
        data=dataclasses.replace(config.data, train=rel(config.data.train), test=rel(config.data.test)),
        out=rel(config.out))


def _merge(layers: list[dict[str, Any]]) -> dict[str, Any]:
    """Later layers override earlier ones, field by field within a section."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if key in SECTIONS and isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
    return merged


def _training(values: Any, where: str) -> TrainConfig:
    """The training section with each method's defaults (``TrainConfig.recipe``): lr and loss
    default to what suits TAFT, non-linear fine-tuning or the head alone."""
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where}: must be a mapping of fields, got {type(values).__name__}")
    given = dict(values)
    return TrainConfig.recipe(given.pop("tangent", True), given.pop("regime", "full"), section=where, **given)


def parse_config(raw: Mapping[str, Any], defaults: Mapping[str, Any] | None = None, source: str | None = None,
                 overrides: Mapping[str, Any] | None = None) -> RunConfig:
    """A config from layers of raw mappings: a command's ``defaults``, the file's ``raw``, then
    ``overrides`` (command-line flags). Errors name fields as the file spells them."""
    layers = [_normalize(layer) for layer in (defaults or {}, raw, overrides or {})]
    names = layers[1][1]
    values = _merge([layer for layer, _ in layers])
    base = RunConfig()
    sections: dict[str, Any] = {}
    for key in ("model", "data", "regimes", "shards", "audit"):
        sections[key] = parse_section(type(getattr(base, key)), values.get(key), names[key])
    sections["training"] = _training(values.get("training"), names["training"])
    sections["privacy"] = _privacy(values.get("privacy"), names["privacy"], base.privacy)
    run = {k: values[k] for k in RUN_KEYS if k in values}
    return dataclasses.replace(base, **sections, **run, source=source)


PATH_FIELDS = (("model", "checkpoint"), ("data", "train"), ("data", "test"))


def _absolute_paths(raw: Mapping[str, Any]) -> dict[str, Any]:
    """``raw`` with its relative paths made absolute from the working directory (command-line flags)."""
    out = dict(raw)
    for section, key in PATH_FIELDS:
        value = out.get(section)
        if isinstance(value, Mapping) and isinstance(value.get(key), str):
            out[section] = {**value, key: str(Path(value[key]).resolve())}
    if isinstance(out.get("out"), str):
        out["out"] = str(Path(out["out"]).resolve())
    return out


def load_config(path: str | Path | None, defaults: Mapping[str, Any] | None = None,
                overrides: Mapping[str, Any] | None = None) -> RunConfig:
    """The config in ``path`` (YAML, TOML or JSON; None: no file) over ``defaults``, under ``overrides``.

    Paths in the file are relative to its folder; paths in ``overrides`` (command-line flags) to
    the working directory.
    """
    overrides = _absolute_paths(overrides or {})
    if path is None:
        return parse_config({}, defaults, None, overrides)
    path = Path(path)
    config = parse_config(read_config_file(path), defaults, str(path), overrides)
    return _resolve_paths(config, path.resolve().parent)


__all__ = ["AuditSpec", "DataSpec", "FORBIDDEN_MODEL_KWARGS", "ModelSpec", "PRIVACY_FIELDS", "PrivacySpec",
           "RegimesSpec", "RunConfig", "SECTIONS", "ShardsSpec", "load_config", "parse_config"]
