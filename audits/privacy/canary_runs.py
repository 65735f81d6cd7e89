"""Canary runs of the white-box audit: a DP training run with gradient canaries, watched at every step.

A canary run is a separate training run of the audited configuration (same model, optimizer,
σ, C, q, T, the same ``fit_dp`` → ``DPOptimizer`` code; never released) with m Dirac gradient
canaries (``audits.privacy.canaries``), each included independently with probability ½. The
auditor observes every step's privatized update ĝ_t — exactly what DP-SGD's accounting covers
(the composition theorem releases all T noisy updates).

**Scores.** With S_t = ĝ_t · (q·N) the noisy clipped sum of step t and D_t the clipped sum of
the data records in it, a correct implementation gives, in canary i's coordinate c_i,

    x_{t,i} = (S_t − D_t)[c_i] / C = b_i · B_{t,i} + σ · z_{t,i},   z_{t,i} ~ N(0, 1) i.i.d.,

b_i the secret bit, B_{t,i} = 1 when the canary was sampled in step t (always for q = 1).
The directions are distinct coordinates, hence orthonormal: no cross-terms between canaries,
and the noise of different canaries is independent. For full-batch DP-GD the score

    s_i = Σ_t x_{t,i} / (σ √T)  ~  N(b_i · √T/σ, 1)   exactly,

i.e. the canary's view is the Gaussian mechanism with μ = √T/σ, the accountant's own curve.
Under Poisson sampling (q < 1) the score is the likelihood ratio of the subsampled-Gaussian
steps, s_i = Σ_t log(1 − q + q·exp((x_{t,i} − ½)/σ²)) (the Neyman–Pearson statistic for
canary-in vs canary-out when each step's sampling is unknown to the auditor).

**The data's gradient in the canary coordinates** is removed by *subtraction of the known
clipped data sum* (``data_gradient="subtract"``, the default). The auditor replays the
training from the observed updates (``Replay``): a shadow copy of the model, built by the same
code with the same seed, is advanced with each observed ĝ_t through the same optimizer, and D_t
is recomputed at the shadow's parameters by the same clipping code (full batch: exactly the sum
the optimizer formed; Poisson: q times the clipped sum of all records, its expectation, since
the auditor does not see the secret sample). The replay is checked at the end: the shadow's
final Δw must equal the canary run's. With exact subtraction the data contribute nothing to the
scores, so the canary run can use a small subset of the training records (``data_limit``)
without losing any power. ``data_gradient="ignore"`` leaves D_t in the scores as extra noise:
cheaper, still valid, weaker. Either way any statistic computed from the observed updates and
public knowledge, never from the bits, is post-processing: the bound stays valid.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor, nn

from audits.choices import WHITEBOX_DATA_LIMIT
from audits.privacy.canaries import DEFAULT_NORM_FACTOR, CanarySchedule, CanarySet, make_canaries
from audits.privacy.claims import Claim, claim_for
from privtangent.data.dataset import ImageData
from privtangent.dp.config import DPConfig
from privtangent.dp.noise import mechanism_randomness
from privtangent.dp.optimizer import DPOptimizer, DPStep, make_torch_optimizer
from privtangent.dp.per_sample import trainable
from privtangent.dp.training import fit_dp, weight_penalty
from privtangent.errors import ConfigError, PrivtangentError
from privtangent.features import FeatureCache
from privtangent.losses import make_loss
from privtangent.threads import torch_threads
from privtangent.train import prepare_model

DEFAULT_DATA_LIMIT = WHITEBOX_DATA_LIMIT  # the scores do not depend on the records (see the module doc)
DATA_GRADIENTS = ("subtract", "ignore")


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

    def __call__(self, info: DPStep) -> None:
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


class Replay:
    """The auditor's shadow of the canary run: same model, optimizer and clipping code, advanced
    with the observed privatized updates; gives each step's clipped data sum."""

    def __init__(self, base: VisionTransformer, train: ImageData, config: DPConfig, cache: FeatureCache,
                 progress: bool = False) -> None:
        self.config = config
        self.model = prepare_model(base, train.num_classes, config.train_config())
        self.model.train()
        self.params = trainable(self.model)
        weight_decay = 0.0 if config.tangent else config.weight_decay
        self.optimizer = make_torch_optimizer(list(self.params.values()), config.optimizer, config.lr,
                                              momentum=config.momentum, weight_decay=weight_decay)
        self.regularizer = weight_penalty(self.model, config)
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
        reg: dict[str, Tensor] = {}
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
        other = trainable(model)
        return max(float((self.params[n].detach() - other[n].detach()).abs().max()) for n in self.params)


@dataclass
class CanaryRun:
    """Scores of one canary run, with everything needed to bound and report them."""

    scores: np.ndarray
    canaries: CanarySet
    claim: Claim
    bug: str | None
    seconds: float
    steps: int
    details: dict[str, Any] = field(default_factory=dict)


def data_subset(train: ImageData, limit: int | None, seed: int) -> ImageData:
    """``limit`` records of ``train`` drawn at random (seeded); all of them when ``limit`` is None."""
    if limit is None or limit >= len(train):
        return train
    if limit < 1:
        raise ConfigError(f"data_limit must be ≥ 1 (or None for all records), got {limit}")
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(int(seed)))[: int(limit)]
    return train.subset(torch.sort(order).values, f"{train.name}[canary run, {limit}]")


def canary_run(base: VisionTransformer, train: ImageData, dp_config: DPConfig, *, num_canaries: int, seed: int = 0,
               bug: str | None = None, data_limit: int | None = DEFAULT_DATA_LIMIT, data_gradient: str = "subtract",
               canary_norm_factor: float = DEFAULT_NORM_FACTOR, cache: FeatureCache | None = None,
               noise_seed: int | None = None, threads: int | None = 1, progress: bool = False) -> CanaryRun:
    """One canary training run of ``dp_config`` on ``train`` (``fit_dp``), observed at every step.

    ``data_limit``: training records in the canary run (None: all). ``noise_seed``: seeds the
    DP noise of the canary run (reproducible tests); default OS entropy, like a real run.
    The claim is computed for the full ``train`` size (the accountant does not depend on it).
    ``threads``: torch threads while the run lasts (restored after; None: leave as is).
    """
    if data_gradient not in DATA_GRADIENTS:
        raise ConfigError(f"data_gradient must be 'subtract' or 'ignore', got {data_gradient!r}")
    if not canary_norm_factor > 1.0:
        raise ConfigError(f"canary_norm_factor must exceed 1 (canaries above the clipping norm), "
                          f"got {canary_norm_factor!r}")
    start = time.perf_counter()
    claim, run_config = claim_for(dp_config, len(train), bug)
    run_config = run_config.replace(noise_seed=noise_seed)
    data = data_subset(train, data_limit, seed)
    cache = cache if (cache is not None and data is train) else FeatureCache()
    with torch_threads(threads):
        replay = None
        if data_gradient == "subtract":
            replay = Replay(base, data, run_config, cache, progress)
            params = replay.params
        else:  # the canary directions live in the trained Δw of this configuration (layout only)
            params = trainable(prepare_model(base, data.num_classes, run_config.train_config()))
        canaries = make_canaries(params, num_canaries, norm=canary_norm_factor * claim.max_grad_norm, seed=seed)
        schedule = CanarySchedule(canaries, run_config.sample_rate, seed=seed)
        observer = WhiteboxObserver(canaries, claim, data_sum=replay.data_sum if replay else None,
                                    advance=replay.advance if replay else None)
        result = fit_dp(base, data, run_config, cache=cache, progress=progress, on_step=observer,
                        extra_per_sample_grads=schedule)
    details: dict[str, Any] = {
        "records": len(data), "data_gradient": data_gradient, "canary_norm": canaries.norm,
        "run_noise_multiplier": run_config.noise_multiplier, "run_max_grad_norm": run_config.max_grad_norm,
        "run_sample_rate": run_config.sample_rate, "run_steps": result.metrics["steps"],
        "observer_seconds": observer.seconds, "train_seconds": result.metrics["train_seconds"]}
    if replay is not None:
        diff = replay.max_abs_diff(result.model)
        details.update({"replay_seconds": replay.seconds, "replay_max_abs_diff": diff})
        scale = 1.0 + max(float(p.detach().abs().max()) for p in trainable(result.model).values())
        if not diff <= 1e-5 * scale:
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
    if claim.mu is not None:
        return rng.standard_normal(m) + bits * claim.mu
    total = np.zeros(m)
    for _ in range(claim.steps):
        x = (bits & (rng.random(m) < claim.sample_rate)) + claim.noise_multiplier * rng.standard_normal(m)
        total += score_canaries(x, claim.noise_multiplier, claim.sample_rate)
    return total


__all__ = ["CanaryRun", "DATA_GRADIENTS", "DEFAULT_DATA_LIMIT", "Replay", "WhiteboxObserver", "canary_run",
           "data_subset", "ideal_scores", "mechanism_run", "score_canaries"]
