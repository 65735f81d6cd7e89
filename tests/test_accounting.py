"""DP accountants and noise calibration: privtangent.dp.accounting, .calibration, .accountants."""

from __future__ import annotations

import json
import math
import time
import warnings

import pytest

import privtangent.dp as dp
from privtangent.dp.accountants import (
    available,
    gdp_delta,
    gdp_epsilon,
    gdp_mu,
    get_accountant,
    prv_bounds,
)
from privtangent.dp.accountants import prv as prv_module
from privtangent.dp.accounting import PrivacyWarning, epsilon, epsilon_report
from privtangent.dp.calibration import _search, calibrate_noise
from privtangent.errors import ConfigError

DELTA = 1e-5
# Reference values: (σ, q, T) -> ε at δ = 1e-5, from Google's dp_accounting (PLD) / PRV estimate
REFERENCES = [
    (1.5, 0.04, 2250, 6.77),
    (1.1, 256 / 60000, 14062, 2.38),
    (1.0, 0.01, 1000, 1.83),
]


# --- reported ε --------------------------------------------------------------------------------


@pytest.mark.parametrize("sigma,q,steps,ref", REFERENCES)
def test_prv_matches_reference_and_is_the_upper_bound(sigma, q, steps, ref):
    eps = epsilon(sigma, q, steps, DELTA)
    assert abs(eps / ref - 1) < 0.01, eps
    lower, estimate, upper = prv_bounds(sigma, q, steps, DELTA)
    assert eps == upper  # the conservative end of the triple is what gets reported
    assert lower < estimate < upper
    assert abs(estimate - ref) <= 0.005  # the reference is the estimate, rounded
    assert upper - estimate < 0.005 * estimate  # the small eps_error: ≤ 0.5 % above


@pytest.mark.parametrize("sigma,q,steps,ref", REFERENCES)
def test_rdp_cross_check_is_8_to_15_percent_higher(sigma, q, steps, ref):
    ratio = epsilon(sigma, q, steps, DELTA, accountant="rdp") / epsilon(sigma, q, steps, DELTA)
    assert 1.07 <= ratio <= 1.16, ratio


def test_prv_approximation_used_by_the_search_tracks_the_bound():
    sigma, q, steps, _ = REFERENCES[2]
    approx = get_accountant("prv").approx_epsilon(sigma, q, steps, DELTA)
    assert abs(approx / epsilon(sigma, q, steps, DELTA) - 1) < 1e-3


def test_prv_domain_gets_the_fft_friendly_size():
    composer, _ = prv_module._composer(1.0, 0.01, 1000, DELTA, coarsening=1.0)
    size = len(composer.composer.self_composers[0].domain)
    assert size == prv_module._fast_size(size)
    assert size <= prv_module.MAX_DOMAIN
    assert prv_module._fast_size(1000) == 1024 and prv_module._fast_size(1025) == 1152


def test_epsilon_is_monotone():
    q, steps = 0.01, 100
    eps = [epsilon(s, q, steps, DELTA) for s in (0.7, 1.0, 2.0)]
    assert eps[0] > eps[1] > eps[2] > 0
    assert epsilon(1.0, q, 200, DELTA) > eps[1]  # more steps
    assert epsilon(1.0, 0.02, steps, DELTA) > eps[1]  # larger sampling rate
    assert epsilon(1.0, q, steps, 1e-6) > eps[1]  # smaller δ


def test_huge_epsilon_is_inf_and_never_raises():
    # σ = 0.2, q = 0.04, T = 2250: prv-accountant 0.2.0 itself raises (ε is in the thousands) ...
    with pytest.raises(RuntimeError, match="Discrete mean differs"):
        prv_module._composer(0.2, 0.04, 2250, DELTA, coarsening=1.0)
    # ... which the accountant reports as ε = ∞
    assert epsilon(0.2, 0.04, 2250, DELTA) == math.inf
    # large but computable ε stays finite, below the (looser) RDP bound, and decreasing in σ
    big = [epsilon(s, 0.04, 2250, DELTA) for s in (0.5, 0.7)]
    assert 20 < big[1] < big[0] < epsilon(0.5, 0.04, 2250, DELTA, accountant="rdp")


def test_prv_failure_inside_the_package_is_inf(monkeypatch):
    def boom(self, *args, **kwargs):
        raise RuntimeError("Discrete mean differs from continuous mean significantly.")

    monkeypatch.setattr(prv_module._PRVComposer, "compute_epsilon", boom)
    prv_module.prv_bounds.cache_clear()
    try:
        assert epsilon(2.0, 0.01, 100, DELTA) == math.inf
    finally:
        prv_module.prv_bounds.cache_clear()


# --- Gaussian DP (q = 1) -----------------------------------------------------------------------


def test_gdp_closed_form_and_inversion():
    mu = 1.0
    assert gdp_delta(0.0, mu) == pytest.approx(0.3829249225, rel=1e-8)  # 2Φ(1/2) − 1
    assert gdp_epsilon(mu, 0.5) == 0.0  # δ above δ(0): ε = 0
    eps = gdp_epsilon(mu, DELTA)
    assert gdp_delta(eps, mu) <= DELTA
    assert gdp_delta(eps, mu) == pytest.approx(DELTA, rel=1e-8)
    assert gdp_delta(eps - 1e-6, mu) > DELTA
    assert gdp_mu(eps, DELTA) == pytest.approx(mu, rel=1e-8)


def test_full_batch_uses_exact_gdp_and_agrees_with_the_prv_package():
    from prv_accountant import GaussianMechanism, PRVAccountant

    sigma, steps = 9.86, 50  # σ = 9.86 gives ε = 3 for 50 steps of full-batch DP-GD (PRV; measured in the trial runs)
    exact = epsilon(sigma, 1.0, steps, DELTA)
    assert exact == epsilon(sigma, 1.0, steps, DELTA, accountant="gdp")
    assert exact == gdp_epsilon(math.sqrt(steps) / sigma, DELTA)
    assert get_accountant("prv", 1.0).name == "gdp"
    assert 2.95 < exact <= 3.0
    acc = PRVAccountant(
        prvs=[GaussianMechanism(noise_multiplier=sigma)],
        max_self_compositions=[steps],
        eps_error=0.01,
        delta_error=DELTA / 1000,
    )
    lower, estimate, upper = acc.compute_epsilon(delta=DELTA, num_self_compositions=[steps])
    assert lower <= exact <= upper
    assert exact == pytest.approx(estimate, abs=2e-3)


def test_gdp_refuses_subsampling():
    with pytest.raises(ConfigError, match="full-batch"):
        epsilon(1.0, 0.5, 10, DELTA, accountant="gdp")
    with pytest.raises(ConfigError, match="full-batch"):
        calibrate_noise(3.0, DELTA, 0.5, 10, accountant="gdp")


# --- calibration -------------------------------------------------------------------------------


def test_calibration_is_fast_never_overshoots_and_is_tight():
    _, q, steps, _ = REFERENCES[0]
    targets = (1.0, 3.0, 8.0)
    prv_module.prv_bounds.cache_clear()
    prv_module.prv_upper_approx.cache_clear()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    sigmas = [calibrate_noise(t, DELTA, q, steps) for t in targets]
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    print(f"calibration ε ∈ {targets}: {cpu:.2f} s CPU, {wall:.2f} s wall -> σ = {sigmas}")
    assert cpu <= 5.0, f"calibration of ε ∈ {targets} took {cpu:.2f} s CPU ({wall:.2f} s wall)"
    assert sigmas[0] > sigmas[1] > sigmas[2]
    for target, sigma in zip(targets, sigmas):
        assert epsilon(sigma, q, steps, DELTA) <= target  # never overshoots
        assert epsilon(sigma * 0.99, q, steps, DELTA) > target  # within 1 % of the tightest


def test_calibration_full_batch_is_exact():
    steps = 50
    sigma = calibrate_noise(3.0, DELTA, 1.0, steps)
    assert epsilon(sigma, 1.0, steps, DELTA) <= 3.0
    assert sigma == pytest.approx(math.sqrt(steps) / gdp_mu(3.0, DELTA), rel=2e-4)
    assert sigma == pytest.approx(9.86, rel=0.01)  # the σ of ε = 3, 50 steps of DP-GD (PRV)


def test_calibration_with_rdp_never_overshoots_and_needs_more_noise():
    q, steps = 0.01, 1000
    sigma_rdp = calibrate_noise(3.0, DELTA, q, steps, accountant="rdp")
    assert epsilon(sigma_rdp, q, steps, DELTA, accountant="rdp") <= 3.0
    assert epsilon(sigma_rdp * 0.99, q, steps, DELTA, accountant="rdp") > 3.0
    sigma_prv = calibrate_noise(3.0, DELTA, q, steps)
    assert sigma_rdp > sigma_prv * 1.02


def test_calibration_recovers_when_the_cheap_estimate_misleads(monkeypatch):
    q, steps, target = 0.01, 50, 1.0
    real = prv_module.PRVAccountant.approx_epsilon

    def optimistic(self, *args):
        return 0.97 * real(self, *args)  # 3 % low: the first answer overshoots

    bound_calls = []
    real_bound = prv_module.PRVAccountant.epsilon

    def counted(self, *args):
        bound_calls.append(args[0])
        return real_bound(self, *args)

    monkeypatch.setattr(prv_module.PRVAccountant, "approx_epsilon", optimistic)
    monkeypatch.setattr(prv_module.PRVAccountant, "epsilon", counted)
    sigma = calibrate_noise(target, DELTA, q, steps)
    assert len(bound_calls) >= 2  # the first answer was rejected and the search went on
    assert epsilon(sigma, q, steps, DELTA) <= target
    assert epsilon(sigma * 0.99, q, steps, DELTA) > target


def test_search_steps_over_infinite_epsilon():
    calls = []

    def f(sigma):  # ε = ∞ (an accountant failure) below σ = 2, then 10/σ
        calls.append(sigma)
        return math.inf if sigma < 2.0 else 10.0 / sigma

    lo, hi = _search(f, 4.0, 0.01, start=0.1)
    assert f(hi) <= 4.0 < f(lo) and hi / lo <= 1.01
    assert hi == pytest.approx(2.5, rel=0.01)
    assert len(calls) < 30


def test_unreachable_target_is_a_config_error():
    with pytest.raises(ConfigError, match="out of reach"):
        calibrate_noise(1e-9, DELTA, 1.0, 10)


# --- input validation and warnings -------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"noise_multiplier": 0.0}, "noise_multiplier"),
        ({"noise_multiplier": -1.0}, "noise_multiplier"),
        ({"noise_multiplier": math.nan}, "noise_multiplier"),
        ({"sample_rate": 0.0}, "sample_rate"),
        ({"sample_rate": 1.5}, "sample_rate"),
        ({"steps": 0}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"steps": True}, "steps"),
        ({"delta": 0.0}, "delta"),
        ({"delta": 1.0}, "delta"),
        ({"delta": "1e-5"}, "delta"),
        ({"accountant": "moments"}, "accountant"),
    ],
)
def test_epsilon_rejects_bad_input(kwargs, match):
    args = {"noise_multiplier": 1.0, "sample_rate": 1.0, "steps": 10, "delta": DELTA} | kwargs
    with pytest.raises(ConfigError, match=match):
        epsilon(**args)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"target_epsilon": 0.0}, "target_epsilon"),
        ({"target_epsilon": -1.0}, "target_epsilon"),
        ({"target_epsilon": math.inf}, "target_epsilon"),
        ({"delta": 1.5}, "delta"),
        ({"sample_rate": -0.1}, "sample_rate"),
        ({"steps": 0}, "steps"),
        ({"dataset_size": 0}, "dataset_size"),
    ],
)
def test_calibrate_rejects_bad_input(kwargs, match):
    args = {"target_epsilon": 3.0, "delta": DELTA, "sample_rate": 1.0, "steps": 10} | kwargs
    with pytest.raises(ConfigError, match=match):
        calibrate_noise(**args)


def test_integral_float_steps_are_accepted():
    assert epsilon(5.0, 1.0, 10.0, DELTA) == epsilon(5.0, 1.0, 10, DELTA)


def test_delta_not_much_below_one_over_n_warns():
    with pytest.warns(PrivacyWarning, match="1/N"):
        epsilon(5.0, 1.0, 10, 1e-3, dataset_size=1000)
    with pytest.warns(PrivacyWarning, match="1/N"):
        calibrate_noise(3.0, 1e-2, 1.0, 10, dataset_size=500)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PrivacyWarning)
        epsilon(5.0, 1.0, 10, DELTA, dataset_size=60000)  # δ ≪ 1/N: silent


# --- report, registry, public names ------------------------------------------------------------


def test_epsilon_report_subsampled():
    sigma, q, steps, _ = REFERENCES[2]
    report = epsilon_report(sigma, q, steps, DELTA)
    assert report["accountant"] == "prv" and "gdp" not in report
    assert report["epsilon"] == report["prv"] == epsilon(sigma, q, steps, DELTA)
    assert report["rdp"] == epsilon(sigma, q, steps, DELTA, accountant="rdp") > report["prv"]
    assert report["prv_bounds"][2] == report["prv"]
    assert {"prv", "rdp"} <= set(report["methods"])
    assert "Gopi" in report["methods"]["prv"] and "Mironov" in report["methods"]["rdp"]
    assert json.loads(json.dumps(report))["steps"] == steps


def test_epsilon_report_full_batch_has_exact_gdp():
    report = epsilon_report(9.86, 1.0, 50, DELTA)
    assert report["accountant"] == "gdp"
    assert report["epsilon"] == report["gdp"] == report["prv"]
    assert report["rdp"] > report["gdp"]
    assert "Dong" in report["methods"]["gdp"]


def test_registry_and_public_names():
    assert {"prv", "rdp", "gdp"} <= set(available())
    assert get_accountant("prv", 0.5).name == "prv"
    assert get_accountant("rdp", 1.0).name == "rdp"
    with pytest.raises(ConfigError, match="unknown accountant"):
        get_accountant("nope")
    assert dp.epsilon is epsilon
    assert dp.calibrate_noise is calibrate_noise
