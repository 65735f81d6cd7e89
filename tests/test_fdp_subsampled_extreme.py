"""The subsampled-Gaussian f-DP bound survives prv-accountant failures at extreme leakage.

prv-accountant 0.2.0 raises "Discrete mean differs from continuous mean significantly" for
very leaky hypotheses. The bound treats such a hypothesis as not rejected (valid: the
rejected set only shrinks) instead of crashing, so a wrong-sample-rate claim still FAILs.
"""

from __future__ import annotations

import pytest

from audits.privacy import one_run_epsilon_lower_bound
from audits.privacy.fdp import subsampled_gaussian_one_run_epsilon_lower_bound


def test_extreme_observation_gives_a_finite_bound_not_a_crash():
    # nearly all of 2,000 guesses right: the search probes σ far below what prv can compose
    eps = subsampled_gaussian_one_run_epsilon_lower_bound(20000, 2000, 1995, sample_rate=0.1, steps=50)
    assert 8.0 < eps < 50.0  # refutes a claim of ε = 8 (the wrong-sample-rate control), finitely
    assert eps >= one_run_epsilon_lower_bound(20000, 2000, 1995, delta=1e-5) - 1e-6


def test_prv_failure_is_treated_as_not_rejected(monkeypatch):
    import audits.privacy.fdp as fdp

    real = fdp.subsampled_gaussian_profile

    def failing(sigma, q, steps, eps):
        if sigma < 1.0:  # pretend prv cannot evaluate any hypothesis leakier than σ = 1
            raise RuntimeError("Discrete mean differs from continuous mean significantly")
        return real(sigma, q, steps, eps)

    monkeypatch.setattr(fdp, "subsampled_gaussian_profile", failing)
    capped = fdp.subsampled_gaussian_one_run_epsilon_lower_bound(2000, 200, 200, sample_rate=0.1, steps=50,
                                                                   method="recursion")
    monkeypatch.setattr(fdp, "subsampled_gaussian_profile", real)
    full = fdp.subsampled_gaussian_one_run_epsilon_lower_bound(2000, 200, 200, sample_rate=0.1, steps=50,
                                                                 method="recursion")
    assert 0.0 <= capped <= full + 1e-9  # failures can only lower the bound
    assert capped <= fdp.subsampled_gaussian_epsilon(1.0, 0.1, 50, 1e-5, bound="lower") + 1e-6


if __name__ == "__main__":
    pytest.main([__file__])
