"""Count-based empirical-ε lower bounds: Clopper–Pearson, the one-run bound, audit power."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pytest
from scipy.stats import beta as beta_dist
from scipy.stats import binom

from audits.privacy import clopper_pearson_interval, epsilon_lower_bound, one_run_epsilon_lower_bound
from audits.privacy.clopper_pearson import calibration_split, threshold_attack_epsilon
from audits.privacy.one_run import one_run_guesses, one_run_p_value
from audits.privacy.power import one_run_power, threshold_power

LEVEL = 0.05  # 1 − confidence everywhere below


def _rate_ceiling(level: float, trials: int) -> float:
    """The largest simulated rate still consistent (3 standard errors) with a true rate ≤ level."""
    return level + 3.0 * math.sqrt(level * (1.0 - level) / trials)


# ---------------------------------------------------------------- Clopper–Pearson interval


@pytest.mark.parametrize(
    "x,n,confidence", [(0, 10, 0.95), (3, 10, 0.95), (10, 10, 0.95), (17, 250, 0.9), (499, 1000, 0.99)]
)
def test_clopper_pearson_interval_is_the_beta_quantiles(x: int, n: int, confidence: float) -> None:
    tail = (1 - confidence) / 2
    lo, hi = clopper_pearson_interval(x, n, confidence)
    want_lo = 0.0 if x == 0 else beta_dist.ppf(tail, x, n - x + 1)
    want_hi = 1.0 if x == n else beta_dist.ppf(1 - tail, x + 1, n - x)
    assert lo == pytest.approx(want_lo, rel=1e-10, abs=1e-15)
    assert hi == pytest.approx(want_hi, rel=1e-10, abs=1e-15)
    assert lo <= x / n <= hi


def test_clopper_pearson_zero_count_has_closed_form() -> None:
    # 0 successes in n: hi solves (1 − p)^n = α/2, so it is > 0 and the FPR bound never divides by 0.
    lo, hi = clopper_pearson_interval(0, 1000, 0.95)
    assert lo == 0.0
    assert hi == pytest.approx(1 - 0.025 ** (1 / 1000), rel=1e-10)
    lo, hi = clopper_pearson_interval(1000, 1000, 0.95)
    assert (lo, hi) == (pytest.approx(0.025 ** (1 / 1000), rel=1e-12), 1.0)


def test_clopper_pearson_exact_coverage_is_at_least_confidence() -> None:
    n = 40
    xs = np.arange(n + 1)
    intervals = [clopper_pearson_interval(int(x), n, 0.95) for x in xs]
    for p in (0.02, 0.3, 0.5, 0.77, 0.99):
        covered = np.array([lo <= p <= hi for lo, hi in intervals])
        assert binom.pmf(xs, n, p)[covered].sum() >= 0.95


# ---------------------------------------------------------------- ε from a confusion matrix


def _eps_by_hand(tp: int, fn: int, fp: int, tn: int, delta: float, confidence: float) -> float:
    t = (1 - confidence) / 2
    P, N = tp + fn, fp + tn
    tpr_lo = beta_dist.ppf(t, tp, P - tp + 1) if tp else 0.0
    fnr_hi = beta_dist.ppf(1 - t, fn + 1, P - fn) if fn < P else 1.0
    fpr_hi = beta_dist.ppf(1 - t, fp + 1, N - fp) if fp < N else 1.0
    tnr_lo = beta_dist.ppf(t, tn, N - tn + 1) if tn else 0.0
    terms = [math.log((a - delta) / b) for a, b in ((tpr_lo, fpr_hi), (tnr_lo, fnr_hi)) if a > delta]
    return max([0.0, *terms])


@pytest.mark.parametrize(
    "counts,delta,confidence",
    [((90, 10, 20, 80), 0.0, 0.95), ((90, 10, 20, 80), 1e-2, 0.9), ((1000, 0, 500, 500), 0.0, 0.95),
     ((30, 70, 2, 98), 1e-5, 0.99), ((7, 3, 0, 12), 0.0, 0.95)],
)
def test_epsilon_lower_bound_matches_the_formula(counts: tuple, delta: float, confidence: float) -> None:
    got = epsilon_lower_bound(*counts, delta=delta, confidence=confidence)
    assert got == pytest.approx(_eps_by_hand(*counts, delta, confidence), rel=1e-9)
    assert got > 0


def test_epsilon_lower_bound_uses_both_directions() -> None:
    # Members always flagged, half the non-members too: TPR/FPR ≈ 2, but TNR/FNR is huge.
    tpr_direction_only = math.log(clopper_pearson_interval(1000, 1000)[0] / clopper_pearson_interval(500, 1000)[1])
    assert epsilon_lower_bound(1000, 0, 500, 500) > tpr_direction_only + 3
    # Swapping the roles of members and non-members mirrors the two terms.
    assert epsilon_lower_bound(1000, 0, 500, 500) == pytest.approx(epsilon_lower_bound(500, 500, 0, 1000), rel=1e-12)


def test_epsilon_lower_bound_is_zero_without_signal_and_shrinks_with_delta() -> None:
    assert epsilon_lower_bound(50, 50, 50, 50) == 0.0
    assert epsilon_lower_bound(0, 100, 100, 0) == 0.0  # an inverted attack certifies nothing as oriented
    b0, b1, b2 = (epsilon_lower_bound(900, 100, 100, 900, delta=d) for d in (0.0, 0.1, 0.5))
    assert b0 > b1 > b2 > 0
    assert epsilon_lower_bound(900, 100, 100, 900, delta=0.95) == 0.0  # δ above both rates' bounds


@pytest.mark.parametrize(
    "kwargs,name",
    [(dict(tp=-1, fn=5, fp=5, tn=5), "tp"), (dict(tp=5, fn=5, fp=2.5, tn=5), "fp"),
     (dict(tp=0, fn=0, fp=5, tn=5), "tp \\+ fn"), (dict(tp=5, fn=5, fp=0, tn=0), "fp \\+ tn"),
     (dict(tp=5, fn=5, fp=5, tn=5, confidence=1.0), "confidence"),
     (dict(tp=5, fn=5, fp=5, tn=5, confidence=0.0), "confidence"),
     (dict(tp=5, fn=5, fp=5, tn=5, delta=1.0), "delta"), (dict(tp=5, fn=5, fp=5, tn=5, delta=-1e-9), "delta")],
)
def test_epsilon_lower_bound_rejects_bad_input_by_name(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        epsilon_lower_bound(**kwargs)


# ---------------------------------------------------------------- one-run bound (Steinke et al. 2023)


def _brute_p_value(m: int, r: int, v: int, eps: float, delta: float) -> float:
    """The main theorem's bound term by term: exact binomial pmf, max over every i in 1..m."""
    q = math.exp(eps) / (1 + math.exp(eps))
    pmf = [math.comb(r, j) * q**j * (1 - q) ** (r - j) for j in range(r + 1)]
    tail = math.fsum(pmf[v:])
    slack = max(math.fsum(pmf[max(v - i, 0):v]) / i for i in range(1, m + 1))
    return min(tail + 2 * m * delta * slack, 1.0)


@pytest.mark.parametrize("delta", [0.0, 1e-3, 0.04])
def test_one_run_p_value_matches_brute_force(delta: float) -> None:
    for m, r in ((3, 3), (8, 5), (12, 12), (30, 9)):
        for v in range(r + 1):
            for eps in (0.0, 0.4, 1.7, 4.0):
                want = _brute_p_value(m, r, v, eps, delta)
                assert one_run_p_value(m, r, v, eps, delta) == pytest.approx(want, rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("m,r,v,delta", [(10, 10, 10, 0.0), (20, 12, 11, 0.0), (30, 9, 9, 1e-3), (50, 20, 18, 1e-3)])
def test_one_run_bound_is_the_last_rejected_epsilon(m: int, r: int, v: int, delta: float) -> None:
    eps = one_run_epsilon_lower_bound(m, r, v, delta=delta, confidence=0.95)
    assert eps > 0
    assert _brute_p_value(m, r, v, eps, delta) < LEVEL <= _brute_p_value(m, r, v, eps + 1e-5, delta)


def test_one_run_bound_all_right_has_closed_form() -> None:
    # δ = 0, v = r: the p-value is q^r, so ε_lb = logit(α^(1/r)).
    for r in (1, 4, 5, 7, 100, 1000):
        q = LEVEL ** (1 / r)
        assert one_run_epsilon_lower_bound(5000, r, r) == pytest.approx(max(math.log(q / (1 - q)), 0.0), abs=1e-6)
    # 0.5^4 > 5 % > 0.5^5: four right guesses never reject ε = 0, five do
    assert one_run_epsilon_lower_bound(5000, 4, 4) == 0.0 < one_run_epsilon_lower_bound(5000, 5, 5)


def test_one_run_bound_is_zero_when_nothing_is_rejected() -> None:
    assert one_run_epsilon_lower_bound(1000, 100, 55) == 0.0  # 55/100 is within chance at ε = 0
    assert one_run_epsilon_lower_bound(1000, 0, 0) == 0.0
    assert one_run_epsilon_lower_bound(1000, 100, 100, delta=0.01) == 0.0  # 2mδ = 20 swamps every p-value


def test_one_run_bound_is_monotone() -> None:
    m, r = 1000, 200
    by_correct = [one_run_epsilon_lower_bound(m, r, v) for v in range(100, r + 1, 5)]
    assert by_correct[0] == 0.0
    assert all(a <= b for a, b in zip(by_correct, by_correct[1:]))
    positive = [b for b in by_correct if b > 0]
    assert len(positive) >= 10 and all(a < b for a, b in zip(positive, positive[1:]))
    by_delta = [one_run_epsilon_lower_bound(m, r, 170, delta=d) for d in (0.0, 1e-6, 1e-5, 1e-4)]
    assert all(a > b for a, b in zip(by_delta, by_delta[1:]))
    by_confidence = [one_run_epsilon_lower_bound(m, r, 170, confidence=c) for c in (0.8, 0.95, 0.99)]
    assert all(a > b for a, b in zip(by_confidence, by_confidence[1:]))


def test_one_run_p_value_grows_with_epsilon() -> None:
    # Bisection is only sound if the p-value is monotone in ε, δ-slack included.
    for m, r, v, delta in ((1000, 100, 80, 1e-5), (20000, 1000, 990, 1e-5), (5000, 500, 300, 1e-4)):
        p = [one_run_p_value(m, r, v, e, delta) for e in np.linspace(0, 12, 121)]
        assert all(a <= b + 1e-15 for a, b in zip(p, p[1:]))


@pytest.mark.parametrize(
    "args,name",
    [((0, 0, 0), "num_canaries"), ((10, 11, 5), "num_guesses"), ((10, 5, 6), "num_correct"),
     ((10, 5, -1), "num_correct"),
     ((10, 5, 5, 1.0), "delta"), ((10, 5, 5, 0.0, 1.5), "confidence")],
)
def test_one_run_bound_rejects_bad_input_by_name(args: tuple, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        one_run_epsilon_lower_bound(*args)


# ---------------------------------------------------------------- guesses with k fixed in advance


def test_one_run_guesses_top_and_bottom() -> None:
    scores = [0.9, 0.1, 0.5, 0.8, 0.2]
    included = [True, False, True, False, True]
    # top-2 "in": canaries 0 (in, right) and 3 (out, wrong); bottom-2 "out": 1 (right) and 4 (wrong)
    assert one_run_guesses(scores, included, k_pos=2, k_neg=2) == (4, 2)
    assert one_run_guesses(scores, included, num_guesses=4) == (4, 2)
    assert one_run_guesses(scores, included, k_pos=0, k_neg=1) == (1, 1)
    assert one_run_guesses(scores, included, num_guesses=5) == (5, 2)  # k_pos = 2, k_neg = 3 adds canary 2, wrong
    with pytest.raises(ValueError, match="k_pos"):
        one_run_guesses(scores, included, k_pos=3, k_neg=3)
    with pytest.raises(ValueError, match="num_guesses"):
        one_run_guesses(scores, included, num_guesses=4, k_pos=2, k_neg=2)


def test_random_guessing_certifies_about_nothing() -> None:
    rng = np.random.default_rng(11)
    m, k, runs = 1000, 100, 400
    bound = lru_cache(maxsize=None)(lambda v: one_run_epsilon_lower_bound(m, k, v))
    eps = np.array([bound(one_run_guesses(rng.normal(size=m), rng.random(m) < 0.5, k)[1]) for _ in range(runs)])
    assert np.median(eps) == 0.0
    assert np.mean(eps > 0) <= _rate_ceiling(LEVEL, runs)
    assert eps.max() < 1.0


def test_perfect_guessing_reaches_the_power() -> None:
    rng = np.random.default_rng(3)
    included = rng.random(1000) < 0.5
    guesses, correct = one_run_guesses(included + 0.01 * rng.normal(size=1000), included, num_guesses=100)
    assert guesses == correct == 100
    assert one_run_epsilon_lower_bound(1000, guesses, correct) == one_run_power(1000, 100)
    result = threshold_attack_epsilon(rng.normal(size=400) + 100, rng.normal(size=600), seed=5)
    sizes = result["split_sizes"]
    assert result["epsilon_lb"] == threshold_power(sizes["evaluation_members"], sizes["evaluation_nonmembers"])


def test_power_reproduces_the_notes() -> None:
    # the ceilings measured before the first landing (perfect attack, 95 %): δ = 0 in the one-run bound (m
    # then does not matter) ...
    assert [round(one_run_power(m, m), 2) for m in (100, 1000, 5000)] == [3.49, 5.81, 7.42]
    assert round(one_run_power(20000, 1000), 2) == 5.81
    # ... whereas δ = 1e-5 with m = r lowers the larger two: the notes did not use δ > 0.
    assert [round(one_run_power(m, m, delta=1e-5), 2) for m in (100, 1000, 5000)] == [3.49, 5.78, 7.28]
    # Clopper–Pearson 1,000/1,000 → 5.60 takes the two-sided 95 % interval (2.5 % per side); δ is immaterial.
    assert round(threshold_power(1000, 1000), 2) == 5.60
    assert round(threshold_power(1000, 1000, delta=1e-5), 2) == 5.60
    assert round(threshold_power(1000, 1000, confidence=0.90), 2) == 5.81  # one-sided 5 % would overstate it


# ---------------------------------------------------------------- validity by simulation (pure ε-DP)


@pytest.mark.parametrize("epsilon", [1.0, 2.0])
def test_one_run_bound_is_valid_for_randomized_response(epsilon: float) -> None:
    """ε-randomized response on each canary: P[ε_lb > ε] ≤ 1 − confidence, and is the exact binomial tail."""
    rng = np.random.default_rng(int(epsilon * 100))
    m, k, runs = 400, 100, 2000
    q = math.exp(epsilon) / (1 + math.exp(epsilon))
    bound = lru_cache(maxsize=None)(lambda v: one_run_epsilon_lower_bound(m, k, v))
    exceed = 0
    for _ in range(runs):
        included = rng.random(m) < 0.5
        observed = np.where(rng.random(m) < q, included, ~included)  # what the trained model leaks
        exceed += bound(one_run_guesses(observed.astype(float), included, k)[1]) > epsilon
    v_star = min(v for v in range(k + 1) if bound(v) > epsilon)
    exact = binom.sf(v_star - 1, k, q)  # W ~ Binomial(k, q) exactly for randomized response
    assert exact <= LEVEL
    assert exceed / runs <= _rate_ceiling(LEVEL, runs)
    assert abs(exceed / runs - exact) <= 4 * math.sqrt(exact * (1 - exact) / runs) + 1e-3


def test_clopper_pearson_bound_is_valid_for_randomized_response() -> None:
    """Independent ε-DP trials: members flagged w.p. e^ε/(1+e^ε), non-members w.p. 1/(1+e^ε)."""
    rng = np.random.default_rng(7)
    epsilon, n, runs = 1.0, 200, 2000
    q = math.exp(epsilon) / (1 + math.exp(epsilon))
    tps, fps = rng.binomial(n, q, size=runs), rng.binomial(n, 1 - q, size=runs)
    bound = lru_cache(maxsize=None)(lambda tp, fp: epsilon_lower_bound(tp, n - tp, fp, n - fp))
    eps = np.array([bound(int(tp), int(fp)) for tp, fp in zip(tps, fps)])
    assert np.mean(eps > epsilon) <= _rate_ceiling(LEVEL, runs)
    assert np.median(eps) > 0.3 * epsilon  # and the bound is not vacuous


def test_threshold_attack_is_valid_for_the_laplace_mechanism() -> None:
    """Scores b + Laplace(1/ε), b = membership: a pure ε-DP release; thresholds are picked on calibration data."""
    rng = np.random.default_rng(13)
    epsilon, n, runs = 2.0, 150, 150
    eps = np.array([
        threshold_attack_epsilon(1 + rng.laplace(scale=1 / epsilon, size=n), rng.laplace(scale=1 / epsilon, size=n),
                                 seed=s)["epsilon_lb"]
        for s in range(runs)
    ])
    assert np.mean(eps > epsilon) <= _rate_ceiling(LEVEL, runs)
    assert np.median(eps) > 0.3


def test_threshold_attack_null_certifies_nothing() -> None:
    rng = np.random.default_rng(17)
    runs = 150
    eps = np.array([
        threshold_attack_epsilon(rng.normal(size=60), rng.normal(size=60), seed=s)["epsilon_lb"] for s in range(runs)
    ])
    assert np.mean(eps > 0) <= _rate_ceiling(LEVEL, runs)


def test_threshold_attack_splits_and_counts() -> None:
    rng = np.random.default_rng(1)
    members, nonmembers = rng.normal(1.0, 1.0, size=101), rng.normal(0.0, 1.0, size=60)
    result = threshold_attack_epsilon(members, nonmembers, delta=1e-5, confidence=0.9, calibration_fraction=0.3, seed=4)
    sizes, counts = result["split_sizes"], result["counts"]
    assert sizes == {"calibration_members": 30, "calibration_nonmembers": 18,
                     "evaluation_members": 71, "evaluation_nonmembers": 42}
    assert counts["tp"] + counts["fn"] == 71 and counts["fp"] + counts["tn"] == 42
    assert min(nonmembers.min(), members.min()) <= result["threshold"] <= max(members.max(), nonmembers.max())
    assert result["epsilon_lb"] == epsilon_lower_bound(**counts, delta=1e-5, confidence=0.9)
    again = threshold_attack_epsilon(members, nonmembers, delta=1e-5, confidence=0.9, calibration_fraction=0.3, seed=4)
    assert again == result
    with pytest.raises(ValueError, match="calibration_fraction"):
        threshold_attack_epsilon(members, nonmembers, calibration_fraction=1.0)
    with pytest.raises(ValueError, match="scores_nonmembers"):
        threshold_attack_epsilon(members, [0.3])


def test_threshold_is_chosen_on_calibration_data_only() -> None:
    rng = np.random.default_rng(2)
    members, nonmembers = rng.normal(1.0, 1.0, size=200), rng.normal(0.0, 1.0, size=200)
    split = calibration_split(200, 200, 0.5, seed=9)
    assert sorted(np.concatenate([split["calibration_members"], split["evaluation_members"]])) == list(range(200))
    base = threshold_attack_epsilon(members, nonmembers, seed=9)
    # Rewrite every held-out score: members now sit far below non-members there. The threshold must not move.
    members[split["evaluation_members"]] = rng.normal(-5.0, 0.1, size=100)
    nonmembers[split["evaluation_nonmembers"]] = rng.normal(5.0, 0.1, size=100)
    moved = threshold_attack_epsilon(members, nonmembers, seed=9)
    assert moved["threshold"] == base["threshold"]
    assert moved["counts"]["tp"] < base["counts"]["tp"] and moved["epsilon_lb"] == 0.0
