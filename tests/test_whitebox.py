"""The white-box gradient-canary audit: canaries, scores, bounds, pitfalls, controls.

Fast by design: the mechanism in isolation (``DPOptimizer`` on bare parameters, no model),
a tiny ViT for the replay, and the embedded default for one correct run and one broken-DP
control. The other controls are ``@pytest.mark.slow``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from audits.privacy import canary_runs, game
from audits.privacy import whitebox as wb
from audits.privacy.canaries import CanarySchedule, ParameterLayout, make_canaries
from audits.privacy.canary_runs import ideal_scores, mechanism_run
from audits.privacy.claims import Claim
from audits.privacy.game import bound_rows
from audits.privacy.one_run import one_run_epsilon_lower_bound, one_run_guesses
from privtangent.dp.analysis.gaussian_dp import gdp_epsilon, gdp_mu
from privtangent.dp.clipping import clip_and_sum
from privtangent.dp.noise import mechanism_randomness
from privtangent.dp.optimizer import DPOptimizer
from privtangent.errors import ConfigError
from tests.conftest import make_tiny_vit

T, DELTA = 50, 1e-5


def full_batch_claim(eps: float, steps: int = T) -> Claim:
    """The claim of a correct full-batch DP-GD run calibrated exactly (μ-GDP) for ε."""
    sigma = math.sqrt(steps) / gdp_mu(eps, DELTA)
    return Claim(gdp_epsilon(math.sqrt(steps) / sigma, DELTA), DELTA, sigma, 1.0, 1.0, steps, "gdp", eps)


# --------------------------------------------------------------------------------------
# canaries and the optimizer hook
# --------------------------------------------------------------------------------------
def _params():
    return {"a": torch.zeros(3, 4), "b": torch.zeros(5), "c": torch.zeros(2, 2)}


def test_dirac_batch_is_the_dense_per_sample_gradients_clipped_by_the_same_rule():
    params = _params()
    canaries = make_canaries(params, 12, norm=3.0, seed=4)
    batch = canaries.batch(np.ones(12, dtype=bool))
    dense = {n: torch.zeros(12, *p.shape) for n, p in params.items()}
    layout = ParameterLayout.of(params)
    for j, c in enumerate(canaries.coords):
        (name, _, local), = layout.locate(np.array([c]))
        dense[name][j].view(-1)[int(local[0])] = 3.0
    clipped, norms = clip_and_sum(dense, 1.0)
    torch.testing.assert_close(batch.norms(), norms)
    got = batch.weighted_sum(torch.full((12,), 1.0 / 3.0))
    for n in params:
        torch.testing.assert_close(got.get(n, torch.zeros_like(params[n])), clipped[n])


def test_canaries_are_distinct_reproducible_and_need_enough_coordinates():
    params = _params()
    a, b = make_canaries(params, 20, norm=2.0, seed=1), make_canaries(params, 20, norm=2.0, seed=1)
    assert len(set(a.coords.tolist())) == 20 and np.array_equal(a.coords, b.coords)
    assert np.array_equal(a.included, b.included)
    assert not np.array_equal(make_canaries(params, 20, norm=2.0, seed=2).coords, a.coords)
    big = make_canaries({"w": torch.zeros(100_000)}, 20_000, norm=2.0, seed=0)
    assert abs(big.included.mean() - 0.5) < 0.02
    with pytest.raises(ConfigError):
        make_canaries(params, 22, norm=2.0)
    with pytest.raises(ConfigError):
        make_canaries(params, 5, norm=0.0)


@pytest.mark.parametrize("clip,expected", [(1.0, 1.0), (1e6, 10.0)])
def test_the_optimizer_clips_canaries_like_records(clip, expected):
    """σ = 0: an included canary adds exactly C·e_c (norm 10 > C), or its full 10·e_c without clipping."""
    holder = torch.nn.Module()
    holder.w = torch.nn.Parameter(torch.zeros(50))
    canaries = make_canaries({"w": holder.w}, 30, norm=10.0, seed=3)
    seen = []
    dp = DPOptimizer(holder, torch.optim.SGD([holder.w], lr=0.0), lambda f, y: f.sum(), noise_multiplier=0.0,
                     max_grad_norm=clip, expected_batch_size=4.0, generator=mechanism_randomness(0).generator,
                     observers=[seen.append])
    dp.step(torch.zeros(0, 1), torch.zeros(0, dtype=torch.long), extra_per_sample_grads=canaries.batch())
    total = seen[0].grad["w"] * 4.0
    want = torch.zeros(50)
    want[torch.from_numpy(canaries.coords[canaries.included])] = expected
    torch.testing.assert_close(total, want)
    assert seen[0].num_canaries == int(canaries.included.sum())


def test_poisson_schedule_samples_included_canaries_at_rate_q():
    canaries = make_canaries({"w": torch.zeros(4000)}, 2000, norm=2.0, seed=0)
    schedule = CanarySchedule(canaries, 0.2, seed=0)
    counts = np.zeros(2000)
    for t in range(1, 101):
        batch = schedule(t)
        counts[batch.mask] += 1
    assert counts[~canaries.included].sum() == 0
    assert abs(counts[canaries.included].mean() / 100 - 0.2) < 0.01


# --------------------------------------------------------------------------------------
# the mechanism in isolation: score distribution and validity across seeds
# --------------------------------------------------------------------------------------
def test_full_batch_scores_follow_n_mu_1_and_n_0_1():
    claim = full_batch_claim(3.0)
    run = mechanism_run(claim, num_canaries=5000, seed=11, noise_seed=12)
    bits, mu = run.canaries.included, math.sqrt(T) / claim.noise_multiplier
    assert claim.mu == pytest.approx(mu)
    assert stats.kstest(run.scores[bits] - mu, "norm").pvalue > 1e-3
    assert stats.kstest(run.scores[~bits], "norm").pvalue > 1e-3
    assert abs(run.scores[bits].mean() - mu) < 4 / math.sqrt(bits.sum())
    # the same test rejects a mechanism whose noise is half what the claim says
    broken = mechanism_run(claim, num_canaries=5000, seed=11, noise_seed=12,
                           run_noise_multiplier=claim.noise_multiplier / 2)
    assert stats.kstest(broken.scores[~broken.canaries.included], "norm").pvalue < 1e-6


def test_canaries_do_not_interact():
    """Same noise, complementary secret bits: every score moves by exactly ±μ, its own bit's effect
    (orthonormal directions, no cross-terms between canaries)."""
    claim = full_batch_claim(3.0)
    a = mechanism_run(claim, num_canaries=500, num_coordinates=1000, seed=5, noise_seed=6)
    bits = a.canaries.included
    b = mechanism_run(claim, num_canaries=500, num_coordinates=1000, seed=5, noise_seed=6, included=~bits)
    np.testing.assert_allclose(a.scores - b.scores, np.where(bits, claim.mu, -claim.mu), atol=1e-4)


def _exceedances(eps, seeds=50, run_noise=1.0, m=5000, fdp_method="recursion"):
    """How many of ``seeds`` mechanism runs give ε_lb > claimed ε, per bound (the product's guess rule)."""
    claim = full_batch_claim(eps)
    r = game.choose_num_guesses(m, claim)
    counts = {}
    for s in range(seeds):
        run = mechanism_run(claim, num_canaries=m, seed=1000 + s, noise_seed=2000 + s,
                            run_noise_multiplier=claim.noise_multiplier * run_noise)
        for row in bound_rows(run, num_guesses=r, ideal_simulations=0, fdp_method=fdp_method):
            counts[row["method"]] = counts.get(row["method"], 0) + (row["epsilon_lb"] > claim.epsilon)
    return counts


@pytest.mark.parametrize("eps", [1.0, 3.0, 8.0])
def test_a_correct_mechanism_over_claims_in_at_most_5_of_50_seeds(eps):
    counts = _exceedances(eps)
    assert set(counts) == set(game.METHODS[k] for k in ["binomial", "fdp"])
    assert all(c <= 5 for c in counts.values()), counts


def test_the_seed_sweep_detects_a_mechanism_with_half_the_noise():
    """The harness above is not vacuous: noise std × ½ at ε = 3 over-claims in nearly every seed."""
    counts = _exceedances(3.0, seeds=10, run_noise=0.5)
    assert max(counts.values()) >= 9, counts


@pytest.mark.slow
def test_a_correct_mechanism_over_claims_rarely_with_the_certified_fdp_bound():
    """The product's f-DP method ("auto": certified LP + recursion + binomial), 50 seeds at ε = 3."""
    counts = _exceedances(3.0, fdp_method="auto")
    assert all(c <= 5 for c in counts.values()), counts


def test_fdp_auto_bound_dominates_the_binomial_row_so_the_verdict_needs_no_correction():
    """``per_bound_confidence`` runs both bounds at the full confidence for full batch because the f-DP
    bound (auto) is never below the binomial bound at the same δ: check that on the game's counts."""
    claim = full_batch_claim(3.0)
    bounds = game.bounds_for(claim, "auto")
    assert game.per_bound_confidence(claim, list(bounds), 0.95) == 0.95
    assert game.per_bound_confidence(claim, list(bounds), 0.95, "recursion") == pytest.approx(0.975)
    for v in (300, 460):
        assert bounds["fdp"](2000, 500, v, 0.95) >= bounds["binomial"](2000, 500, v, 0.95) - 1e-9


def test_poisson_scores_match_the_ideal_subsampled_mechanism(monkeypatch):
    # the subsampled f-DP bound (PRV-based) is slow: it has its own test below; here the binomial bound alone
    monkeypatch.setattr(game, "bounds_for", lambda claim, method="auto": {"binomial": game.binomial_bound(claim)})
    q, steps = 0.2, 40
    sigma = 1.2
    claim = Claim(5.0, DELTA, sigma, 1.0, q, steps, "prv")  # ε is irrelevant for the distribution check
    run = mechanism_run(claim, num_canaries=3000, seed=3, noise_seed=4)
    ideal = ideal_scores(run.canaries.included, claim, np.random.default_rng(9))
    bits = run.canaries.included
    assert stats.ks_2samp(run.scores[bits], ideal[bits]).pvalue > 1e-3
    assert stats.ks_2samp(run.scores[~bits], ideal[~bits]).pvalue > 1e-3
    assert run.scores[bits].mean() > run.scores[~bits].mean() + 1.0
    rows = bound_rows(run, num_guesses=300, ideal_simulations=3)
    assert rows and all(row["epsilon_lb"] <= claim.epsilon for row in rows)


@pytest.mark.slow
def test_poisson_rows_include_the_subsampled_gaussian_fdp_bound():
    from privtangent.dp.accounting import epsilon

    q, steps, sigma = 0.2, 40, 1.2
    claim = Claim(epsilon(sigma, q, steps, DELTA), DELTA, sigma, 1.0, q, steps, "prv")
    run = mechanism_run(claim, num_canaries=3000, seed=3, noise_seed=4)
    rows = bound_rows(run, num_guesses=300, ideal_simulations=3, fdp_method="recursion")
    assert [r["method"] for r in rows] == [game.METHODS["binomial"], game.METHODS["fdp"]]
    assert all(r["status"] == "PASS" and r["confidence"] == pytest.approx(0.975) for r in rows)


# --------------------------------------------------------------------------------------
# pitfalls: the canary set is all m canaries; the number of guesses is fixed in advance
# --------------------------------------------------------------------------------------
def test_bounds_see_all_m_canaries_and_the_fixed_number_of_guesses(monkeypatch):
    seen = []

    def spy(claim):
        return {"binomial": lambda m, r, v, conf: seen.append((m, r, v)) or 0.0}

    monkeypatch.setattr(game, "bounds_for", lambda claim, method="auto": spy(claim))
    run = mechanism_run(full_batch_claim(3.0), num_canaries=1000, seed=1, noise_seed=1)
    rows = bound_rows(run, num_guesses=100, ideal_simulations=2)
    m, r, v = seen[0]
    assert (m, r) == (1000, 100)
    assert (r, v) == one_run_guesses(run.scores, run.canaries.included, 100)
    assert rows[0]["num_canaries"] == 1000 and rows[0]["num_guesses"] == 100
    with pytest.raises(ConfigError):
        bound_rows(run, num_guesses=1001)


def test_pitfall_treating_the_guessed_canaries_as_the_canary_set_over_claims():
    """The top/bottom 50 of 2,000 canaries of a correct ε = 3 mechanism: as a game of m = 2,000 the
    f-DP bound rarely exceeds ε; as a game of m = 100 (only the guessed ones) it often does."""
    from audits.privacy.fdp import gdp_one_run_epsilon_lower_bound

    claim, seeds = full_batch_claim(3.0), 30
    right = wrong = 0
    for s in range(seeds):
        run = mechanism_run(claim, num_canaries=2000, seed=s, noise_seed=100 + s)
        r, v = one_run_guesses(run.scores, run.canaries.included, 100)
        right += gdp_one_run_epsilon_lower_bound(2000, r, v, delta=DELTA, method="recursion") > claim.epsilon
        wrong += gdp_one_run_epsilon_lower_bound(r, r, v, delta=DELTA, method="recursion") > claim.epsilon
    assert right <= 3 and wrong >= 6, (right, wrong)


def test_pitfall_choosing_the_number_of_guesses_after_the_scores_inflates_the_bound():
    """An exactly ε-DP game (randomized response on every guess): r fixed in advance rejects
    "ε-DP" at most ~5% of the time; the maximum of the bound over r rejects it far more often."""
    eps, trials, grid = 1.0, 100, range(20, 201, 20)
    rng = np.random.default_rng(0)
    p = math.exp(eps) / (1 + math.exp(eps))
    fixed = searched = 0
    for _ in range(trials):
        correct = np.cumsum(rng.random(200) < p)  # guesses in a score order that carries no information
        fixed += one_run_epsilon_lower_bound(200, 100, int(correct[99])) > eps
        searched += max(one_run_epsilon_lower_bound(200, r, int(correct[r - 1])) for r in grid) > eps
    assert fixed <= 0.05 * trials + 3 * math.sqrt(0.05 * trials)
    assert searched >= 2 * max(fixed, 4)


def test_the_number_of_guesses_is_a_rule_of_m_and_the_claim_with_enough_power():
    assert game.default_num_guesses(5000) == 500
    assert game.default_num_guesses(3) == 2 and game.default_num_guesses(1) == 1
    for eps in (1.0, 3.0, 8.0):
        claim = full_batch_claim(eps)
        r = game.choose_num_guesses(20_000, claim)
        assert r == game.choose_num_guesses(20_000, claim)  # deterministic: no score, no bit involved
        bound = game.fdp_bound(claim, "recursion")
        assert bound(20_000, r, r, 0.95) >= game.MIN_POWER_RATIO * eps  # a broken run can FAIL
    # 500 guesses out of 20,000 cannot refute ε = 8 with the binomial bound, however good the attack
    assert one_run_epsilon_lower_bound(20_000, 500, 500, delta=DELTA) < 8


# --------------------------------------------------------------------------------------
# a real model: the auditor's replay and the subtraction of the data's clipped sum
# --------------------------------------------------------------------------------------
def _tiny_config(eps=3.0):
    from privtangent.dp.config import DPConfig

    return DPConfig(reset=True, target_epsilon=eps, epochs=12, lr=0.05, physical_batch_size=16)


def test_replay_is_exact_and_the_data_do_not_change_the_scores(near_small):
    train, _ = near_small
    base = make_tiny_vit(depth=2)
    runs = {limit: canary_runs.canary_run(base, train, _tiny_config(), num_canaries=400, seed=0, data_limit=limit, noise_seed=7)
            for limit in (4, 40)}
    for run in runs.values():
        assert run.details["replay_max_abs_diff"] <= 1e-6 and "replay_warning" not in run.details
        assert run.steps == 12
    np.testing.assert_allclose(runs[4].scores, runs[40].scores, atol=1e-3)
    # without the subtraction the data's gradient enters the scores (a weaker, still valid, audit)
    ignored = canary_runs.canary_run(base, train, _tiny_config(), num_canaries=400, seed=0, data_limit=40, noise_seed=7,
                            data_gradient="ignore")
    assert np.abs(ignored.scores - runs[40].scores).max() > 1e-2


# --------------------------------------------------------------------------------------
# the embedded default: the correct run passes, a broken one fails
# --------------------------------------------------------------------------------------
REQUIRED_ROW = {"method", "epsilon_claimed", "num_canaries", "num_guesses", "num_correct", "epsilon_lb", "tightness",
                "ideal_tightness", "status", "seconds"}


def _audit(base, train, bug=None, eps=3.0):
    from privtangent.dp.config import DPConfig

    return wb.run_whitebox_audit(base, train, DPConfig(reset=True), epsilons=[eps], seed=0, bug=bug, data_limit=32,
                                 noise_seed=3)


def test_embedded_default_correct_run_passes_and_noise_half_fails(base_model, near_small):
    from audits.report_file import round_numbers

    train, _ = near_small
    good = _audit(base_model, train)
    assert good.key == "canary_audit" and good.roc is None
    body = good.body
    assert "μ-GDP" in body["hypothesis"] and "does not prove" in body["hypothesis"]
    assert "does not" in body["scope"]
    assert all(REQUIRED_ROW <= set(row) for row in body["rows"])
    assert [c.status for c in good.checks] == ["PASS"]
    assert all(row["status"] == "PASS" and 0 <= row["tightness"] < 1 for row in body["rows"])
    assert all({"id", "section", "title", "status", "reason"} <= set(c.to_dict()) for c in good.checks)
    round_numbers(good.body)  # JSON-ready
    bad = _audit(base_model, train, bug="noise-half")
    assert [c.status for c in bad.checks] == ["FAIL"]
    assert max(row["epsilon_lb"] for row in bad.body["rows"]) > bad.body["rows"][0]["epsilon_claimed"]


@pytest.mark.slow
@pytest.mark.parametrize("bug", ["clip-off", "wrong-steps", "wrong-sample-rate", "noise-half"])
def test_embedded_default_broken_dp_controls_fail(base_model, near_small, bug):
    train, _ = near_small
    result = _audit(base_model, train, bug=bug)
    assert [c.status for c in result.checks] == ["FAIL"], result.checks


@pytest.mark.slow
def test_cli_white_box_exit_status(tmp_path):
    from audits.cli import main

    ok = main(["privacy", "--white-box", "--epsilons", "3", "--wb-data-limit", "16", "--out", str(tmp_path / "ok"),
               "--quiet"])
    bad = main(["privacy", "--white-box", "--epsilons", "3", "--wb-data-limit", "16", "--wb-bug", "noise-half",
                "--out", str(tmp_path / "bad"), "--quiet"])
    assert (ok, bad) == (0, 1)
    assert (tmp_path / "ok" / "canary_audit.json").is_file()
