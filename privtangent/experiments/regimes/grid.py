"""What a regime comparison runs: regimes × model kinds × target ε × seeds, and the DP recipe of each cell.

A *cell* is one (data set, regime, kind, ε); it is trained once per seed. The regimes are the
paper's Table 3 columns (Full = the last block, BitFit = its biases, LayerNorm = its affine
parameters, FC = the head; the head is trained in every regime); the kinds are "Ours" (the
tangent model, which predicts with J·Δw alone, as in the paper's DP experiments) and "Reg"
(non-linear fine-tuning of the same parameters).

Sampling: either the paper's full-batch DP-GD (``sample_rate`` 1, ``epochs`` = steps) or
Poisson-subsampled DP-SGD with an expected batch size B and T steps (``batch_size``,
``steps``): q = min(1, B/N). With B and T fixed, the training set size N enters only through
q, so a run costs T·B per-sample gradients whatever N is.

Hyperparameters: one lr (or one per kind) and one clipping norm C for every cell, or a
(lr, C) per (regime, kind) in ``tuned`` (what ``privtangent.experiments.regimes.tuning``
chooses on public data).

δ: a number, or None for δ = min(1e-5, 1/(10·N)) per data set (``default_delta``).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from privtangent.dp.sampling import steps_for_epochs
from privtangent.dp.training import DPConfig
from privtangent.errors import ConfigError
from privtangent.tangent.regimes import REGIMES

KINDS = ("Ours", "Reg")  # tangent, non-linear
REGIME_LABELS = {"full": "Full", "bitfit": "BitFit", "layernorm": "LayerNorm", "fc": "FC"}
DEFAULT_DATA = ("fashion-near", "digits")


@dataclass(frozen=True)
class Hyperparameters:
    """The two hyperparameters every DP cell needs: learning rate and clipping norm C."""

    lr: float
    clip: float


def default_delta(n: int) -> float:
    """δ = min(1e-5, 1/(10·N)): a factor 10 below 1/N at every size (the usual rule δ ≪ 1/N,
    Dwork & Roth 2014, §2.3), and never looser than the conventional 1e-5."""
    if n < 1:
        raise ConfigError(f"the training set is empty (N={n}): δ = min(1e-5, 1/(10·N)) is undefined")
    return min(1e-5, 1.0 / (10.0 * n))


def _positive(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < math.inf


@dataclass(frozen=True)
class RegimeGrid:
    """Every knob of a regime comparison. Defaults: the paper's full-batch DP setting."""

    regimes: tuple[str, ...] = REGIMES
    epsilons: tuple[float, ...] = (1.0, 3.0, 8.0)
    delta: float | None = 1e-5  # None: default_delta(N) per data set
    data: tuple[str, ...] = DEFAULT_DATA
    data_limit: int | None = None  # training samples per data set (first N)
    test_limit: int | None = None
    epochs: float = 50  # expected passes (= steps for full batch); ignored when ``steps`` is set
    sample_rate: float = 1.0  # q; ignored when ``batch_size`` is set
    batch_size: int | None = None  # expected batch size B of Poisson sampling: q = min(1, B/N)
    steps: int | None = None  # T
    clip: float = 1.0  # C
    lr: float = 1e-2
    lr_ours: float | None = None  # per-kind overrides of lr (None: lr)
    lr_reg: float | None = None
    tuned: tuple[tuple[str, str, float, float], ...] = ()  # (regime, kind, lr, C): per-cell, overrides lr and clip
    optimizer: str = "adam"
    seeds: tuple[int, ...] = (0, 1, 2)
    jvp_only: bool = True  # tangent models predict with J·Δw alone (the paper's DP setting)
    reset: bool = False  # PT=F
    accountant: str = "prv"
    noise_seed: int | None = None  # seeds every cell's noise and sampling (the two kinds of a cell share it)
    kinds: tuple[str, ...] = KINDS

    def __post_init__(self) -> None:
        bad = [r for r in self.regimes if r not in REGIMES]
        if bad or not self.regimes:
            raise ConfigError(f"regimes: unknown {bad} (choose from {', '.join(REGIMES)})")
        bad_kinds = [k for k in self.kinds if k not in KINDS]
        if bad_kinds or not self.kinds:
            raise ConfigError(f"kinds: unknown {bad_kinds} (choose from {', '.join(KINDS)})")
        if not self.epsilons or not all(_positive(e) for e in self.epsilons):
            raise ConfigError(f"epsilons must be positive finite numbers, got {list(self.epsilons)}")
        if not self.seeds:
            raise ConfigError("seeds: give at least one seed")
        if not self.data:
            raise ConfigError("data: give at least one data set")
        if self.delta is not None and not (_positive(self.delta) and self.delta < 1):
            raise ConfigError(f"delta must be in (0, 1) or None (min(1e-5, 1/(10·N))), got {self.delta!r}")
        for name in ("data_limit", "test_limit", "batch_size", "steps"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"{name} must be an integer ≥ 1, got {value!r}")
        for entry in self.tuned:
            if len(entry) != 4 or entry[0] not in REGIMES or entry[1] not in KINDS or not (
                    _positive(entry[2]) and _positive(entry[3])):
                raise ConfigError(f"tuned: each entry is (regime, kind, lr > 0, C > 0), got {entry!r}")
        for kind in self.kinds:  # validates the rest (optimizer, accountant, lr, C, q, ...)
            self.dp_config(kind == "Ours", self.regimes[0], self.epsilons[0], self.seeds[0], n=1000)

    # --- the recipe of one cell -------------------------------------------------------------
    def hyperparameters(self, regime: str, kind: str) -> Hyperparameters:
        """(lr, C) of the cell: its ``tuned`` entry, else the shared lr (per kind) and ``clip``."""
        for r, k, lr, clip in self.tuned:
            if (r, k) == (regime, kind):
                return Hyperparameters(float(lr), float(clip))
        override = self.lr_ours if kind == "Ours" else self.lr_reg
        return Hyperparameters(self.lr if override is None else override, self.clip)

    def lr_for(self, kind: str) -> float:
        """The shared learning rate of ``kind`` (cells without a ``tuned`` entry)."""
        override = self.lr_ours if kind == "Ours" else self.lr_reg
        return self.lr if override is None else override

    def sample_rate_for(self, n: int | None) -> float:
        """q: min(1, B/N) with a batch size, else ``sample_rate``."""
        if self.batch_size is None:
            return self.sample_rate
        if n is None:
            raise ConfigError("batch_size needs the training set size N to set q = B/N")
        return min(1.0, self.batch_size / n)

    def steps_for(self, n: int | None) -> int:
        """T: ``steps``, else the steps of ``epochs`` expected passes at rate q."""
        return self.steps if self.steps is not None else steps_for_epochs(self.epochs, self.sample_rate_for(n))

    def delta_for(self, n: int | None) -> float:
        if self.delta is not None:
            return self.delta
        if n is None:
            raise ConfigError("delta=None (min(1e-5, 1/(10·N))) needs the training set size N")
        return default_delta(n)

    def dp_config(self, tangent: bool, regime: str, epsilon: float, seed: int, noise_multiplier: float | None = None,
                  noise_seed: int | None = None, n: int | None = None) -> DPConfig:
        """The ``DPConfig`` of one run (``n``: the training set size, needed for B and δ = None)."""
        kind = "Ours" if tangent else "Reg"
        hp = self.hyperparameters(regime, kind)
        q = self.sample_rate_for(n)
        return DPConfig(tangent=tangent, regime=regime, reset=self.reset,
                        output=("jvp" if self.jvp_only else "full") if tangent else "full", loss="ce",
                        optimizer=self.optimizer, lr=hp.lr, epochs=self.steps_for(n) * q, seed=seed,
                        sample_rate=q, max_grad_norm=hp.clip, target_epsilon=float(epsilon),
                        noise_multiplier=noise_multiplier, delta=self.delta_for(n), accountant=self.accountant,
                        noise_seed=noise_seed)

    def cell_noise_seed(self, data: str, regime: str, epsilon: float, seed: int) -> int | None:
        """The noise (and Poisson sampling) seed of a run, or None (OS entropy). Both kinds of a
        (data, regime, ε, seed) get the same seed: same batches and same noise draws (their
        parameters have the same names and shapes), so Ours − Reg is paired by seed."""
        if self.noise_seed is None:
            return None
        text = f"{self.noise_seed}|{data}|{regime}|{float(epsilon)!r}|{seed}"
        return int.from_bytes(hashlib.sha256(text.encode()).digest()[:6], "big")

    def cells(self) -> list[tuple[str, str, str, float, int]]:
        """(data, regime, kind, ε, seed) in run order."""
        return [(d, r, k, float(e), s) for d in self.data for s in self.seeds for e in self.epsilons
                for r in self.regimes for k in self.kinds]


__all__ = ["DEFAULT_DATA", "Hyperparameters", "KINDS", "REGIME_LABELS", "RegimeGrid", "default_delta"]
