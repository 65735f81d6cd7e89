"""The f-DP one-run bound in isolation (audits/privacy/fdp.py, audits/privacy/ideal.py).

Validity is checked three ways: on the ideal Gaussian mechanism (many seeds), on a μ-GDP
mechanism that is *not* Gaussian and is near the worst case (exact tail, no simulation noise),
and by brute force on tiny games (every law the LP allows is realized by a μ-GDP mechanism;
random small μ-GDP mechanisms never beat the certified tail). Default run < 90 s; the large
configurations are marked slow.
"""

from __future__ import annotations

import itertools
import math
import time

import numpy as np
import pytest
from scipy.optimize import linprog
from scipy.stats import kstest

from audits.privacy import gdp_one_run_epsilon_lower_bound as exported
from audits.privacy.fdp import (
    _gdp_finv,
    _recursion_needed_mass,
    fdp_recursion_rejects,
    gdp_delta,
    gdp_epsilon,
    gdp_mu,
    gdp_one_run_epsilon_lower_bound,
    gdp_one_run_mu_lower_bound,
    gdp_one_run_tail_bound,
    subsampled_gaussian_one_run_epsilon_lower_bound,
    subsampled_gaussian_profile,
)
from audits.privacy.ideal import (
    full_batch_dpgd_white_box_scores,
    guess_counts,
    ideal_tightness,
    simulate_ideal_counts,
    two_mode_counts,
    two_mode_tail,
    white_box_scores,
)
from privtangent.errors import ConfigError

DELTA = 1e-5


# --------------------------------------------------------------------------- conversions


def test_gdp_conversions_round_trip_and_closed_form():
    for mu in (0.05, 0.3, 1.0, 2.5, 6.0):
        eps = gdp_epsilon(mu, DELTA)
        assert gdp_delta(eps, mu) == pytest.approx(DELTA, rel=1e-8)
        assert gdp_mu(eps, DELTA) == pytest.approx(mu, rel=1e-9)
    # direct formula where it is numerically safe
    from scipy.stats import norm

    for mu, eps in ((1.0, 1.0), (0.5, 0.2), (2.0, 3.0)):
        direct = norm.cdf(-eps / mu + mu / 2) - math.exp(eps) * norm.cdf(-eps / mu - mu / 2)
        assert gdp_delta(eps, mu) == pytest.approx(direct, rel=1e-10)
    # monotone: more μ → more ε; tiny δ does not overflow
    assert gdp_epsilon(1.0, DELTA) < gdp_epsilon(1.1, DELTA)
    assert math.isfinite(gdp_epsilon(30.0, 1e-12))
    assert gdp_delta(200.0, 1.0) >= 0.0


def test_gdp_mu_of_reference_epsilons():
    # μ(ε, 1e-5) for the audit's claimed ε ∈ {1, 3, 8}
    assert gdp_mu(1.0, DELTA) == pytest.approx(0.2681, abs=1e-4)
    assert gdp_mu(3.0, DELTA) == pytest.approx(0.7191, abs=1e-4)
    assert gdp_mu(8.0, DELTA) == pytest.approx(1.666, abs=1e-3)


# --------------------------------------------------------------------------- the mechanism


def test_white_box_scores_follow_the_gaussian_mechanism():
    """Full-batch DP-GD with orthogonal unit canary gradients: scores ~ N(√T/σ·bit, 1) (KS)."""
    sigma, steps = 2.0, 16
    mu = math.sqrt(steps) / sigma
    scores, bits = full_batch_dpgd_white_box_scores(4000, sigma, steps, np.random.default_rng(7))
    assert kstest(scores[bits] - mu, "norm").pvalue > 1e-3
    assert kstest(scores[~bits], "norm").pvalue > 1e-3
    # the test has power: a 20 % error in μ is detected
    assert kstest(scores[bits] - 1.2 * mu, "norm").pvalue < 1e-3


def test_guessing_rule_counts_top_and_bottom():
    scores = np.array([5.0, 4.0, 3.0, 2.0, 1.0, 0.0])
    bits = np.array([1, 0, 1, 0, 0, 1], dtype=bool)
    # top 2 "in": canaries 0 (in), 1 (out); bottom 2 "out": canaries 5 (in), 4 (out)
    assert guess_counts(scores, bits, 4) == 2
    assert guess_counts(scores, bits, 6) == 4  # top 3: 0 ✓ 1 ✗ 2 ✓; bottom 3: 5 ✗ 4 ✓ 3 ✓


# --------------------------------------------------------------------------- validity


def _first_rejecting_count(m, k, mu, method="auto"):
    """Smallest c at which the bound rejects μ (ε_lb > ε(μ)); None if even c = k does not."""
    eps = gdp_epsilon(mu, DELTA)
    lo, hi = k // 2, k
    if gdp_one_run_epsilon_lower_bound(m, k, hi, DELTA, method=method) <= eps:
        return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if gdp_one_run_epsilon_lower_bound(m, k, mid, DELTA, method=method) > eps:
            hi = mid
        else:
            lo = mid
    return hi


def _over_claims(m, k, eps, seeds, method="auto"):
    """Seeds of the ideal mechanism whose ε_lb exceeds the true ε.

    The bound is found at the threshold count c* by bisection; the counts just below c* are
    checked directly, so a bound that were not monotone in the count would still be caught there.
    """
    mu = gdp_mu(eps, DELTA)
    counts = simulate_ideal_counts(m, k, mu, seeds)
    c_star = _first_rejecting_count(m, k, mu, method)
    if c_star is None:
        return 0, counts, c_star
    for c in range(max(0, c_star - 3), c_star):
        assert gdp_one_run_epsilon_lower_bound(m, k, c, DELTA, method=method) <= eps
    return int(np.sum(counts >= c_star)), counts, c_star


@pytest.mark.parametrize("eps", [1.0, 3.0, 8.0])
def test_valid_on_the_ideal_mechanism_50_seeds(eps):
    over, _, _ = _over_claims(1000, 100, eps, range(50))
    assert over <= 5


@pytest.mark.slow
@pytest.mark.parametrize("eps", [1.0, 3.0, 8.0])
@pytest.mark.parametrize("m,k", [(5000, 500), (20000, 2000)])
def test_valid_on_the_ideal_mechanism_50_seeds_large(eps, m, k):
    over, _, _ = _over_claims(m, k, eps, range(100, 150))
    assert over <= 5


def _check_two_mode(m, k, eps):
    mu = gdp_mu(eps, DELTA)
    c_star = _first_rejecting_count(m, k, mu)
    assert c_star is not None
    worst = max(
        two_mode_tail(m, k, c_star, mu, theta, rf * k / m)
        for theta in (0.05, 0.06, 0.08, 0.1, 0.15, 0.25, 0.5, 1.0)
        for rf in (1.0, 1.03, 1.1)
    )
    assert worst <= 0.05


def test_valid_against_a_worst_case_non_gaussian_mechanism():
    """The two-mode mechanism is μ-GDP; the count at which the bound starts rejecting μ must be
    one it reaches with probability ≤ 5 % — exactly, for every mode size θ and release rate."""
    _check_two_mode(2000, 200, 3.0)


@pytest.mark.slow
@pytest.mark.parametrize("m,k,eps", [(2000, 200, 1.0), (5000, 500, 1.0), (5000, 500, 3.0), (20000, 2000, 1.0), (20000, 2000, 3.0)])
def test_valid_against_a_worst_case_non_gaussian_mechanism_more(m, k, eps):
    _check_two_mode(m, k, eps)


def test_gaussian_null_would_over_claim_on_the_two_mode_mechanism():
    """Why the null must be every μ-GDP mechanism: the Gaussian mechanism's own 95 % quantile of
    W is exceeded far more than 5 % of the time by another μ-GDP mechanism."""
    m, k, mu = 2000, 200, gdp_mu(3.0, DELTA)
    gauss = simulate_ideal_counts(m, k, mu, range(400))
    c95 = int(np.quantile(gauss, 0.95)) + 1
    assert np.mean(gauss >= c95) <= 0.06
    tails = {th: two_mode_tail(m, k, c95, mu, th, 1.02 * k / m) for th in (0.08, 0.1, 0.15, 0.2, 0.3)}
    th = max(tails, key=tails.get)
    assert tails[th] > 0.07
    sim = two_mode_counts(m, k, mu, th, 1.02 * k / m, range(3000))
    assert np.mean(sim >= c95) > 0.06  # the simulator agrees with the exact tail


# --------------------------------------------------------------------------- vs the binomial bound


def _check_vs_binomial(configs, seeds):
    from audits.privacy.one_run import one_run_epsilon_lower_bound

    for eps, (m, k) in configs:
        counts = simulate_ideal_counts(m, k, gdp_mu(eps, DELTA), seeds)
        for c in counts:
            ours = gdp_one_run_epsilon_lower_bound(m, k, int(c), DELTA)
            assert ours >= one_run_epsilon_lower_bound(m, k, int(c), delta=DELTA) - 1e-6
            assert ours >= one_run_epsilon_lower_bound(m, k, int(c), delta=0.0) - 1e-6


def test_not_below_the_binomial_bound_on_the_same_observation():
    from audits.privacy.one_run import one_run_epsilon_lower_bound

    _check_vs_binomial([(e, (1000, 100)) for e in (1.0, 3.0, 8.0)], range(2))
    # at the same δ it holds by construction for any observation, ideal or not
    for m, k, c in ((50, 50, 50), (100, 20, 20), (10000, 30, 29), (300, 300, 200)):
        assert gdp_one_run_epsilon_lower_bound(m, k, c, DELTA) >= one_run_epsilon_lower_bound(m, k, c, delta=DELTA) - 1e-6


@pytest.mark.slow
def test_not_below_the_binomial_bound_large():
    _check_vs_binomial([(e, mk) for e in (1.0, 3.0, 8.0) for mk in ((5000, 500), (20000, 2000))], range(3))


# --------------------------------------------------------------------------- brute force


def _full_lp(m, k, c, mu, eps_grid):
    """max P[W ≥ c] subject to (★) on eps_grid, all levels, by a plain LP (no window, no certificate)."""
    nq, E = k + 1, len(eps_grid)
    nv = nq + E * k
    A, b = [], []
    for j, e in enumerate(eps_grid):
        for w in range(k):
            for sgn in (0, 1):
                row = np.zeros(nv)
                a_w = (w + 1) / m
                b_w = (k - w) / m
                if sgn == 0:
                    row[w + 1], row[w] = a_w, -math.exp(e) * b_w
                else:
                    row[w], row[w + 1] = b_w, -math.exp(e) * a_w
                row[nq + j * k + w] = -1.0
                A.append(row)
                b.append(0.0)
        row = np.zeros(nv)
        row[nq + j * k : nq + (j + 1) * k] = 1.0
        A.append(row)
        b.append(float(gdp_delta(e, mu)))
    row = np.zeros(nv)
    row[:nq] = 1.0
    A.append(row)
    b.append(1.0)
    g = np.zeros(nv)
    g[c:nq] = 1.0
    res = linprog(-g, A_ub=np.array(A), b_ub=np.array(b), bounds=(0, None), method="highs")
    assert res.status == 0
    return -res.fun, res.x[:nq]


def _exchangeable_mechanism_profile(m, k, q, eps_grid):
    """Brute force: the mechanism 'W ~ q, random k-subset, W right labels' on all 2^m inputs.

    Returns the worst privacy profile over canaries i and contexts s_{−i} (both directions) and
    P[W ≥ ·] of the auditor that reads the labels."""
    subsets = list(itertools.combinations(range(m), k))
    worst = np.zeros(len(eps_grid))
    for i in range(m):
        for s_rest in itertools.product((0, 1), repeat=m - 1):
            dists = []
            for si in (0, 1):
                s = list(s_rest[:i]) + [si] + list(s_rest[i:])
                out = {}
                for K in subsets:
                    for w in range(k + 1):
                        if q[w] <= 0:
                            continue
                        for right in itertools.combinations(K, w):
                            labels = tuple((j, s[j] if j in right else 1 - s[j]) for j in K)
                            p = q[w] / len(subsets) / math.comb(k, w)
                            out[labels] = out.get(labels, 0.0) + p
                dists.append(out)
            keys = set(dists[0]) | set(dists[1])
            p1 = np.array([dists[1].get(o, 0.0) for o in keys])
            p0 = np.array([dists[0].get(o, 0.0) for o in keys])
            for j, e in enumerate(eps_grid):
                d = max(np.maximum(p1 - math.exp(e) * p0, 0).sum(), np.maximum(p0 - math.exp(e) * p1, 0).sum())
                worst[j] = max(worst[j], d)
    return worst


def test_brute_force_lp_optimum_is_realized_by_a_gdp_mechanism():
    """Sufficiency, by enumeration (m = 4, k = 3): the LP's optimal law of W is produced by an
    explicit mechanism whose every per-canary profile is ≤ δ_μ — so no valid bound can beat the LP."""
    m, k, c, mu = 4, 3, 3, 1.2
    grid = np.linspace(0.0, 6.0, 121)
    val, q = _full_lp(m, k, c, mu, grid)
    q = np.clip(q, 0, None)
    q /= q.sum()
    fine = np.linspace(0.0, 6.0, 601)
    prof = _exchangeable_mechanism_profile(m, k, q, fine)
    # feasible on the LP's grid up to solver tolerance; between grid points at most the gap the
    # grid allows: i.e. the mechanism is μ'-GDP for a μ' barely above μ
    assert np.all(prof[::5] <= gdp_delta(grid, mu) + 1e-7)
    assert np.all(prof <= gdp_delta(fine, mu * 1.02) + 1e-7)
    assert q[c:].sum() == pytest.approx(val, abs=1e-7)


def _pair_profile(m, k, q, eps):
    """Left side of (★) for the law q: the exact privacy profile of the mechanism realizing q."""
    w = np.arange(k)
    A, B = (w + 1) * q[1:] / m, (k - w) * q[:-1] / m
    E = np.exp(eps)[:, None]
    return (np.maximum(A - E * B, 0) + np.maximum(B - E * A, 0)).sum(axis=1)


def test_brute_force_certified_tail_covers_realizable_worst_cases():
    """The certified tail at μ' is ≥ the tail of the LP's optimal law, once that law is made exactly
    μ'-GDP (μ' slightly above μ covers what a finite ε grid misses) — and not far above it."""
    fine = np.linspace(0.0, 14.0, 2801)
    for m, k, c, mu in ((6, 4, 4, 1.0), (8, 5, 4, 0.6), (12, 6, 6, 1.5), (40, 20, 16, 0.9)):
        _, q = _full_lp(m, k, c, mu, np.linspace(0.0, 14.0, 141))
        q = np.clip(q, 0, None)
        q /= q.sum()
        prof = _pair_profile(m, k, q, fine)
        lo, hi = mu, 2 * mu  # smallest μ' with prof ≤ δ_μ' on the fine grid (and beyond it: tiny)
        for _ in range(40):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if np.any(prof > gdp_delta(fine, mid)) else (lo, mid)
        mu_real = hi * 1.001
        assert mu_real < 1.1 * mu
        tail = q[c:].sum()
        cert = gdp_one_run_tail_bound(m, k, c, mu_real)
        assert cert >= tail - 1e-9
        assert cert <= tail + 0.03


def _min_gdp_mu(pairs, eps_grid):
    """Smallest μ (on a bisection) such that every (p1, p0) pair has profile ≤ δ_μ on eps_grid."""
    def ok(mu):
        d = gdp_delta(eps_grid, mu)
        for p1, p0 in pairs:
            for p, r in ((p1, p0), (p0, p1)):
                prof = np.maximum(p[None, :] - np.exp(eps_grid)[:, None] * r[None, :], 0).sum(axis=1)
                if np.any(prof > d + 1e-12):
                    return False
        return True

    lo, hi = 0.0, 1.0
    while not ok(hi):
        lo, hi = hi, 2 * hi
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi


def test_brute_force_random_small_mechanisms_respect_the_certified_tail():
    """Necessity, by enumeration (m = 3, k = 2): random mechanisms over guess vectors; their exact
    GDP parameter μ (profile over a fine ε grid, plus a margin for what lies between grid points)
    and exact P[W ≥ c] never beat the certified worst case at that μ."""
    m, k = 3, 2
    outputs = [g for g in itertools.product((0, 1, 2), repeat=m) if sum(x != 2 for x in g) == k]  # 2 = abstain
    inputs = list(itertools.product((0, 1), repeat=m))
    eps_grid = np.linspace(0.0, 12.0, 241)
    rng = np.random.default_rng(3)
    worst_gap = -1.0
    for trial in range(40):
        # a mixture of a random channel and "guess right" makes the mechanisms leak a lot
        logits = rng.normal(size=(len(inputs), len(outputs))) * rng.uniform(0.5, 4.0)
        P = np.exp(logits)
        P /= P.sum(axis=1, keepdims=True)
        pairs = []
        for i in range(m):
            for s_rest in itertools.product((0, 1), repeat=m - 1):
                s1 = s_rest[:i] + (1,) + s_rest[i:]
                s0 = s_rest[:i] + (0,) + s_rest[i:]
                pairs.append((P[inputs.index(s1)], P[inputs.index(s0)]))
        mu = _min_gdp_mu(pairs, eps_grid) * 1.02  # the 2 % covers ε between grid points
        W = np.array([[sum(g[j] == s[j] for j in range(m)) for g in outputs] for s in inputs])
        for c in (1, 2):
            tail = float(np.mean([(P[a] * (W[a] >= c)).sum() for a in range(len(inputs))]))
            bound = gdp_one_run_tail_bound(m, k, c, mu)
            assert tail <= bound + 1e-9
            worst_gap = max(worst_gap, tail - bound)
    assert worst_gap <= 1e-9


def test_recursion_matches_a_brute_force_upper_set_lp():
    """Mahloujifar et al.'s recursion = exact optimum of the upper-set relaxation (for small k)."""
    m, k = 30, 8
    grid = np.linspace(0.0, 8.0, 321)
    for c, mu in ((7, 0.8), (8, 1.0), (6, 0.5), (8, 2.0)):
        # LP: max P[W ≥ c] s.t. Σ_{w>i} w q_w/m ≤ e^ε Σ_{w≥i}(k−w) q_w/m + δ(ε) for all i, ε
        A, b = [], []
        for e in grid:
            for i in range(k):
                row = np.zeros(k + 1)
                row[i + 1 :] += np.arange(i + 1, k + 1) / m
                row[i:] -= math.exp(e) * (k - np.arange(i, k + 1)) / m
                A.append(row)
                b.append(float(gdp_delta(e, mu)))
        A.append(np.ones(k + 1))
        b.append(1.0)
        g = np.zeros(k + 1)
        g[c:] = 1
        res = linprog(-g, A_ub=np.array(A), b_ub=np.array(b), bounds=(0, None), method="highs")
        sup = -res.fun
        need = _recursion_needed_mass(m, k, c, _gdp_finv(np.array([mu])), 0.05, 1)[0]
        # recursion rejects (needs > 1 mass for tail 0.05) ⟺ the relaxation's sup < 0.05
        if abs(sup - 0.05) > 2e-3:
            assert (need > 1.0) == (sup < 0.05), (c, mu, sup, need)


# --------------------------------------------------------------------------- pitfalls


def test_pitfall_counting_only_guessed_canaries_over_claims():
    """m must be every canary: passing m = k (the guessed ones) over-claims on a correct mechanism."""
    eps, m, k = 1.0, 20000, 400
    counts = simulate_ideal_counts(m, k, gdp_mu(eps, DELTA), range(30))
    wrong = [gdp_one_run_epsilon_lower_bound(k, k, int(c), DELTA, method="recursion") for c in counts]
    right = [gdp_one_run_epsilon_lower_bound(m, k, int(c), DELTA, method="recursion") for c in counts]
    assert sum(w > eps for w in wrong) > 10  # violates the 95 % guarantee badly
    assert sum(r > eps for r in right) <= 3


def test_pitfall_choosing_the_number_of_guesses_after_the_scores_inflates():
    """Under the null (no leakage, ε = 0), a k fixed in advance over-claims ≤ ~5 % of the time;
    the best k chosen after seeing the result over-claims several times as often."""
    ks = (10, 20, 40, 80, 160, 320, 640, 1000)
    fixed = best = 0
    n = 200
    for s in range(n):
        scores, bits = white_box_scores(1000, 0.0, np.random.default_rng(1000 + s))
        vals = [gdp_one_run_epsilon_lower_bound(1000, k, guess_counts(scores, bits, k), DELTA, method="recursion") for k in ks]
        fixed += vals[3] > 0
        best += max(vals) > 0
    assert fixed <= 0.05 * n + 3 * math.sqrt(0.05 * 0.95 * n)
    assert best >= 3 * max(fixed, 3)


# --------------------------------------------------------------------------- behaviour


def test_monotone_in_correct_guesses_and_zero_without_evidence():
    m, k = 5000, 500
    assert gdp_one_run_epsilon_lower_bound(m, k, 0) == 0.0
    assert gdp_one_run_epsilon_lower_bound(m, k, 250) == 0.0  # chance level
    vals = [gdp_one_run_epsilon_lower_bound(m, k, c, method="recursion") for c in range(300, 501, 25)]
    assert all(b >= a - 1e-9 for a, b in zip(vals, vals[1:]))
    assert vals[-1] > vals[0] > 0


def test_auto_is_at_least_the_recursion_and_reproduces_it():
    # Mahloujifar et al.'s recursion, faithful: ~0.61–0.64 of ε=1/3 at m = 20,000, k = 2,000
    m, k = 20000, 2000
    rec = gdp_one_run_epsilon_lower_bound(m, k, 1267, DELTA, method="recursion")
    assert rec == pytest.approx(0.614, abs=0.01)
    assert fdp_recursion_rejects(m, k, 1267, gdp_mu(0.6, DELTA))
    assert not fdp_recursion_rejects(m, k, 1267, gdp_mu(0.63, DELTA))
    assert gdp_one_run_epsilon_lower_bound(m, k, 1267, DELTA) >= rec


def test_public_export_and_input_errors():
    assert exported is gdp_one_run_epsilon_lower_bound
    with pytest.raises(ConfigError):
        gdp_one_run_epsilon_lower_bound(100, 200, 10)
    with pytest.raises(ConfigError):
        gdp_one_run_epsilon_lower_bound(100, 20, 30)
    with pytest.raises(ConfigError):
        gdp_one_run_epsilon_lower_bound(100, 20, 10, delta=0.0)
    with pytest.raises(ConfigError):
        gdp_one_run_epsilon_lower_bound(100, 20, 10, confidence=1.0)
    with pytest.raises(ConfigError):
        gdp_one_run_epsilon_lower_bound(100, 20, 10, method="max_over_k")


def test_recursion_is_fast():
    t = time.perf_counter()
    gdp_one_run_mu_lower_bound(20000, 2000, 1646, method="recursion")
    assert time.perf_counter() - t < 1.0


def test_ideal_tightness_reports_a_median_ratio():
    med, ratios, counts = ideal_tightness(
        lambda m, k, c: gdp_one_run_epsilon_lower_bound(m, k, c, DELTA, method="recursion"), 3.0, 1000, 100, seeds=5, return_all=True
    )
    assert med == pytest.approx(float(np.median(ratios)))
    assert 0.2 < med < 1.0 and len(counts) == 5


# --------------------------------------------------------------------------- subsampled Gaussian


def test_subsampled_profile_with_full_batch_is_gdp():
    eps = np.array([0.0, 0.5, 1.0, 2.0])
    rem, add = subsampled_gaussian_profile(9.86, 1.0, 50, eps)
    exact = gdp_delta(eps, math.sqrt(50) / 9.86)
    assert np.all(rem >= exact) and np.all(add >= exact)  # upper bounds
    assert np.all(rem <= exact * 1.1 + 1e-9)


@pytest.mark.slow
def test_subsampled_bound_with_full_batch_matches_gdp_and_is_valid():
    sigma, steps, m, k = 9.86, 50, 5000, 500
    mu = math.sqrt(steps) / sigma
    counts = simulate_ideal_counts(m, k, mu, range(3))
    for c in counts:
        g = gdp_one_run_epsilon_lower_bound(m, k, int(c), DELTA)
        s = subsampled_gaussian_one_run_epsilon_lower_bound(m, k, int(c), 1.0, steps, DELTA)
        assert s <= g + 1e-6  # its ε is prv-accountant's lower bound and its curve is padded up
        assert s >= 0.85 * g
