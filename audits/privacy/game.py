"""The one-run game of a canary audit and its bounds: guesses fixed in advance, ε lower bounds,
the confidence each bound runs at, and what an ideal mechanism meeting the claim would show.

Bounds (``bounds_for``), all finite-sample at the stated confidence, on the *whole* game of m
canaries (the guessed canaries are never the canary set), with r fixed before the canary run
from m and the claim alone (``choose_num_guesses``: among m/40 … m/4, the best simulated
tightness whose audit power — the bound with every guess right — is at least 1.2 × the
claimed ε; top r/2 guessed in, bottom r/2 guessed out; never a maximum over r):

- *binomial* (Steinke, Nasr, Jagielski 2023, main theorem, with the claim's δ): tests (ε, δ)-DP;
- *f-DP* (``audits.privacy.fdp``, Mahloujifar et al. 2025 + a certified LP): tests that the
  training is f-DP with the accountant's own curve — μ-GDP with μ = √T/σ for full-batch
  DP-GD, the Poisson-subsampled Gaussian curve for q < 1 — reported as ε at the claim's δ.

The verdict FAILs when any row exceeds the claimed ε. For full batch the f-DP bound (method
"auto") already includes the binomial bound at the same δ and confidence, so it is never below
the binomial row and the verdict's false-FAIL rate is the f-DP bound's, ≤ α: both rows run at
the stated confidence. Otherwise each row runs at 1 − α/k (Bonferroni, ``per_bound_confidence``).

**Tightness** = ε_lb / ε_claimed, next to the **ideal tightness**: the median, over simulated
runs of a perfect Gaussian mechanism with the claim's m, r, σ, q, T, of the same bound.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Protocol, TypedDict

import numpy as np

from audits.privacy.canary_runs import ideal_scores
from audits.privacy.claims import Claim
from audits.privacy.fdp import gdp_one_run_epsilon_lower_bound, subsampled_gaussian_one_run_epsilon_lower_bound
from audits.privacy.ideal import simulate_ideal_counts
from audits.privacy.one_run import one_run_epsilon_lower_bound, one_run_guesses
from privtangent.errors import ConfigError

BoundFn = Callable[[int, int, int, float], float]  # (m, r, correct, confidence) → ε_lb
METHODS = {"binomial": "white-box binomial (Steinke et al. 2023)", "fdp": "white-box f-DP (accountant's curve)"}
IDEAL_SIMULATIONS = 21  # odd: the median is one simulated run's count
GUESS_FRACTIONS = (1 / 40, 1 / 20, 1 / 15, 1 / 10, 1 / 7.5, 1 / 5, 1 / 4)
MIN_POWER_RATIO = 1.2


class GameShape(Protocol):
    """The one-run game's public size and its secret bits."""

    @property
    def num_canaries(self) -> int: ...

    @property
    def included(self) -> np.ndarray: ...


class ScoredRun(Protocol):
    """What the bounds read from one canary run, white-box (``CanaryRun``) or from outputs alone."""

    @property
    def scores(self) -> np.ndarray: ...

    @property
    def claim(self) -> Claim: ...

    @property
    def seconds(self) -> float: ...

    @property
    def canaries(self) -> GameShape: ...


class BoundRow(TypedDict, total=False):
    """One bound of one canary run (a row of the report's canary-audit table)."""

    method: str
    model: str
    epsilon_claimed: float
    num_canaries: int
    num_guesses: int
    num_correct: int
    epsilon_lb: float | None
    tightness: float | None
    ideal_tightness: float | None
    ideal_epsilon_lb: float | None
    audit_power: float | None
    confidence: float
    status: str
    seconds: float
    error: str


def fdp_bound(claim: Claim, method: str = "auto") -> BoundFn:
    """The f-DP bound for the claim's curve (μ-GDP for full batch, subsampled Gaussian otherwise)."""
    if claim.mu is not None:
        return lambda m, r, v, conf: float(gdp_one_run_epsilon_lower_bound(m, r, v, delta=claim.delta,
                                                                           confidence=conf, method=method))
    return lambda m, r, v, conf: float(subsampled_gaussian_one_run_epsilon_lower_bound(
        m, r, v, sample_rate=claim.sample_rate, steps=claim.steps, delta=claim.delta, confidence=conf, method=method))


def binomial_bound(claim: Claim) -> BoundFn:
    """Steinke et al.'s (ε, δ) bound at the claim's δ."""
    return lambda m, r, v, conf: float(one_run_epsilon_lower_bound(m, r, v, delta=claim.delta, confidence=conf))


def bounds_for(claim: Claim, fdp_method: str = "auto") -> dict[str, BoundFn]:
    """Every bound of the white-box audit, by key of ``METHODS``."""
    return {"binomial": binomial_bound(claim), "fdp": fdp_bound(claim, fdp_method)}


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


def default_num_guesses(num_canaries: int) -> int:
    """r = max(2, ⌊m/10⌋) (≤ m): a rule from m alone, fixed before any score is seen.

    Abstaining on most canaries keeps the guesses on the most extreme scores: with the f-DP
    bound, fewer guesses than half of the canaries were measured to give tighter bounds
    (m = 5,000 → 500 guesses: 0.57–0.64 of ε vs 0.47 with half of them).
    """
    return min(num_canaries, max(2, num_canaries // 10))


def _ideal_counts(m: int, r: int, claim: Claim, included: np.ndarray | None, sims: int, seed: int) -> np.ndarray:
    """Right-guess counts of ``sims`` simulated runs of a perfect mechanism meeting the claim."""
    if claim.mu is not None and included is None:
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


@lru_cache(maxsize=64)
def choose_num_guesses(num_canaries: int, claim: Claim, *, min_power_ratio: float = MIN_POWER_RATIO,
                       sims: int = IDEAL_SIMULATIONS, seed: int = 0) -> int:
    """The number of guesses r, fixed from (m, the claim) alone before any canary run.

    Among r = m/40 … m/4, the r with the best *simulated* tightness on a perfect mechanism that
    meets the claim, among those whose audit power (ε_lb with every guess right) is at least
    ``min_power_ratio`` × the claimed ε, so that a broken run can FAIL at all (with 500 guesses
    the f-DP bound's power is 7.98: it could never refute ε = 8). Uses the f-DP bound's fast
    recursion; deterministic; never looks at scores. Under Poisson sampling:
    ``default_num_guesses(m)``.
    """
    m = int(num_canaries)
    if claim.sample_rate != 1.0 or m < 40:
        return default_num_guesses(m)
    bound = fdp_bound(claim, "recursion")
    candidates = sorted({max(2, min(m, int(round(m * f)))) for f in GUESS_FRACTIONS})
    scored = []
    for r in candidates:
        power = bound(m, r, r, 0.95)
        ideal = ideal_epsilon_lb(bound, m, r, claim, 0.95, sims=sims, seed=seed)
        scored.append((power >= min_power_ratio * claim.epsilon, ideal, power, r))
    ok = [x for x in scored if x[0]]
    if ok:
        return max(ok, key=lambda x: (x[1], -x[3]))[3]
    return max(scored, key=lambda x: (x[2], -x[3]))[3]


def bound_rows(run: ScoredRun, *, num_guesses: int, confidence: float = 0.95,
               ideal_simulations: int = IDEAL_SIMULATIONS, seed: int = 0,
               fdp_method: str = "auto") -> list[BoundRow]:
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
    bounds = bounds_for(claim, fdp_method)
    each = per_bound_confidence(claim, list(bounds), confidence, fdp_method)
    r, v = one_run_guesses(run.scores, run.canaries.included, int(num_guesses))
    rows: list[BoundRow] = []
    for key, bound in bounds.items():
        row: BoundRow = {"method": METHODS[key], "epsilon_claimed": claim.epsilon, "num_canaries": m,
                         "num_guesses": r, "num_correct": v}
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


__all__ = ["BoundFn", "BoundRow", "GUESS_FRACTIONS", "IDEAL_SIMULATIONS", "METHODS", "MIN_POWER_RATIO",
           "binomial_bound", "bound_rows", "bounds_for", "choose_num_guesses", "default_num_guesses", "fdp_bound",
           "ideal_epsilon_lb", "per_bound_confidence"]
