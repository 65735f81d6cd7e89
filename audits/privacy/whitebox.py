"""The white-box audit of privtangent's DP training: gradient canaries watched at every step.

**Game** (Steinke, Nasr, Jagielski 2023, one run; Nasr et al. 2023 for the white-box threat
model). A separate canary training run of the audited configuration (same model, optimizer,
σ, C, q, T, the same ``fit_dp`` → ``DPOptimizer`` code; never released) gets m Dirac gradient
canaries (``audits.privacy.canaries``), each included independently with probability ½. The
auditor observes every step's privatized update ĝ_t — exactly what DP-SGD's accounting covers
(the composition theorem releases all T noisy updates) — and knows everything except the
secret bits and the mechanism's noise: the data, the code, the configuration, the canary
directions.

**Scores.** With S_t = ĝ_t · (q·N) the noisy clipped sum of step t and D_t the clipped sum of
the data records in it, a correct implementation gives, in canary i's coordinate c_i,

    x_{t,i} = (S_t − D_t)[c_i] / C = b_i · B_{t,i} + σ · z_{t,i},   z_{t,i} ~ N(0, 1) i.i.d.,

b_i the secret bit, B_{t,i} = 1 when the canary was sampled in step t (always for q = 1).
The directions are distinct coordinates, hence orthonormal: no cross-terms between canaries,
and the noise of different canaries is independent. Conditionally on the past, each step's
noise is fresh, so for full-batch DP-GD the score

    s_i = Σ_t x_{t,i} / (σ √T)  ~  N(b_i · √T/σ, 1)   exactly,

i.e. the canary's view is the Gaussian mechanism with μ = √T/σ, the accountant's own curve.
Under Poisson sampling (q < 1) the score is the likelihood ratio of the subsampled-Gaussian
steps, s_i = Σ_t log(1 − q + q·exp((x_{t,i} − ½)/σ²)) (the Neyman–Pearson statistic for
canary-in vs canary-out when each step's sampling is unknown to the auditor).

**The data's gradient in the canary coordinates** is handled by *subtraction of the known
clipped data sum* (``data_gradient="subtract"``, the default). The auditor replays the
training from the observed updates: a shadow copy of the model, built by the same code with
the same seed, is advanced with each observed ĝ_t through the same optimizer, and D_t is
recomputed at the shadow's parameters by the same clipping code (full batch: exactly the
sum the optimizer formed; Poisson: q times the clipped sum of all records, its expectation,
since the auditor does not see the secret sample). The replay is checked at the end: the
shadow's final Δw must equal the canary run's. With exact subtraction the data contribute
nothing to the scores, so the canary run can use a small subset of the training records
(``data_limit``) without losing any power: what is audited is the mechanism around them.
``data_gradient="ignore"`` leaves D_t in the scores as extra (data-dependent) noise: cheaper
(no replay), still valid, weaker. Either way the bound stays valid: any statistic computed
from the observed updates and public knowledge, never from the bits, is post-processing.

**What this audits**: the privatization of a record's gradient as implemented (the clipping
rule and the clipping norm, the Gaussian noise and its scale, the divisor, the number of
steps, the sample rate) against the accountant's claim for the configuration.
**What it does not**: whether the per-sample gradients of real records are computed
correctly (canary gradients are injected after the forward/backward pass), the data
pipeline, the sampler's secrecy, and the released model itself (the canary run is separate);
a weaker adversary (who sees only the final model) may learn far less than this bound.
A pass does not prove (ε, δ)-DP; an over-claim refutes the claim.

**Bounds** (``rows``), all finite-sample at the stated confidence, on the *whole* game of m
canaries (the guessed canaries are never the canary set), with the number of guesses r fixed
before the canary run from m and the claim alone (``choose_num_guesses``: among m/40 … m/4,
the best simulated tightness whose audit power — the bound with every guess right — is at
least 1.2 × the claimed ε; top r/2 guessed in, bottom r/2 guessed out; never a maximum over r):

- *binomial* (Steinke et al. 2023, main theorem, with the claim's δ): tests (ε, δ)-DP;
- *f-DP* (``audits.privacy.fdp``, Mahloujifar et al. 2025 + a certified LP): tests that the
  training is f-DP with the accountant's own curve — μ-GDP with μ = √T/σ for full-batch
  DP-GD, the Poisson-subsampled Gaussian curve for q < 1 — reported as ε at the claim's δ.

The verdict FAILs when any row exceeds the claimed ε. For full batch the f-DP bound (method
"auto") already includes the binomial bound at the same δ and confidence, so it is never below
the binomial row and the verdict's false-FAIL rate is the f-DP bound's, ≤ α: both rows run at
the stated confidence. Otherwise each row runs at 1 − α/k (Bonferroni, ``per_bound_confidence``).

**Tightness** = ε_lb / ε_claimed, next to the **ideal tightness**: the median, over simulated
runs of a perfect Gaussian mechanism with the claim's m, r, σ, q, T, of the same bound.

**Broken-DP controls** (``bug=``): ``noise-half`` (noise std × ½), ``clip-off`` (C = 10⁶ with
the claimed noise std σ·C), ``wrong-steps`` (σ calibrated for T/10 steps, T run),
``wrong-sample-rate`` (σ calibrated for a sample rate 10× smaller than the one run). Each
claims the target ε; each must FAIL.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor, nn

from audits.privacy.canaries import DEFAULT_NORM_FACTOR, CanarySchedule, CanarySet, make_canaries
from audits.privacy.one_run import one_run_epsilon_lower_bound, one_run_guesses
from privtangent.errors import ConfigError, PrivtangentError

__all__ = ["BUGS", "DEFAULT_CANARIES", "Claim", "CanaryRun", "WhiteboxObserver", "add_whitebox_arguments",
           "bound_rows", "canary_run", "choose_num_guesses", "claim_for", "default_num_guesses", "ideal_epsilon_lb",
           "ideal_scores", "mechanism_run", "per_bound_confidence", "run_whitebox_audit", "run_whitebox_cli",
           "score_canaries", "whitebox_scope"]

SECTION = "canary_audit"
BUGS = ("noise-half", "clip-off", "wrong-steps", "wrong-sample-rate")
CLIP_OFF_NORM = 1e6  # "clipping off": C so large that no gradient is ever clipped
WRONG_STEPS_FACTOR = 10  # wrong-steps: σ calibrated for T / 10 steps
WRONG_RATE_FACTOR = 10  # wrong-sample-rate: σ calibrated for q / 10 (q = 1 → 0.1)
DEFAULT_CANARIES = 20_000  # Dirac canaries: cheap; more of them → tighter (see BENCHMARKS)
DEFAULT_DATA_LIMIT = 256  # records in the canary run (the scores do not depend on them; see module doc)
IDEAL_SIMULATIONS = 21  # odd: the median is one simulated run's count
METHODS = {"binomial": "white-box binomial (Steinke et al. 2023)", "fdp": "white-box f-DP (accountant's curve)"}


# --------------------------------------------------------------------------------------
# the claim under test
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Claim:
    """What the accountant says about a run: ε at δ for (σ, C, q, T)."""

    epsilon: float
    delta: float
    noise_multiplier: float
    max_grad_norm: float
    sample_rate: float
    steps: int
    accountant: str
    target_epsilon: float | None = None

    @property
    def mu(self) -> float | None:
        """μ of the accountant's μ-GDP curve (full batch); None for Poisson sampling."""
        return math.sqrt(self.steps) / self.noise_multiplier if self.sample_rate == 1.0 else None

    def hypothesis(self) -> str:
        if self.sample_rate == 1.0:
            curve = (f"μ-GDP with μ = √T/σ = √{self.steps}/{self.noise_multiplier:.4g} = {self.mu:.4g} "
                     f"(full-batch DP-GD: each record's view is the Gaussian mechanism; the accountant's own curve)")
        else:
            curve = (f"f-DP with the Poisson-subsampled Gaussian curve of q = {self.sample_rate:g}, σ = "
                     f"{self.noise_multiplier:.4g}, T = {self.steps} (the curve the accountant composes)")
        return (f"H0: the DP training is {curve}, hence (ε = {self.epsilon:.4g}, δ = {self.delta:g})-DP as claimed "
                f"(accountant {self.accountant}). The f-DP bound tests the curve, the binomial bound tests (ε, δ)-DP. "
                "A lower bound above the claimed ε refutes the claim at the stated confidence; a bound below it "
                "does not prove (ε, δ)-DP.")

    def to_dict(self) -> dict:
        return {"epsilon": self.epsilon, "delta": self.delta, "noise_multiplier": self.noise_multiplier,
                "max_grad_norm": self.max_grad_norm, "sample_rate": self.sample_rate, "steps": self.steps,
                "accountant": self.accountant, "mu": self.mu, "target_epsilon": self.target_epsilon}


def _general_hypothesis(claims: Sequence[Claim]) -> str:
    curves = "; ".join(f"ε = {c.epsilon:.4g}: μ = √{c.steps}/{c.noise_multiplier:.4g} = {c.mu:.4g}" if c.mu is not None
                       else f"ε = {c.epsilon:.4g}: q = {c.sample_rate:g}, σ = {c.noise_multiplier:.4g}, T = {c.steps}"
                       for c in claims)
    return ("H0, for each claimed ε: the DP training is f-DP with the accountant's own curve — μ-GDP with μ = √T/σ for "
            "full-batch DP-GD (each record's view is the Gaussian mechanism), the Poisson-subsampled Gaussian curve "
            f"for q < 1 ({curves}) — hence (ε, δ = {claims[0].delta:g})-DP as claimed. The f-DP bound tests the curve, "
            "the binomial bound tests (ε, δ)-DP. A lower bound above the claimed ε refutes the claim at the stated "
            "confidence; a bound below it does not prove (ε, δ)-DP.")


def whitebox_scope() -> str:
    return ("A white-box audit inserts gradient canaries into a separate training run of the same configuration and "
            "observes every privatized update, so it tests the DP mechanism as implemented (clipping, noise scale, "
            "divisor, number of steps, sample rate) against the accountant's claim; it does not test the per-sample "
            "gradients of real records, the data pipeline or the released model, and a pass does not prove (ε, δ)-DP.")


def _epsilon(sigma: float, q: float, steps: int, delta: float, accountant: str) -> float:
    from privtangent.dp.accounting import epsilon

    return float(epsilon(sigma, q, steps, delta, accountant))


def claim_for(dp_config: Any, dataset_size: int, bug: str | None = None) -> tuple[Claim, Any]:
    """(the claim, the ``DPConfig`` the canary run executes) for ``dp_config`` with an optional bug.

    The run config always carries an explicit ``noise_multiplier`` (the σ the claim was made for,
    or the bug's σ), so the canary run and the claim cannot drift apart by a second calibration.
    """
    from privtangent.dp.calibration import calibrate_noise

    if bug is not None and bug not in BUGS:
        raise ConfigError(f"unknown bug {bug!r}; choose one of {', '.join(BUGS)}")
    cfg = dp_config
    q, steps = float(cfg.sample_rate), int(cfg.steps)
    q_claim, steps_claim = q, steps
    if bug == "wrong-steps":
        steps_claim = max(1, steps // WRONG_STEPS_FACTOR)
    if bug == "wrong-sample-rate":
        q_claim = q / WRONG_RATE_FACTOR
    if cfg.noise_multiplier is not None:
        sigma = float(cfg.noise_multiplier)
    else:
        sigma = float(calibrate_noise(cfg.target_epsilon, cfg.delta, q_claim, steps_claim, cfg.accountant,
                                      dataset_size=dataset_size))
    if not sigma > 0:
        raise ConfigError("the white-box audit needs a private configuration (noise_multiplier > 0)")
    eps = _epsilon(sigma, q_claim, steps_claim, cfg.delta, cfg.accountant)
    claim = Claim(eps, float(cfg.delta), sigma, float(cfg.max_grad_norm), q_claim, steps_claim, cfg.accountant,
                  cfg.target_epsilon)
    run_sigma, run_clip = sigma, float(cfg.max_grad_norm)
    if bug == "noise-half":
        run_sigma = sigma / 2.0
    elif bug == "clip-off":
        run_clip, run_sigma = CLIP_OFF_NORM, sigma * float(cfg.max_grad_norm) / CLIP_OFF_NORM
    run = cfg.replace(target_epsilon=None, noise_multiplier=run_sigma, max_grad_norm=run_clip)
    return claim, run


def default_num_guesses(num_canaries: int) -> int:
    """r = max(2, ⌊m/10⌋) (≤ m): a rule from m alone, fixed before any score is seen.

    Abstaining on most canaries keeps the guesses on the most extreme scores (NOTES.md: fewer
    guesses than half of the canaries work better; m = 5,000 → 500, the main job's sizes).
    """
    return min(num_canaries, max(2, num_canaries // 10))


# --------------------------------------------------------------------------------------
# the auditor: scores from the observed updates
# --------------------------------------------------------------------------------------
def score_canaries(x: np.ndarray, sigma: float, sample_rate: float) -> np.ndarray:
    """Per-step contributions to the score of each canary from x (C units), shape (..., m)."""
    if sample_rate == 1.0:
        return x
    return np.logaddexp(math.log1p(-sample_rate), math.log(sample_rate) + (x - 0.5) / (sigma * sigma))


class WhiteboxObserver:
    """``on_step`` observer: accumulates every canary's score from each privatized update.

    ``data_sum``: () → {name: tensor} the known clipped data sum of the step being observed
    (called before ``advance``), or None to leave the data's gradient in the scores.
    ``advance``: (ĝ_t) → None, moves the auditor's replay to the next step.
    Uses only the claim (σ, C, q), the canary directions and the observed update — never the bits.
    """

    def __init__(self, canaries: CanarySet, claim: Claim, *,
                 data_sum: Callable[[], Mapping[str, Tensor]] | None = None,
                 advance: Callable[[Mapping[str, Tensor]], None] | None = None) -> None:
        self.canaries, self.claim = canaries, claim
        self.data_sum, self.advance = data_sum, advance
        self.total = np.zeros(canaries.num_canaries, dtype=np.float64)
        self.steps = 0
        self.seconds = 0.0

    def __call__(self, info: Any) -> None:
        start = time.perf_counter()
        layout, coords = self.canaries.layout, self.canaries.coords
        noisy = layout.gather(info.grad, coords) * float(info.expected_batch_size)
        if self.data_sum is not None:
            noisy = noisy - layout.gather(self.data_sum(), coords)
        x = noisy / self.claim.max_grad_norm
        self.total += score_canaries(x, self.claim.noise_multiplier, self.claim.sample_rate)
        self.steps += 1
        if self.advance is not None:
            self.advance(info.grad)
        self.seconds += time.perf_counter() - start

    def scores(self) -> np.ndarray:
        if self.steps == 0:
            raise PrivtangentError("the white-box observer saw no training step")
        if self.claim.sample_rate == 1.0:
            return self.total / (self.claim.noise_multiplier * math.sqrt(self.steps))
        return self.total.copy()


class _Replay:
    """The auditor's shadow of the canary run: same model, optimizer and clipping code, advanced
    with the observed privatized updates; gives each step's clipped data sum."""

    def __init__(self, base: nn.Module, train: Any, config: Any, cache: Any, progress: bool = False) -> None:
        from privtangent.dp.optimizer import DPOptimizer, make_torch_optimizer
        from privtangent.dp.per_sample import trainable
        from privtangent.dp.training import _regularizer
        from privtangent.losses import make_loss
        from privtangent.train import prepare_model

        self.config = config
        self.model = prepare_model(base, train.num_classes, config.train_config())
        self.model.train()
        self.params = trainable(self.model)
        weight_decay = 0.0 if config.tangent else config.weight_decay
        self.optimizer = make_torch_optimizer(list(self.params.values()), config.optimizer, config.lr,
                                              momentum=config.momentum, weight_decay=weight_decay)
        self.regularizer = _regularizer(self.model, config)
        self.clipper = DPOptimizer(self.model, self.optimizer, make_loss(config.loss), noise_multiplier=0.0,
                                   max_grad_norm=config.max_grad_norm, expected_batch_size=1.0,
                                   generator=torch.Generator(), output=config.resolved_output, method=config.method,
                                   physical_batch_size=config.physical_batch_size)
        self.features = cache.features(self.model.base, self.model.start, train, progress=progress)
        self.labels = train.labels
        self.seconds = 0.0

    def data_sum(self) -> dict[str, Tensor]:
        start = time.perf_counter()
        total = self.clipper.clipped_sum(self.features, self.labels).grads
        if self.config.sample_rate < 1.0:  # the auditor does not see the Poisson sample: its expectation
            total = {n: t * self.config.sample_rate for n, t in total.items()}
        self.seconds += time.perf_counter() - start
        return total

    def advance(self, grad: Mapping[str, Tensor]) -> None:
        start = time.perf_counter()
        reg = {}
        if self.regularizer is not None:
            names = list(self.params)
            value = self.regularizer()
            if isinstance(value, Tensor) and value.requires_grad:
                grads = torch.autograd.grad(value, [self.params[n] for n in names], allow_unused=True)
                reg = {n: g for n, g in zip(names, grads) if g is not None}
        for n, p in self.params.items():
            g = grad[n].detach().clone()
            if n in reg:
                g = g + reg[n].detach()
            p.grad = g
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.seconds += time.perf_counter() - start

    def max_abs_diff(self, model: nn.Module) -> float:
        from privtangent.dp.per_sample import trainable

        other = trainable(model)
        return max(float((self.params[n].detach() - other[n].detach()).abs().max()) for n in self.params)


# --------------------------------------------------------------------------------------
# canary runs
# --------------------------------------------------------------------------------------
@dataclass
class CanaryRun:
    """Scores of one canary run, with everything needed to bound and report them."""

    scores: np.ndarray
    canaries: CanarySet
    claim: Claim
    bug: str | None
    seconds: float
    steps: int
    details: dict = field(default_factory=dict)


@contextmanager
def _threads(n: int | None):
    before = torch.get_num_threads()
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"threads must be an integer ≥ 1 or None, got {n!r}")
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _subset(train: Any, limit: int | None, seed: int) -> Any:
    if limit is None or limit >= len(train):
        return train
    if limit < 1:
        raise ConfigError(f"data_limit must be ≥ 1 (or None for all records), got {limit}")
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(int(seed)))[: int(limit)]
    return train.subset(torch.sort(order).values, f"{train.name}[canary run, {limit}]")


def canary_run(base: nn.Module, train: Any, dp_config: Any, *, num_canaries: int, seed: int = 0,
               bug: str | None = None, data_limit: int | None = DEFAULT_DATA_LIMIT, data_gradient: str = "subtract",
               canary_norm_factor: float = DEFAULT_NORM_FACTOR, cache: Any = None, noise_seed: int | None = None,
               threads: int | None = 1, progress: bool = False) -> CanaryRun:
    """One canary training run of ``dp_config`` on ``train`` (``fit_dp``), observed at every step.

    ``data_limit``: training records in the canary run (None: all). ``noise_seed``: seeds the
    DP noise of the canary run (reproducible tests); default OS entropy, like a real run.
    The claim is computed for the full ``train`` size (the accountant does not depend on it).
    ``threads``: torch threads while the run lasts (restored after; None: leave as is). Its
    tensors are small, and on a loaded 2-core machine one thread measured ~10× faster than two.
    """
    from privtangent.dp.per_sample import trainable
    from privtangent.dp.training import fit_dp
    from privtangent.features import FeatureCache
    from privtangent.train import prepare_model

    if data_gradient not in ("subtract", "ignore"):
        raise ConfigError(f"data_gradient must be 'subtract' or 'ignore', got {data_gradient!r}")
    if not canary_norm_factor > 1.0:
        raise ConfigError(f"canary_norm_factor must exceed 1 (canaries above the clipping norm), got {canary_norm_factor!r}")
    start = time.perf_counter()
    claim, run_config = claim_for(dp_config, len(train), bug)
    run_config = run_config.replace(noise_seed=noise_seed)
    data = _subset(train, data_limit, seed)
    cache = cache if (cache is not None and data is train) else FeatureCache()
    with _threads(threads):
        replay = None
        if data_gradient == "subtract":
            replay = _Replay(base, data, run_config, cache, progress)
            params = replay.params
        else:  # the canary directions live in the trained Δw of this configuration (layout only)
            params = trainable(prepare_model(base, data.num_classes, run_config.train_config()))
        canaries = make_canaries(params, num_canaries, norm=canary_norm_factor * claim.max_grad_norm, seed=seed)
        schedule = CanarySchedule(canaries, run_config.sample_rate, seed=seed)
        observer = WhiteboxObserver(canaries, claim, data_sum=replay.data_sum if replay else None,
                                    advance=replay.advance if replay else None)
        result = fit_dp(base, data, run_config, cache=cache, progress=progress, on_step=observer,
                        extra_per_sample_grads=schedule)
    details = {"records": len(data), "data_gradient": data_gradient, "canary_norm": canaries.norm,
               "run_noise_multiplier": run_config.noise_multiplier, "run_max_grad_norm": run_config.max_grad_norm,
               "run_sample_rate": run_config.sample_rate, "run_steps": result.metrics["steps"],
               "observer_seconds": observer.seconds, "train_seconds": result.metrics["train_seconds"]}
    if replay is not None:
        diff = replay.max_abs_diff(result.model)
        details.update({"replay_seconds": replay.seconds, "replay_max_abs_diff": diff})
        if not diff <= 1e-5 * (1.0 + max(float(p.detach().abs().max()) for p in trainable(result.model).values())):
            details["replay_warning"] = ("the auditor's replay diverged from the canary run: the data's gradient "
                                         "was not subtracted exactly (the bound stays valid, with less power)")
    return CanaryRun(observer.scores(), canaries, claim, bug, time.perf_counter() - start, observer.steps, details)


def mechanism_run(claim: Claim, *, num_canaries: int, num_coordinates: int | None = None, seed: int = 0,
                  noise_seed: int | None = None, run_noise_multiplier: float | None = None,
                  run_max_grad_norm: float | None = None, run_sample_rate: float | None = None,
                  run_steps: int | None = None, canary_norm_factor: float = DEFAULT_NORM_FACTOR,
                  included: np.ndarray | None = None) -> CanaryRun:
    """The mechanism in isolation: ``DPOptimizer`` on bare parameters, no data, canaries only.

    Exactly privtangent's clipping and noise (``DPOptimizer.step`` with an empty batch), scored
    by the same observer. ``run_*`` override what the mechanism does (default: the claim), for
    broken-DP controls. ``num_coordinates`` (default 2m) is the size of the bare Δw.
    ``included`` overrides the secret bits (tests of the canaries' independence).
    """
    from privtangent.dp.noise import mechanism_randomness
    from privtangent.dp.optimizer import DPOptimizer

    start = time.perf_counter()
    d = int(num_coordinates or 2 * num_canaries)
    holder = nn.Module()
    holder.w = nn.Parameter(torch.zeros(d))
    canaries = make_canaries({"w": holder.w}, num_canaries, norm=canary_norm_factor * claim.max_grad_norm, seed=seed)
    if included is not None:
        bits = np.asarray(included, dtype=bool)
        if bits.shape != canaries.included.shape:
            raise ConfigError(f"included must have shape ({num_canaries},), got {bits.shape}")
        canaries = CanarySet(canaries.layout, canaries.coords, bits, canaries.norm, canaries.seed)
    q = claim.sample_rate if run_sample_rate is None else float(run_sample_rate)
    steps = claim.steps if run_steps is None else int(run_steps)
    schedule = CanarySchedule(canaries, q, seed=seed)
    observer = WhiteboxObserver(canaries, claim)
    sigma = claim.noise_multiplier if run_noise_multiplier is None else float(run_noise_multiplier)
    clip = claim.max_grad_norm if run_max_grad_norm is None else float(run_max_grad_norm)
    dp = DPOptimizer(holder, torch.optim.SGD([holder.w], lr=0.0), lambda f, y: f.sum(), noise_multiplier=sigma,
                     max_grad_norm=clip, expected_batch_size=1.0,
                     generator=mechanism_randomness(noise_seed).generator, observers=[observer])
    empty_x, empty_y = torch.zeros(0, 1), torch.zeros(0, dtype=torch.long)
    for t in range(1, steps + 1):
        dp.step(empty_x, empty_y, extra_per_sample_grads=schedule(t))
    return CanaryRun(observer.scores(), canaries, claim, None, time.perf_counter() - start, steps,
                     {"records": 0, "data_gradient": "none (mechanism in isolation)", "run_noise_multiplier": sigma,
                      "run_max_grad_norm": clip, "run_sample_rate": q, "run_steps": steps})


def ideal_scores(included: np.ndarray, claim: Claim, rng: np.random.Generator) -> np.ndarray:
    """Scores of a perfect Gaussian mechanism that meets the claim exactly (same statistic)."""
    bits = np.asarray(included, dtype=bool)
    m = bits.size
    if claim.sample_rate == 1.0:
        return rng.standard_normal(m) + bits * claim.mu
    total = np.zeros(m)
    for _ in range(claim.steps):
        x = (bits & (rng.random(m) < claim.sample_rate)) + claim.noise_multiplier * rng.standard_normal(m)
        total += score_canaries(x, claim.noise_multiplier, claim.sample_rate)
    return total


# --------------------------------------------------------------------------------------
# bounds
# --------------------------------------------------------------------------------------
def _fdp_module():
    try:
        from audits.privacy import fdp
    except ImportError:
        return None
    return fdp


BoundFn = Callable[[int, int, int, float], float]  # (m, r, correct, confidence) → ε_lb


def _fdp_bound(claim: Claim, method: str = "auto") -> BoundFn | None:
    """The f-DP bound for the claim's curve; None when ``audits.privacy.fdp`` lacks it."""
    fdp = _fdp_module()
    if fdp is None:
        return None
    if claim.sample_rate == 1.0:
        fn = getattr(fdp, "gdp_one_run_epsilon_lower_bound", None)
        if fn is None:
            return None
        return lambda m, r, v, conf: float(fn(m, r, v, delta=claim.delta, confidence=conf, method=method))
    fn = getattr(fdp, "subsampled_gaussian_one_run_epsilon_lower_bound", None)
    if fn is None:
        return None
    return lambda m, r, v, conf: float(fn(m, r, v, sample_rate=claim.sample_rate, steps=claim.steps,
                                          delta=claim.delta, confidence=conf, method=method))


def _bounds(claim: Claim, fdp_method: str = "auto") -> dict[str, BoundFn]:
    out: dict[str, BoundFn] = {
        "binomial": lambda m, r, v, conf: float(one_run_epsilon_lower_bound(m, r, v, delta=claim.delta,
                                                                          confidence=conf))}
    fdp = _fdp_bound(claim, fdp_method)
    if fdp is not None:
        out["fdp"] = fdp
    return out


def per_bound_confidence(claim: Claim, keys: Sequence[str], confidence: float, fdp_method: str = "auto") -> float:
    """The confidence each bound runs at so that the verdict (FAIL when any bound exceeds the claim)
    wrongly fails a correct run with probability ≤ 1 − ``confidence``.

    Full batch with the f-DP bound's ``method="auto"``: that bound already takes the strongest of
    its proofs *and* Steinke et al.'s binomial bound at the same δ and confidence (one valid test:
    all bound the same tail under the same null), so it is never below the binomial row and the
    verdict's FAIL event is the f-DP bound's alone: no correction. Otherwise Bonferroni over the rows.
    """
    if len(keys) == 1 or (claim.sample_rate == 1.0 and "fdp" in keys and fdp_method == "auto"):
        return confidence
    return 1.0 - (1.0 - confidence) / len(keys)


def _ideal_counts(m: int, r: int, claim: Claim, included: np.ndarray | None, sims: int, seed: int) -> np.ndarray:
    """Right-guess counts of ``sims`` simulated runs of a perfect mechanism meeting the claim."""
    if claim.sample_rate == 1.0 and included is None:
        from audits.privacy.ideal import simulate_ideal_counts

        return simulate_ideal_counts(m, r, claim.mu, range(seed, seed + sims))
    out = []
    for k in range(sims):
        rng = np.random.default_rng([int(seed), 4, k])
        bits = rng.random(m) < 0.5 if included is None else np.asarray(included, dtype=bool)
        out.append(one_run_guesses(ideal_scores(bits, claim, rng), bits, r)[1])
    return np.asarray(out, dtype=int)


def ideal_epsilon_lb(bound: BoundFn, m: int, r: int, claim: Claim, confidence: float, *, sims: int = IDEAL_SIMULATIONS,
                     seed: int = 0, included: np.ndarray | None = None) -> float:
    """Median over ``sims`` (odd) simulated perfect mechanisms of ``bound``: since every bound grows
    with the number of right guesses, the median of the bounds is the bound at the median count."""
    if sims < 1:
        return float("nan")
    if sims % 2 == 0:
        sims += 1
    counts = _ideal_counts(m, r, claim, included, sims, seed)
    return float(bound(m, r, int(np.median(counts)), confidence))


GUESS_FRACTIONS = (1 / 40, 1 / 20, 1 / 15, 1 / 10, 1 / 7.5, 1 / 5, 1 / 4)
MIN_POWER_RATIO = 1.2


@lru_cache(maxsize=64)
def choose_num_guesses(num_canaries: int, claim: Claim, *, min_power_ratio: float = MIN_POWER_RATIO,
                       sims: int = IDEAL_SIMULATIONS, seed: int = 0) -> int:
    """The number of guesses r, fixed from (m, the claim) alone before any canary run.

    Among r = m/40 … m/4, the r with the best *simulated* tightness on a perfect mechanism that
    meets the claim, among those whose audit power (ε_lb with every guess right) is at least
    ``min_power_ratio`` × the claimed ε, so that a broken run can FAIL at all (with 500 guesses
    the f-DP bound's power is 7.98: it could never refute ε = 8). Uses the f-DP bound's fast
    recursion (or the binomial bound without it); deterministic; never looks at scores. Under
    Poisson sampling: ``default_num_guesses(m)``.
    """
    m = int(num_canaries)
    if claim.sample_rate != 1.0 or m < 40:
        return default_num_guesses(m)
    bound = _fdp_bound(claim, "recursion") or _bounds(claim)["binomial"]
    candidates = sorted({max(2, min(m, int(round(m * f)))) for f in GUESS_FRACTIONS})
    scored = []
    for r in candidates:
        power = bound(m, r, r, 0.95)
        scored.append((power >= min_power_ratio * claim.epsilon, ideal_epsilon_lb(bound, m, r, claim, 0.95, sims=sims,
                                                                                 seed=seed), power, r))
    ok = [x for x in scored if x[0]]
    if ok:
        return max(ok, key=lambda x: (x[1], -x[3]))[3]
    return max(scored, key=lambda x: (x[2], -x[3]))[3]


def bound_rows(run: CanaryRun, *, num_guesses: int, confidence: float = 0.95,
               ideal_simulations: int = IDEAL_SIMULATIONS, seed: int = 0,
               fdp_method: str = "auto") -> list[dict[str, Any]]:
    """One row per bound: guesses, correct, ε_lb, tightness, ideal tightness, audit power, PASS/FAIL.

    The guesses are the top r/2 / bottom r/2 scores, r = ``num_guesses`` fixed by the caller
    before the run; the game is all m canaries (never only the guessed ones). Confidence per
    bound: ``per_bound_confidence``. ``fdp_method``: "auto" (the product) or "recursion" (fast).
    """
    claim, m = run.claim, run.canaries.num_canaries
    if isinstance(num_guesses, bool) or not isinstance(num_guesses, (int, np.integer)) or not 1 <= num_guesses <= m:
        raise ConfigError(f"num_guesses must be an integer in [1, num_canaries = {m}], got {num_guesses!r}")
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")
    bounds = _bounds(claim, fdp_method)
    each = per_bound_confidence(claim, list(bounds), confidence, fdp_method)
    r, v = one_run_guesses(run.scores, run.canaries.included, int(num_guesses))
    rows = []
    for key, bound in bounds.items():
        row = {"method": METHODS[key], "epsilon_claimed": claim.epsilon, "num_canaries": m, "num_guesses": r,
               "num_correct": v}
        t0 = time.perf_counter()
        try:
            lb = bound(m, r, v, each)
            seconds = time.perf_counter() - t0
            ideal = ideal_epsilon_lb(bound, m, r, claim, each, sims=ideal_simulations, seed=seed + 7,
                                     included=None if claim.sample_rate == 1.0 else run.canaries.included)
            power = bound(m, r, r, each)
        except Exception as err:  # noqa: BLE001 - a numerical failure of one bound must not hide the others
            row.update({"epsilon_lb": None, "tightness": None, "ideal_tightness": None, "ideal_epsilon_lb": None,
                        "audit_power": None, "confidence": each, "status": "SKIP",
                        "seconds": run.seconds + time.perf_counter() - t0,
                        "error": f"bound not computed: {type(err).__name__}: {err}"})
            rows.append(row)
            continue
        row.update({"epsilon_lb": lb, "tightness": lb / claim.epsilon, "ideal_tightness": ideal / claim.epsilon,
                    "ideal_epsilon_lb": ideal, "audit_power": power, "confidence": each,
                    "status": "FAIL" if lb > claim.epsilon else "PASS", "seconds": run.seconds + seconds})
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------
# the audit
# --------------------------------------------------------------------------------------
def _check_count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be an integer ≥ 1, got {value!r}")
    return int(value)


def _check(name: str, run: CanaryRun, rows: list[dict], m: int, r: int, bug: str | None) -> dict[str, Any]:
    """The release check of one canary run: FAIL when any bound exceeds the claimed ε."""
    claim = run.claim
    slug = f"whitebox-eps{claim.target_epsilon or claim.epsilon:g}" + (f"-{bug}" if bug else "")
    title = f"white-box canary audit of {name} at claimed ε = {claim.epsilon:.4g}"
    done = [row for row in rows if row["epsilon_lb"] is not None]
    skipped = "".join(f"; {row['method']}: {row['error']}" for row in rows if row["epsilon_lb"] is None)
    if not done:
        return {"id": slug, "section": SECTION, "title": title, "status": "SKIP",
                "reason": "no bound could be computed" + skipped}
    failed = any(row["status"] == "FAIL" for row in done)
    worst = max(done, key=lambda row: row["epsilon_lb"])
    power = max(row["audit_power"] for row in done)
    reason = (f"ε lower bound {worst['epsilon_lb']:.3g} ({worst['method']}) {'exceeds' if failed else '≤'} claimed "
              f"{claim.epsilon:.4g}; tightness {worst['tightness']:.2f} (ideal mechanism {worst['ideal_tightness']:.2f}); "
              f"{m} canaries, {r} guesses, {worst['num_correct']} correct; audit power {power:.3g}"
              + ("" if failed or power > claim.epsilon else " < claimed ε: this audit could not have refuted the claim")
              + skipped + (f"; {run.details['replay_warning']}" if "replay_warning" in run.details else ""))
    return {"id": slug, "section": SECTION, "title": title, "status": "FAIL" if failed else "PASS", "reason": reason}


def run_whitebox_audit(base: nn.Module, train: Any, dp_config: Any, *, num_canaries: int = DEFAULT_CANARIES,
                       num_guesses: int | None = None, confidence: float = 0.95, seed: int = 0,
                       epsilons: Sequence[float] | None = None, bug: str | None = None,
                       data_limit: int | None = DEFAULT_DATA_LIMIT, data_gradient: str = "subtract",
                       canary_norm_factor: float = DEFAULT_NORM_FACTOR, ideal_simulations: int = IDEAL_SIMULATIONS,
                       fdp_method: str = "auto", cache: Any = None, noise_seed: int | None = None,
                       threads: int | None = 1, progress: bool = False, label: str | None = None) -> dict[str, Any]:
    """The white-box canary audit of ``dp_config`` (one canary run per claimed ε).

    Args:
        base, train: the base model and the private training set of the audited configuration.
        dp_config: a ``DPConfig``; with ``epsilons`` it is re-targeted at each ε (σ calibrated).
        num_canaries: m, the size of the one-run game (capped at the number of trained coordinates).
        num_guesses: r, fixed in advance; default ``choose_num_guesses(m, claim)`` per ε, a rule
            of m and the claim evaluated before the canary run.
        bug: None, or a broken-DP control (``BUGS``) that must FAIL.
        data_limit: training records in each canary run (None: all; see the module doc).
        fdp_method: the f-DP bound's method, "auto" (certified LP + recursion + binomial) or "recursion".
        noise_seed: seed of the canary runs' DP noise (default: OS entropy).

    Returns:
        ``{"section": "canary_audit", "body": {"hypothesis", "scope", "rows", ...}, "checks": [...], "roc": None}``.
    """
    from privtangent.dp.per_sample import trainable
    from privtangent.train import prepare_model

    m = _check_count(num_canaries, "num_canaries")
    if num_guesses is not None:
        _check_count(num_guesses, "num_guesses")
        if num_guesses > m:
            raise ConfigError(f"num_guesses ({num_guesses}) must not exceed num_canaries ({m})")
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")
    configs = [dp_config] if epsilons is None else [dp_config.replace(target_epsilon=float(e), noise_multiplier=None)
                                                     for e in epsilons]
    notes = []
    coords = sum(int(p.numel()) for p in trainable(prepare_model(base, train.num_classes,
                                                                 configs[0].train_config())).values())
    if m > coords:
        notes.append(f"{m} canaries requested; capped at the {coords} trained coordinates (one Dirac canary each)")
        m = coords
        if num_guesses is not None and num_guesses > m:
            raise ConfigError(f"num_guesses ({num_guesses}) exceeds the {m} trained coordinates available as canaries")
    rows, checks, claims, runs = [], [], [], []
    for i, cfg in enumerate(configs):
        claim, _ = claim_for(cfg, len(train), bug)
        r = int(num_guesses) if num_guesses is not None else choose_num_guesses(m, claim, seed=seed)
        run = canary_run(base, train, cfg, num_canaries=m, seed=seed + 1000 * i, bug=bug, data_limit=data_limit,
                         data_gradient=data_gradient, canary_norm_factor=canary_norm_factor, cache=cache,
                         noise_seed=None if noise_seed is None else noise_seed + i, threads=threads,
                         progress=progress)
        these = bound_rows(run, num_guesses=r, confidence=confidence, ideal_simulations=ideal_simulations,
                           seed=seed + 1000 * i, fdp_method=fdp_method)
        name = label or ("DP training" if bug is None else f"DP training ({bug}: injected bug)")
        for row in these:
            row["model"] = name
        rows += these
        claims.append(run.claim)
        runs.append({"epsilon_claimed": run.claim.epsilon, "seconds": run.seconds, "steps_observed": run.steps,
                     **run.details})
        checks.append(_check(name, run, these, m, r, bug))
    body = {
        "hypothesis": claims[0].hypothesis() if len(claims) == 1 else _general_hypothesis(claims),
        "scope": whitebox_scope(),
        "method": (f"{m} Dirac gradient canaries (norm {canary_norm_factor:g}·C, distinct random coordinates of Δw), "
                   "each included with probability ½, in a separate canary run of the same configuration (never "
                   "released); every privatized update observed; "
                   + ("the known clipped data sum subtracted (the auditor replays the run from the observed updates)"
                      if data_gradient == "subtract" else
                      "the data's gradient left in the scores as extra noise (valid, less powerful)")),
        "guess_rule": ("top ⌊r/2⌋ scores guessed in, bottom r − ⌊r/2⌋ guessed out, abstain on the rest; r fixed "
                       "before the canary run from m and the claim alone "
                       + ("(given)" if num_guesses is not None else
                          f"(the r in m/40…m/4 with the best simulated tightness whose audit power ≥ "
                          f"{MIN_POWER_RATIO:g}× the claimed ε)")
                       + "; every bound on the whole game of m canaries, guessed or not"),
        "confidence": confidence,
        "multiple_testing": ("full batch: none needed, the f-DP bound (method auto) already includes the binomial "
                             "bound at the same δ and confidence, so the verdict fails exactly when it does; "
                             "otherwise each bound at 1 − α/k (Bonferroni)"),
        "rows": rows,
        "runs": runs,
        "claims": [c.to_dict() for c in claims],
    }
    if _fdp_bound(claims[0]) is None:
        notes.append("the f-DP bound (audits.privacy.fdp) is not available for this claim; binomial bound only")
    if notes:
        body["note"] = "; ".join(notes)
    return {"section": SECTION, "body": body, "checks": checks, "roc": None}


# --------------------------------------------------------------------------------------
# command line: `privtangent audit privacy --white-box`
# --------------------------------------------------------------------------------------
def add_whitebox_arguments(parser: Any) -> None:
    """The ``--white-box`` flag and its options (for ``privtangent audit privacy``)."""
    g = parser.add_argument_group("white-box canary audit (--white-box)")
    g.add_argument("--white-box", dest="white_box", action="store_true",
                   help="run the white-box gradient-canary audit of the DP training (a separate canary run per ε, "
                        "every privatized update observed) instead of the black-box membership audit")
    g.add_argument("--wb-canaries", dest="wb_canaries", type=int, default=DEFAULT_CANARIES, metavar="M",
                   help=f"gradient canaries m (default {DEFAULT_CANARIES})")
    g.add_argument("--wb-guesses", dest="wb_guesses", type=int, default=None, metavar="R",
                   help="guesses r, fixed in advance (default: chosen per ε from m and the claim before the run: "
                        "best simulated tightness with audit power ≥ 1.2× the claim)")
    g.add_argument("--wb-data-limit", dest="wb_data_limit", type=int, default=DEFAULT_DATA_LIMIT, metavar="N",
                   help=f"training records in each canary run (default {DEFAULT_DATA_LIMIT}; 0 = all); with the "
                        "data's clipped sum subtracted the scores do not depend on them")
    g.add_argument("--wb-bug", dest="wb_bug", choices=BUGS, default=None,
                   help="inject a DP bug (a control of the audit itself: it must FAIL)")


def run_whitebox_cli(args: Any) -> int:
    """``privtangent audit privacy --white-box``: writes ``OUT/canary_audit.json`` (+ CSV); exit 0 / 1.

    Reads the privacy subcommand's ``--epsilons``, ``--delta``, ``--dp-epochs``, ``--confidence``,
    ``--seed``, ``--quiet``, ``--out`` and the options of ``add_whitebox_arguments``. The audited
    procedure is the black-box audit's (``audits.privacy.blackbox.default_dp_config``).
    """
    from audits import cli
    from audits.privacy.blackbox import default_dp_config

    epsilons = cli._floats(args.epsilons, "--epsilons")
    if not 0 < args.delta < 1:
        raise ConfigError(f"--delta: must lie in (0, 1), got {args.delta}")
    m = cli._positive(args.wb_canaries, "--wb-canaries")
    r = cli._positive(args.wb_guesses, "--wb-guesses")
    limit = cli._positive(args.wb_data_limit, "--wb-data-limit", minimum=0)
    if r is not None and r > m:
        raise ConfigError(f"--wb-guesses ({r}) must not exceed --wb-canaries ({m})")
    dp_epochs = getattr(args, "dp_epochs", None)
    if dp_epochs is not None and not dp_epochs > 0:
        raise ConfigError(f"--dp-epochs: must be > 0, got {dp_epochs}")
    setup = cli._setup(args)
    config = default_dp_config(delta=float(args.delta), **({"epochs": dp_epochs} if dp_epochs is not None else {}))
    result = run_whitebox_audit(setup["base"], setup["train"], config, num_canaries=m, num_guesses=r,
                                confidence=args.confidence, seed=args.seed, epsilons=epsilons, bug=args.wb_bug,
                                data_limit=limit or None, cache=cli._cache(), progress=setup["progress"],
                                threads=getattr(args, "threads", None) or 1)
    return cli._finish(result, setup["out"], args.quiet, {"base_model": setup["base_record"],
                                                         "data": setup["data_record"], "command": cli._command(args)})
