"""Audit power: the largest ε lower bound a sample size can certify, even with a perfect attack.

A bound below the claimed ε says "no violation found"; it confirms the claim only if the
audit's power exceeds the claim. Report the power beside every bound: at ε = 8, an audit of a
thousand samples can say "no violation found", never "ε confirmed".

Reference values at 95 % confidence: one-run with every guess right, δ = 0 in the bound,
100 / 1,000 / 5,000 guesses → 3.49 / 5.81 / 7.42 (δ = 0 makes them independent of the
number of canaries; δ = 1e-5 with m = r gives 3.49 / 5.78 / 7.28). Clopper–Pearson with
1,000 members and 1,000 non-members perfectly separated → 5.60 (two-sided 95 % interval,
i.e. each bound one-sided at 2.5 %; δ = 0 or 1e-5 agree to 1e-5).
"""

from __future__ import annotations

from audits.privacy.clopper_pearson import epsilon_lower_bound
from audits.privacy.one_run import one_run_epsilon_lower_bound

__all__ = ["one_run_power", "threshold_power"]


def one_run_power(num_canaries: int, num_guesses: int, delta: float = 0.0, confidence: float = 0.95) -> float:
    """ε_lb of a one-run audit whose guesses are all right (Steinke et al. 2023, main theorem).

    With δ = 0 it has a closed form: q = (1 − confidence)^(1/r), ε = ln(q/(1 − q)).
    """
    return one_run_epsilon_lower_bound(num_canaries, num_guesses, num_guesses, delta, confidence)


def threshold_power(num_members: int, num_nonmembers: int, delta: float = 0.0, confidence: float = 0.95) -> float:
    """ε_lb of a threshold attack that separates members from non-members perfectly.

    Clopper–Pearson at zero errors: TPR_lb = (α/2)^(1/n_members), FPR_ub = 1 − (α/2)^(1/n_non),
    α = 1 − confidence.
    """
    return epsilon_lower_bound(num_members, 0, 0, num_nonmembers, delta, confidence)
