"""f-DP one-run audit bounds: the Gaussian (μ-GDP) and Poisson-subsampled Gaussian curves.

The game (Steinke, Nasr, Jagielski 2023): m canaries, canary i included in the single training
run iff its secret bit S_i = 1, S_i i.i.d. Bernoulli(1/2). After training the auditor guesses
"in"/"out" for k canaries (the number k fixed in advance; which canaries, adaptively, from the
output) and abstains on the rest; W = number of right guesses. A *lower bound on ε* at
confidence 1 − α is the largest ε such that every mechanism meeting the hypothesis "the run is
f-DP with the curve f whose (ε, δ) conversion is ≤ ε" would make ≥ W_obs right guesses with
probability < α. Here f is the Gaussian trade-off G_μ (μ-GDP, the curve of full-batch DP-GD with
μ = √T/σ) or the accountant's curve of Poisson-subsampled DP-SGD.

What is computed, and why it is valid
-------------------------------------
Write q(w) = P[W = w] and, for w = 0..k−1,

    A_w = (w + 1) q(w + 1) / m,        B_w = (k − w) q(w) / m.

**Necessity (any f-DP mechanism, any adaptive guesser).** Pick a canary I uniformly at random,
independently of everything. Given S_{−I}, the pair (G_I, W_{−I}) — the guess on I and the number
of right guesses among the others — is a function of the output and S_{−I}, so by
post-processing its laws under S_I = 1 and S_I = 0 form an f-DP pair. Averaging over (I, S_{−I}),
whose law does not depend on S_I, keeps the pair f-DP (the trade-off of a mixture with a revealed
index is ≥ the average of the trade-offs, ≥ f by convexity of f). Since
P[I guessed right, W_{−I} = w] = E[W·1{W = w+1}]/m = A_w and
P[I guessed wrong, W_{−I} = w] = E[(k − W)·1{W = w}]/m = B_w (exactly k guesses; a guesser with
fewer can only gain by padding, so this loses nothing), adding the two directions of the f-DP
inequality at every ε and using (x)_+ + (y)_+ ≥ (x + y)_+ gives, for every ε ≥ 0,

    Σ_w (A_w − e^ε B_w)_+ + (B_w − e^ε A_w)_+  ≤  δ̄(ε) := (δ_add(ε) + δ_remove(ε)) / 2,     (★)

where δ_add, δ_remove are the two privacy profiles of the hypothesized curve (both δ_μ for GDP:
δ_μ(ε) = Φ(−ε/μ + μ/2) − e^ε Φ(−ε/μ − μ/2)).

**Sufficiency.** Conversely every law q meeting (★) for all ε (with δ̄ a symmetric profile) is
the law of W under some f-DP mechanism: draw W ~ q, a uniform k-subset of canaries, a uniform
W-subset of it, and output labels that are right on that subset and wrong on the rest of the
k-subset. Given S_{−i}, the output reveals S_i only through (label_i, W_{−i}), whose two laws are
the atoms (A_w, B_w) above (exchangeability), so the mechanism's privacy profile is exactly the
left side of (★). Hence

    sup over f-DP mechanisms and guessers of P[W ≥ c]  =  LP(c) := max { Σ_{w≥c} q(w) : q ≥ 0, Σ q = 1, (★) ∀ε },

a linear program: this is the *exact* worst case for the observation (m, k, W), not a bound on it.
Two consequences. (1) Nothing that sees only (m, k, W) and is valid for every f-DP mechanism can
reject more than LP does. (2) The worst case is not the Gaussian mechanism. Example
(`ideal.two_mode_counts`, μ-GDP, proof there): with probability θ a public coin lets every canary
leak, each guess then being as accurate as the Gaussian mechanism's at a θ-times smaller guess
rate. On the ideal game at m = 20,000, k = 2,000 it reaches the median count with probability
≥ 5 % at μ' with ε(μ')/ε = 0.68 / 0.68 / 0.74 (ε = 1 / 3 / 8): no valid bound from (m, k, W) can
show more median tightness there, and the exact worst case (the LP, realized by the exchangeable
mechanism above) is stronger still (≈ 0.64 at ε = 1). A bound that takes the Gaussian mechanism
itself (independent per-canary channels) as the null certifies more and is wrong on such
mechanisms (tests/test_fdp_bound.py::test_gaussian_null_would_over_claim_on_the_two_mode_mechanism).

Two ways to evaluate it, both rigorous:

* **recursion** — Mahloujifar, Melis, Chaudhuri (ICML 2025), "Auditing f-Differential Privacy in
  One Run", Thm 3.1 / Alg. 3 (reference implementation: Meta's privacy_guard `FDPAnalysisNode`).
  It keeps only the constraints of (★) on upper sets {w ≥ i} in tangent form
  Σ_{w>i} w q(w)/m ≤ F(Σ_{w≥i} (k − w) q(w)/m), F(x) = 1 − f(x), and decides whether P[W ≥ c] ≥ α is
  compatible with total mass ≤ 1. Its greedy is the exact optimum of that relaxation: mass at c
  is cheapest at exactly c; an excess at level i is dominated by the same mass at level i − 1
  (same contribution to later constraints' right side, less to their left); and the minimal mass
  is monotone in α (scale q by λ ≤ 1: F(λx) ≥ λF(x) for concave F with F(0) = 0). Fast (ms).
* **lp** — the linear program itself, restricted to a finite grid of ε and to the levels within
  a window around c (levels below the window lose all their constraints; levels above it are
  merged into one variable T with the upper-set consequence w_hi·T/m ≤ F(...)): every step
  drops or weakens constraints, so its optimum is ≥ LP(c). It is solved by HiGHS and then
  *certified*: the solver's dual multipliers are repaired to an exactly feasible dual point
  (y_mass, y_ε), and weak duality gives, for every mechanism in the hypothesis,
  P[W ≥ c] ≤ y_mass + Σ_j y_j δ̄(ε_j) — a bound that holds whatever the solver's accuracy, and for
  *every* curve, so one certificate is re-used along the search over μ (Newton-like, from below).

`method="auto"` (default) rejects a hypothesis when any of these proofs does, and also when
Steinke et al.'s (ε(μ, δ), δ) binomial bound does (`one_run.py`): all are upper bounds on the same
P[W ≥ c] under the same null, so taking the strongest is one valid test, not a multiple test, and
the result is never below the binomial bound at the same δ. Each hypothesis family is ordered
(larger μ, or smaller σ, leaks more and contains the smaller ones), so the rejected set is an
interval and the reported ε is that of its edge.

Rules for a valid audit (see tests/test_fdp_bound.py): m is *all* canaries, including those the
auditor abstained on (passing m = k over-claims); k is fixed before the scores are seen (a
rule of m, or a calibration split) — maximizing over k is a multiple test and over-claims.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import sparse
from scipy.optimize import brentq, linprog
from scipy.special import ndtr, ndtri
from scipy.stats import binom

from audits.privacy.one_run import one_run_epsilon_lower_bound
from audits.privacy.validation import require_confidence, require_delta, require_game
from privtangent.dp.analysis.gaussian_dp import gdp_delta, gdp_epsilon, gdp_mu
from privtangent.dp.analysis.subsampled_gaussian import subsampled_gaussian_epsilon, subsampled_gaussian_profile
from privtangent.errors import ConfigError

__all__ = [
    "gdp_delta",
    "gdp_epsilon",
    "gdp_mu",
    "gdp_one_run_epsilon_lower_bound",
    "gdp_one_run_mu_lower_bound",
    "gdp_one_run_tail_bound",
    "fdp_recursion_rejects",
    "subsampled_gaussian_profile",
    "subsampled_gaussian_epsilon",
    "subsampled_gaussian_one_run_epsilon_lower_bound",
]

_MU_MAX = 40.0  # ε(40, 1e-5) ≈ 900: no count certifies more
_MU_TOL = 1e-5
_METHODS = ("auto", "recursion", "lp")


# --------------------------------------------------------------------------- input checks


def _require_method(method: object) -> str:
    if method not in _METHODS:
        raise ConfigError(f"method must be one of {_METHODS}, got {method!r}")
    return str(method)


def _binomial_half_tail(k: int, c: int) -> float:
    """P[Binomial(k, 1/2) ≥ c]: the law of W under a 0-leakage mechanism, which every null contains."""
    return float(binom.sf(c - 1, k, 0.5))


# --------------------------------------------------------------------------- the recursion


def _recursion_needed_mass(m: int, k: int, c: int, finv: Callable[[np.ndarray], np.ndarray], tau: float, n: int):
    """Mahloujifar et al. (2025), Alg. 3, vectorized over `n` hypotheses.

    `finv(y)` returns, for each hypothesis, F^{-1}(y) = the smallest B-mass (type-I error) that the
    curve allows with A-mass (power) y; it must be a *lower* bound of the true inverse for the
    result to be valid. Returns (a + b)·m/k, the least total probability a law with P[W = c] = τ
    needs under the upper-set constraints; > 1 means P[W ≥ c] ≥ τ is impossible (reject).
    """
    a = np.full(n, tau * c / m)  # Σ_{w ≥ i+1} w q(w) / m  (A-mass of the upper set)
    b = np.full(n, tau * (k - c) / m)  # Σ_{w ≥ i} (k − w) q(w) / m  (B-mass)
    limit = k / m
    active = np.ones(n, dtype=bool)
    for i in range(c - 1, -1, -1):
        need = finv(a)
        grow = np.where(active, np.maximum(need - b, 0.0), 0.0)
        if not grow.any():
            break
        a = a + (i / (k - i)) * grow
        b = b + grow
        active &= (a + b) <= limit  # already over the budget: rejected, stop tracking
        if not active.any():
            break
    return (a + b) / limit


def fdp_recursion_rejects(num_canaries: int, num_guesses: int, num_correct: int, mu: float, confidence: float = 0.95) -> bool:
    """True if Mahloujifar et al.'s recursion rejects μ-GDP after `num_correct` right out of `num_guesses`.

    The reference formula with alphabet size 2 (membership): h_i = max(h_{i+1}, F^{-1}(r_{i+1})),
    r_i = r_{i+1} + i/(k − i)·(h_i − h_{i+1}), starting from r_c = τc/m, h_c = τ(k − c)/m with
    τ = 1 − confidence; reject iff r_0 + h_0 > k/m. F^{-1}(y) = Φ(Φ^{-1}(y) − μ).
    """
    m, k, c = require_game(num_canaries, num_guesses, num_correct)
    tau = 1.0 - require_confidence(confidence)
    if c == 0:
        return False
    need = _recursion_needed_mass(m, k, c, _gdp_finv(np.array([float(mu)])), tau, 1)
    return bool(need[0] > 1.0)


def _gdp_finv(mus: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    def finv(y):
        y = np.clip(y, 0.0, 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = ndtr(ndtri(y) - mus)
        return np.where(y >= 1.0, 1.0, np.where(y <= 0.0, 0.0, out))

    return finv


def _profile_finv(eps_grid: np.ndarray, deltas: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """F^{-1} of the tangent envelope F_ub(x) = min_j (e^{ε_j} x + δ_j) ≥ F: a valid lower bound of F^{-1}.

    `deltas` has shape (n, J) (one row per hypothesis) and must bound the profile from above.
    """
    inv_e = np.exp(-np.asarray(eps_grid, dtype=float))[None, :]

    def finv(y):
        y = np.asarray(y, dtype=float)[:, None]
        return np.clip(((y - deltas) * inv_e).max(axis=1), 0.0, None)

    return finv


def _gdp_recursion_mu(m: int, k: int, c: int, tau: float) -> float:
    """Largest μ the recursion rejects (0.0 if none), to ±_MU_TOL, by vectorized grid refinement."""
    lo, hi = 0.0, _MU_MAX
    for _ in range(8):
        grid = np.linspace(lo, hi, 17)[1:]
        rej = _recursion_needed_mass(m, k, c, _gdp_finv(grid), tau, grid.size) > 1.0
        # rejection is monotone in μ (the feasible set grows with μ); guard against float noise
        idx = np.nonzero(~rej)[0]
        first_ok = idx[0] if idx.size else grid.size
        new_lo = grid[first_ok - 1] if first_ok > 0 else lo
        new_hi = grid[first_ok] if first_ok < grid.size else hi
        lo, hi = new_lo, new_hi
        if hi - lo < _MU_TOL:
            break
    return float(lo)


# --------------------------------------------------------------------------- the certified LP


@dataclass
class _Certificate:
    """A verified dual point: for every curve with profile ≤ d on `eps`, P[W ≥ c] ≤ mass + y·d."""

    eps: np.ndarray
    y: np.ndarray
    mass: float

    def bound(self, deltas: np.ndarray) -> float:
        return float(self.mass + np.dot(self.y, deltas))


class _WindowLP:
    """The relaxed LP of the module docstring for fixed (m, k, c, ε-grid, window); solved per curve."""

    def __init__(self, m: int, k: int, c: int, eps: np.ndarray, w_lo: int, w_hi: int):
        self.m, self.k, self.c, self.eps = m, k, c, np.asarray(eps, dtype=float)
        w_lo, w_hi = max(0, min(w_lo, c)), min(k + 1, max(w_hi, c + 1))
        self.w_lo, self.w_hi = w_lo, w_hi
        has_top = w_hi <= k
        L = w_hi - w_lo  # explicit levels w_lo..w_hi−1
        nq = L + (1 if has_top else 0)  # + T = Σ_{w ≥ w_hi} q(w)
        w = np.arange(w_lo, w_hi - 1)  # explicit edges (w, w+1)
        ne = w.size
        J = self.eps.size
        nu = ne + (1 if has_top else 0)  # aux per ε: one per edge, one for the merged top
        nv = nq + J * nu
        rows, cols, vals = [], [], []
        r = 0
        iw = w - w_lo
        budget_rows = np.empty(J, dtype=int)
        for j, e in enumerate(self.eps):
            ee = math.exp(e)
            ucol = nq + j * nu + np.arange(ne)
            # (A_w − e^ε B_w) − u ≤ 0
            rows += [r + iw] * 3
            cols += [iw + 1, iw, ucol]
            vals += [(w + 1) / m, -ee * (k - w) / m, -np.ones(ne)]
            r += ne
            # (B_w − e^ε A_w) − u ≤ 0
            rows += [r + iw] * 3
            cols += [iw, iw + 1, ucol]
            vals += [(k - w) / m, -ee * (w + 1) / m, -np.ones(ne)]
            r += ne
            if has_top:
                ut = nq + j * nu + ne
                # w_hi T/m − e^ε((k − w_hi + 1) q_{w_hi − 1} + (k − w_hi) T)/m − u_T ≤ 0
                rows.append(np.array([r, r, r]))
                cols.append(np.array([L, L - 1, ut]))
                vals.append(np.array([(w_hi - ee * (k - w_hi)) / m, -ee * (k - w_hi + 1) / m, -1.0]))
                r += 1
            # Σ u ≤ δ(ε_j)
            rows.append(np.full(nu, r))
            cols.append(nq + j * nu + np.arange(nu))
            vals.append(np.ones(nu))
            budget_rows[j] = r
            r += 1
        rows.append(np.full(nq, r))
        cols.append(np.arange(nq))
        vals.append(np.ones(nq))
        self.mass_row = r
        r += 1
        self.A = sparse.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(r, nv)
        )
        self.AT = self.A.T.tocsr()
        self.budget_rows = budget_rows
        self.nq, self.nu, self.nv = nq, nu, nv
        g = np.zeros(nv)
        g[c - w_lo : nq] = 1.0  # levels ≥ c (and T)
        self.g = g
        self.levels = np.arange(w_lo, w_hi)

    def solve(self, deltas: np.ndarray) -> tuple[float, _Certificate | None, np.ndarray | None]:
        b = np.zeros(self.A.shape[0])
        b[self.budget_rows] = deltas
        b[self.mass_row] = 1.0
        res = None
        for meth in ("highs-ds", "highs-ipm"):  # dual simplex sometimes stalls numerically; IPM then
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = linprog(-self.g, A_ub=self.A, b_ub=b, bounds=(0, None), method=meth)
            if res.status == 0 and res.ineqlin is not None:
                break
        if res is None or res.status != 0 or res.ineqlin is None:
            return math.inf, None, None
        cert = self._certify(-np.asarray(res.ineqlin.marginals, dtype=float))
        return float(-res.fun), cert, np.asarray(res.x[: self.nq])

    def _certify(self, y: np.ndarray) -> _Certificate:
        """Repair approximate duals into an exactly feasible dual point (weak duality then applies).

        Dual feasibility: A^T y ≥ g, y ≥ 0. Aux columns (g = 0) have +1 only in their budget row,
        so a shortfall there is covered by raising that budget multiplier; q/T columns all have +1
        in the mass row, so the largest remaining shortfall is covered by raising y_mass.
        """
        y = np.maximum(y, 0.0)
        J = self.eps.size
        short = self.g - self.AT @ y
        aux = short[self.nq :].reshape(J, self.nu)
        y[self.budget_rows] += np.maximum(aux.max(axis=1), 0.0)
        short = self.g - self.AT @ y
        y[self.mass_row] += max(0.0, float(short[: self.nq].max()))
        # floating-point slack: |A^T y| is evaluated with relative error ≲ 1e-15 per term
        scale = float((abs(self.AT) @ y).max())
        mass = float(y[self.mass_row]) + 1e-12 + 1e-13 * scale
        return _Certificate(self.eps.copy(), y[self.budget_rows].copy(), mass)


def _window(k: int, c: int, below: float, above: float) -> tuple[int, int]:
    p = c / k
    s = math.sqrt(k * p * (1.0 - p)) + 1.0
    return int(math.floor(c - below * s)), int(math.ceil(c + above * s)) + 1


def _log_odds(k: int, c: int) -> float:
    return max(0.05, math.log((c + 0.5) / (k - c + 0.5)))


def _eps_band(k: int, c: int, lo: float, hi: float, n: int) -> np.ndarray:
    """ε grid: n points on [lo, hi] (where the dual multipliers live), 0, and a few far points.

    The worst case's atoms have likelihood ratios between that of the bulk and that of the
    cliff at c, i.e. ε ≈ 0.5–1.2 × the log-odds of the accuracy c/k; the far points keep
    atoms of huge likelihood ratio out. Any grid is valid (fewer ε = fewer constraints).
    """
    core = np.linspace(max(0.0, lo), hi, n)
    tail = hi + np.array([0.5, 1.5, 3.0])
    return np.unique(np.concatenate([[0.0], core, tail]))


_LP_SIZE = 3000  # target (number of ε) × (number of levels) per LP: ~0.1–0.5 s with HiGHS
_DELTA_FLOOR = 1e-14  # raising a profile value is always valid (looser); it keeps HiGHS well scaled


def _largest_rejected(
    profile: Callable[[float, np.ndarray], np.ndarray],
    start_theta: float,
    m: int,
    k: int,
    c: int,
    tau: float,
    theta_max: float,
    probe: float,
    window: tuple[float, float] = (6.0, 4.0),
    rounds: int = 2,
    candidates: tuple[float, ...] | None = None,
) -> float:
    """Largest leakage parameter θ certified rejected by the LP (never below `start_theta`).

    profile(θ, eps) → upper bounds of δ̄ on eps, increasing in θ. Each round solves the LP at a
    probe θ, turns its duals into a certificate valid for *every* θ, and moves to the largest θ
    that certificate rejects (a Newton-like step from below). Every θ returned carries a
    certificate, so stopping early only loses tightness, never validity. With `candidates`
    (ascending θ values, for curves that are costly to evaluate) the certificate is only
    checked there instead of solved for its root.
    """
    w_lo, w_hi = _window(k, c, *window)
    L = _log_odds(k, c)
    levels = min(w_hi, k + 1) - max(w_lo, 0)
    n_eps = int(min(40, max(12, _LP_SIZE / max(levels, 1))))  # LP size ≈ n_eps × levels
    eps = _eps_band(k, c, 0.0, 2.0 * L + 0.5, n_eps)
    best = start_theta
    theta_probe = probe

    def prof(t, e):
        return np.maximum(profile(t, e), _DELTA_FLOOR)

    for _ in range(rounds):
        lp = _WindowLP(m, k, c, eps, w_lo, w_hi)
        _, cert, _ = lp.solve(prof(theta_probe, eps))
        if cert is None:
            break
        e_used = eps

        def f(t):
            return cert.bound(prof(t, e_used)) - tau

        if candidates is not None:
            for t in candidates:
                if f(t) >= 0:  # f increases with θ: no larger candidate is rejected either
                    break
                best = max(best, t)
            return best
        hi_t = max(theta_probe, best, 1e-3)
        if f(1e-12) < 0:  # this certificate rejects something
            lo_t = 1e-12
            while f(hi_t) < 0 and hi_t < theta_max:
                lo_t, hi_t = hi_t, min(theta_max, hi_t * 1.5)
            if f(hi_t) < 0:
                return theta_max
            t = brentq(f, lo_t, hi_t, xtol=1e-9, rtol=1e-12)
            while f(t) >= 0 and t > lo_t:  # the root sits on the boundary: step to the rejected side
                t = lo_t + 0.5 * (t - lo_t) if t - lo_t > 1e-12 else lo_t
            if f(t) < 0:
                best = max(best, t)
        # next grid: the ε this certificate used, plus a finer band around them
        ys = cert.y
        if ys.max() > 0:
            used = cert.eps[ys > 1e-4 * ys.max()]
            span = max(0.1 * L, used.max() - used.min())
            band = _eps_band(k, c, used.min() - 0.2 * span, used.max() + 0.2 * span, n_eps)
            eps = np.unique(np.concatenate([used, band]))
        theta_probe = max(best, start_theta) * 1.005 if best > 0 else theta_probe * 2.0
    return best


# --------------------------------------------------------------------------- GDP public API


def gdp_one_run_tail_bound(num_canaries: int, num_guesses: int, num_correct: int, mu: float) -> float:
    """A certified upper bound on sup P[W ≥ num_correct] over all μ-GDP mechanisms (the LP of the docstring).

    Useful to audit the bound itself: an f-DP mechanism whose simulated tail exceeds this
    number would refute it.
    """
    m, k, c = require_game(num_canaries, num_guesses, num_correct)
    mu = float(mu)
    if c == 0:
        return 1.0
    L = _log_odds(k, c)
    eps = _eps_band(k, c, 0.3 * L, 1.5 * L, 30)
    lp = _WindowLP(m, k, c, eps, *_window(k, c, 12.0, 9.0))
    d = np.maximum(gdp_delta(eps, mu), _DELTA_FLOOR)
    _, cert, _ = lp.solve(d)
    if cert is None:
        return 1.0
    return min(1.0, cert.bound(d))


def gdp_one_run_mu_lower_bound(
    num_canaries: int,
    num_guesses: int,
    num_correct: int,
    confidence: float = 0.95,
    method: str = "auto",
    delta_for_binomial: float | None = None,
) -> float:
    """Largest μ such that every μ-GDP mechanism makes ≥ num_correct right with probability < 1 − confidence.

    0.0 when even μ → 0 (independent fair coins, W ~ Binomial(k, 1/2)) is not rejected.
    """
    m, k, c = require_game(num_canaries, num_guesses, num_correct)
    tau = 1.0 - require_confidence(confidence)
    method = _require_method(method)
    if c == 0 or _binomial_half_tail(k, c) >= tau:
        return 0.0
    mu_rec = _gdp_recursion_mu(m, k, c, tau)  # ~ms; for "lp" it only picks where to probe
    mu = mu_rec if method in ("auto", "recursion") else 0.0
    if method in ("auto", "lp"):
        probe = 1.04 * mu_rec if mu_rec > 0 else 0.25
        mu = _largest_rejected(lambda t, e: gdp_delta(e, t), mu, m, k, c, tau, _MU_MAX, probe=probe)
    if method == "auto" and delta_for_binomial is not None:

        eps_b = one_run_epsilon_lower_bound(m, k, c, delta=delta_for_binomial, confidence=1.0 - tau)
        if eps_b > 0:
            # every μ-GDP mechanism with ε(μ, δ) ≤ eps_b is (eps_b, δ)-DP, which Steinke et al. reject
            mu = max(mu, _mu_at_most(eps_b, delta_for_binomial))
    return float(mu)


def _mu_at_most(epsilon: float, delta: float) -> float:
    """A μ with ε(μ, δ) ≤ epsilon (the root, nudged down so rounding never overshoots)."""
    mu = gdp_mu(epsilon, delta)
    while mu > 0 and gdp_epsilon(mu, delta) > epsilon:
        mu = math.nextafter(mu, 0.0) if mu < 1e-12 else mu * (1 - 1e-12)
    return mu


def gdp_one_run_epsilon_lower_bound(
    num_canaries: int,
    num_guesses: int,
    num_correct: int,
    delta: float = 1e-5,
    confidence: float = 0.95,
    *,
    method: str = "auto",
) -> float:
    """The largest ε such that every μ-GDP mechanism with ε(μ, δ) ≤ ε would make `num_correct` or
    more right guesses out of `num_guesses` with probability below 1 − confidence (0.0 when none is
    rejected).

    num_canaries: m, every canary of the run (each in with probability 1/2), not only the guessed
    ones. num_guesses: k, fixed before the scores were seen. method: "auto" (recursion, certified
    LP and Steinke et al.'s binomial bound at the same δ, strongest wins — all bound the same
    tail), "recursion" (Mahloujifar et al. 2025 alone) or "lp". See the module docstring for the
    proof; the result is ε(μ*, δ) for the largest rejected μ*, rounded down. Cost at m = 20,000,
    k = 2,000: "recursion" ~0.02 s, "auto" ~0.5–0.9 s (two HiGHS solves), 3–4 s when the shared
    2-core machine is heavily loaded (benchmarks/results/fdp_tightness.md was measured so).
    """
    d = require_delta(delta)
    if d == 0.0:
        raise ConfigError("delta must be > 0: a μ-GDP mechanism with μ > 0 is not (ε, 0)-DP for any finite ε")
    mu = gdp_one_run_mu_lower_bound(
        num_canaries, num_guesses, num_correct, confidence, method, delta_for_binomial=d if method == "auto" else None
    )
    if mu <= 0.0:
        return 0.0
    return gdp_epsilon(mu, d, side="lower")


def subsampled_gaussian_one_run_epsilon_lower_bound(
    num_canaries: int,
    num_guesses: int,
    num_correct: int,
    sample_rate: float,
    steps: int,
    delta: float = 1e-5,
    confidence: float = 0.95,
    *,
    method: str = "auto",
) -> float:
    """The f-DP one-run bound for the accountant's own curve (Poisson-subsampled DP-SGD).

    Hypotheses H_σ: "every canary is f_σ-DP, f_σ the curve of `steps` Poisson-subsampled
    Gaussian steps at `sample_rate` with noise multiplier σ" (larger σ leaks less, and H_σ ⊂ H_σ'
    for σ > σ'). The same proofs as the GDP bound apply with δ̄ = (δ_add + δ_remove)/2 bounded
    from above by `subsampled_gaussian_profile` on a finite ε grid (fewer constraints: valid).
    Returns ε(σ*, δ) at the edge σ* of the rejected set {σ ≥ σ*}, computed as prv-accountant's
    *lower* bound, so it never overstates. Each σ probed costs one PRV composition (~0.5–3 s), so
    a call takes tens of seconds; "recursion" is several times faster than "auto".
    """
    m, k, c = require_game(num_canaries, num_guesses, num_correct)
    tau = 1.0 - require_confidence(confidence)
    d = require_delta(delta)
    method = _require_method(method)
    q, T = float(sample_rate), int(steps)
    if not 0 < q <= 1 or T < 1:
        raise ConfigError(f"need 0 < sample_rate ≤ 1 and steps ≥ 1, got {sample_rate!r}, {steps!r}")
    if d == 0.0:
        raise ConfigError("delta must be > 0")
    if c == 0 or _binomial_half_tail(k, c) >= tau:
        return 0.0
    L = _log_odds(k, c)
    eps_rec = _eps_band(k, c, 0.0, 2.5 * L + 1.0, 80)
    # leakage parameter θ = 1/σ (increasing in leakage)
    cache: dict[float, np.ndarray | None] = {}  # None: prv-accountant could not evaluate θ

    def dbar(theta: float, eps: np.ndarray) -> np.ndarray:
        if theta <= 0:
            return np.zeros(len(eps))
        r, a = subsampled_gaussian_profile(1.0 / theta, q, T, eps)
        return 0.5 * (r + a)

    def rejects(theta: float) -> bool:
        # A hypothesis prv-accountant cannot evaluate (it raises for extreme leakage, e.g.
        # "Discrete mean differs from continuous mean significantly") is *not rejected*: that
        # only shrinks the rejected set, so the bound stays valid (it can only get smaller).
        if theta not in cache:
            try:
                cache[theta] = dbar(theta, eps_rec)
            except RuntimeError:
                cache[theta] = None
        profile = cache[theta]
        if profile is None:
            return False
        return bool(_recursion_needed_mass(m, k, c, _profile_finv(eps_rec, profile[None, :]), tau, 1)[0] > 1.0)

    # bracket with the GDP bound: full-batch steps make f_σ at least as leaky as the subsampled
    # curve is not assumed; the bracket only picks where to search and is widened until valid.
    mu_g = gdp_one_run_mu_lower_bound(m, k, c, 1.0 - tau, method="recursion")
    theta_guess = max(mu_g, 1e-3) / (q * math.sqrt(T))  # CLT scale of the subsampled curve
    lo, hi = 0.0, theta_guess
    while rejects(hi) and hi < 1e3:
        lo, hi = hi, hi * 1.5
    if lo == 0.0:
        t = hi
        while t > 1e-4 and not rejects(t):
            hi, t = t, t / 1.5
        lo = t if rejects(t) else 0.0
    for _ in range(7):  # bisection in log θ, to ~1 %
        if lo <= 0:
            break
        mid = math.sqrt(lo * hi)
        if rejects(mid):
            lo = mid
        else:
            hi = mid
    theta_rec = lo
    theta = theta_rec if method in ("auto", "recursion") else 0.0
    if method in ("auto", "lp") and theta_rec > 0:
        cands = tuple(theta_rec * f for f in (1.01, 1.02, 1.035, 1.05, 1.07, 1.1))
        try:
            theta = _largest_rejected(dbar, theta, m, k, c, tau, 1e3, probe=1.03 * theta_rec, rounds=1, candidates=cands)
        except RuntimeError:  # prv-accountant failed on a candidate: keep the recursion's (valid) answer
            theta = theta_rec
    while theta > 0:
        try:
            return subsampled_gaussian_epsilon(1.0 / theta, q, T, d, bound="lower")
        except RuntimeError:  # not computable at this leakage: report a smaller, still-rejected ε
            theta /= 1.5
    return 0.0
