"""The main job's configuration (``privtangent audit --config FILE``), validated field by field.

Every section has defaults: with no file at all the job audits the embedded default
(the cached small ViT, Fashion-MNIST 5–9). A team auditing its own model gives at least
``model`` (timm name + local checkpoint) and ``data`` (image folders). Paths are relative
to the config file's folder. Unknown or invalid fields are rejected by name
("privacy.delta: must be in (0, 1), got 2").
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from privtangent.errors import ConfigError
from privtangent.tangent.regimes import REGIMES


@dataclass(frozen=True)
class ModelSection:
    name: str | None = None  # a timm VisionTransformer name; None = the embedded default
    kwargs: dict = field(default_factory=dict)
    checkpoint: str | None = None  # local .safetensors with the base model's state_dict


@dataclass(frozen=True)
class DataSection:
    task: str = "fashion-near"  # a named task (ignored when train/test folders are given)
    train: str | None = None  # image folder: one sub-folder per class
    test: str | None = None
    train_limit: int | None = 1000  # training samples (a seeded random subset; null = all)
    test_limit: int | None = 1000
    mean: float = 0.5  # image-folder normalization
    std: float = 0.5


@dataclass(frozen=True)
class PrivacySection:
    epsilons: list = field(default_factory=lambda: [1, 3, 8])
    delta: float = 1e-5
    clip: float = 1.0  # C
    epochs: int = 50  # full-batch DP-GD steps (the paper's setting)
    lr: float = 0.01
    sample_rate: float = 1.0  # 1 = full-batch DP-GD; < 1 = Poisson-sampled DP-SGD
    noise_seed: int | None = None  # reproducible noise, flagged "not for release"


@dataclass(frozen=True)
class TrainingSection:
    blocks: int = 1
    regime: str = "full"
    reset: bool = True  # PT=F: the recipe that works on the embedded default (NOTES.md)
    linearize_cls: bool = False
    seed: int = 0
    epochs: int = 6  # non-private shard training
    lr: float = 0.01


@dataclass(frozen=True)
class RegimesSection:
    regimes: list = field(default_factory=lambda: ["full", "fc"])  # the full grid: full, bitfit, layernorm, fc
    epsilons: list | None = None  # default: privacy.epsilons
    seeds: int = 1
    train_limit: int | None = 500  # training samples per grid cell (null: all of data.train_limit)


@dataclass(frozen=True)
class ShardsSection:
    num_shards: int = 2  # the audited forget scenario; more shards dilute each sample's trace below detection
    forget: int = 32  # samples in the forget request served by the main job


@dataclass(frozen=True)
class AuditSection:
    population: int = 256  # samples the membership audit draws members/non-members from
    shadows: int = 8  # models per audited procedure (each attacked with the others as LiRA shadows)
    canaries: int = 64  # black-box one-run canaries (mislabelled samples)
    whitebox_canaries: int = 20000  # white-box Dirac gradient canaries (cost nothing extra)
    whitebox_guesses: int | None = None  # None: fixed in advance from m and the claim (choose_num_guesses)
    confidence: float = 0.95


SECTIONS = {"model": ModelSection, "data": DataSection, "privacy": PrivacySection, "training": TrainingSection,
            "regimes": RegimesSection, "shards": ShardsSection, "audit": AuditSection}


@dataclass(frozen=True)
class AuditConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    privacy: PrivacySection = field(default_factory=PrivacySection)
    training: TrainingSection = field(default_factory=TrainingSection)
    regimes: RegimesSection = field(default_factory=RegimesSection)
    shards: ShardsSection = field(default_factory=ShardsSection)
    audit: AuditSection = field(default_factory=AuditSection)
    source: str | None = None  # the config file, if any

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def regime_epsilons(self) -> list:
        return list(self.regimes.epsilons or self.privacy.epsilons)


def _section(cls, values: Any, name: str):
    if values is None:
        return cls()
    if not isinstance(values, dict):
        raise ConfigError(f"{name}: must be a mapping of fields, got {type(values).__name__}")
    known = {f.name for f in fields(cls)}
    for key in values:
        if key not in known:
            raise ConfigError(f"{name}.{key}: unknown field (known: {', '.join(sorted(known))})")
    return cls(**values)


def _need(ok: bool, where: str, what: str, value: Any) -> None:
    if not ok:
        raise ConfigError(f"{where}: {what}, got {value!r}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def validate(c: AuditConfig) -> AuditConfig:
    m, d, p, t, r, s, a = c.model, c.data, c.privacy, c.training, c.regimes, c.shards, c.audit
    _need(m.name is None or isinstance(m.name, str), "model.name", "must be a timm model name", m.name)
    _need(isinstance(m.kwargs, dict), "model.kwargs", "must be a mapping", m.kwargs)
    _need(m.checkpoint is None or m.name is not None, "model.checkpoint", "needs model.name", m.checkpoint)
    if m.checkpoint is not None:
        _need(Path(m.checkpoint).is_file(), "model.checkpoint", "file does not exist", m.checkpoint)
        _need(Path(m.checkpoint).suffix == ".safetensors", "model.checkpoint",
              "must be a .safetensors file (pickle checkpoints are never loaded)", m.checkpoint)
    _need((d.train is None) == (d.test is None), "data.test" if d.test is None else "data.train",
          "give both data.train and data.test image folders, or neither", d.test if d.test is None else d.train)
    for key in ("train", "test"):
        folder = getattr(d, key)
        if folder is not None:
            _need(Path(folder).is_dir(), f"data.{key}", "image folder does not exist", folder)
    if d.train is not None:
        _need(m.name is not None, "model.name", "an image-folder audit needs the model it is for", m.name)
    for key in ("train_limit", "test_limit"):
        v = getattr(d, key)
        _need(v is None or (_is_int(v) and v >= 10), f"data.{key}", "must be an integer ≥ 10 or null", v)
    _need(isinstance(p.epsilons, list) and p.epsilons and all(_is_num(e) and e > 0 for e in p.epsilons),
          "privacy.epsilons", "must be a non-empty list of numbers > 0", p.epsilons)
    _need(_is_num(p.delta) and 0 < p.delta < 1, "privacy.delta", "must be in (0, 1)", p.delta)
    _need(_is_num(p.clip) and p.clip > 0, "privacy.clip", "must be > 0", p.clip)
    _need(_is_int(p.epochs) and p.epochs >= 1, "privacy.epochs", "must be an integer ≥ 1", p.epochs)
    _need(_is_num(p.lr) and p.lr > 0, "privacy.lr", "must be > 0", p.lr)
    _need(_is_num(p.sample_rate) and 0 < p.sample_rate <= 1, "privacy.sample_rate", "must be in (0, 1]", p.sample_rate)
    _need(p.noise_seed is None or _is_int(p.noise_seed), "privacy.noise_seed", "must be an integer or null", p.noise_seed)
    _need(_is_int(t.blocks) and t.blocks >= 1, "training.blocks", "must be an integer ≥ 1", t.blocks)
    _need(t.regime in REGIMES, "training.regime", f"must be one of {', '.join(REGIMES)}", t.regime)
    _need(isinstance(t.reset, bool), "training.reset", "must be true or false", t.reset)
    _need(isinstance(t.linearize_cls, bool), "training.linearize_cls", "must be true or false", t.linearize_cls)
    _need(_is_int(t.seed), "training.seed", "must be an integer", t.seed)
    _need(_is_int(t.epochs) and t.epochs >= 1, "training.epochs", "must be an integer ≥ 1", t.epochs)
    _need(_is_num(t.lr) and t.lr > 0, "training.lr", "must be > 0", t.lr)
    _need(isinstance(r.regimes, list) and r.regimes and all(g in REGIMES for g in r.regimes), "regimes.regimes",
          f"must be a non-empty list of {', '.join(REGIMES)}", r.regimes)
    _need(r.epsilons is None or (isinstance(r.epsilons, list) and all(_is_num(e) and e > 0 for e in r.epsilons)),
          "regimes.epsilons", "must be a list of numbers > 0 or null", r.epsilons)
    _need(_is_int(r.seeds) and r.seeds >= 1, "regimes.seeds", "must be an integer ≥ 1", r.seeds)
    _need(r.train_limit is None or (_is_int(r.train_limit) and r.train_limit >= 10), "regimes.train_limit",
          "must be an integer ≥ 10 or null", r.train_limit)
    _need(_is_int(s.num_shards) and s.num_shards >= 2, "shards.num_shards", "must be an integer ≥ 2", s.num_shards)
    _need(_is_int(s.forget) and s.forget >= 1, "shards.forget", "must be an integer ≥ 1", s.forget)
    for key in ("population", "canaries", "whitebox_canaries"):
        v = getattr(a, key)
        _need(_is_int(v) and v >= 2, f"audit.{key}", "must be an integer ≥ 2", v)
    _need(a.whitebox_guesses is None or (_is_int(a.whitebox_guesses) and a.whitebox_guesses >= 2),
          "audit.whitebox_guesses", "must be an integer ≥ 2 or null", a.whitebox_guesses)
    _need(_is_int(a.shadows) and a.shadows >= 3, "audit.shadows", "must be an integer ≥ 3 (each target needs ≥ 2 shadows)",
          a.shadows)
    _need(a.whitebox_guesses is None or a.whitebox_guesses <= a.whitebox_canaries, "audit.whitebox_guesses", "must be ≤ audit.whitebox_canaries",
          a.whitebox_guesses)
    _need(_is_num(a.confidence) and 0.5 <= a.confidence < 1, "audit.confidence", "must be in [0.5, 1)", a.confidence)
    return c


def _resolve_paths(raw: dict, folder: Path) -> dict:
    def fix(section: str, key: str) -> None:
        value = raw.get(section, {}) and raw[section].get(key)
        if isinstance(value, str) and not Path(value).is_absolute():
            raw[section][key] = str((folder / value).resolve())

    fix("model", "checkpoint")
    fix("data", "train")
    fix("data", "test")
    return raw


def load_config(path: str | Path | None) -> AuditConfig:
    """The config in ``path`` (YAML or TOML), or the embedded default when ``path`` is None."""
    if path is None:
        return validate(AuditConfig())
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        text = path.read_text()
        raw = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (yaml.YAMLError, tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not valid {'TOML' if path.suffix == '.toml' else 'YAML'}: {err}") from None
    raw = raw or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections ({', '.join(SECTIONS)})")
    for key in raw:
        if key not in SECTIONS:
            raise ConfigError(f"{key}: unknown section (known: {', '.join(SECTIONS)})")
    raw = _resolve_paths({k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}, path.parent)
    try:
        sections = {name: _section(cls, raw.get(name), name) for name, cls in SECTIONS.items()}
    except TypeError as err:
        raise ConfigError(f"{path}: {err}") from None
    return validate(AuditConfig(**sections, source=str(path)))
