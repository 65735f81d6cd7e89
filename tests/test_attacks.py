"""Tests for the model-agnostic membership-inference attacks and metrics (``attacks/``)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from scipy.special import logsumexp, softmax
from scipy.stats import norm

from attacks.lira import lira_scores, lira_scores_from_confidences
from attacks.loss import loss_scores
from attacks.metrics import attack_metrics, bootstrap_ci, roc, tpr_at_fpr
from attacks.rmia import rmia_scores
from attacks.signals import (
    AttackInputError,
    cross_entropy_loss,
    logit_scaled_confidence,
    true_class_probability,
)
from privtangent.errors import PrivtangentError

# ---------------------------------------------------------------------------------------------
# A synthetic world with a known answer.
#
# Each example n has a difficulty d_n (its typical confidence φ, widely spread, so that raw loss
# is a poor membership signal) and a per-example noise scale. Model m's confidence on n is
#     φ_mn = d_n + s_n · ε_mn + boost_n · [n ∈ D_m]
# with boost_n > 0 only for a few "canaries" that every model memorizes when it trains on them.
# Ordinary examples are unaffected by membership, so no attack can beat chance on them.
# Logits are built so that the logit-scaled confidence of the label is exactly φ_mn.
# ---------------------------------------------------------------------------------------------


def _logits_with_confidence(
    phi: np.ndarray, labels: np.ndarray, k: int, rng: np.random.Generator
) -> np.ndarray:
    """Random logits (..., N, K) whose label logit makes z_y − logsumexp_{y'≠y} z_{y'} = φ."""
    logits = rng.normal(0.0, 1.0, phi.shape + (k,))
    idx = np.broadcast_to(labels[:, None], phi.shape + (1,))
    np.put_along_axis(logits, idx, -np.inf, axis=-1)
    np.put_along_axis(logits, idx, (phi + logsumexp(logits, axis=-1))[..., None], axis=-1)
    return logits


@dataclass
class World:
    target: np.ndarray  # (N, K) target model logits on the audited examples
    labels: np.ndarray  # (N,)
    member: np.ndarray  # (N,) ground truth for the target model
    canary: np.ndarray  # (N,) which audited examples are canaries
    shadow: np.ndarray  # (M, N, K)
    shadow_in: np.ndarray  # (M, N)
    pop_target: np.ndarray  # (Z, K) target logits on population samples
    pop_labels: np.ndarray  # (Z,)
    pop_shadow: np.ndarray  # (M, Z, K)


def _make_world(
    seed: int = 0, n: int = 2400, n_canary: int = 80, m: int = 16, z: int = 2000
) -> World:
    rng = np.random.default_rng(seed)
    k = 10
    labels = rng.integers(0, k, n + z)
    difficulty = rng.normal(2.0, 3.0, n + z)
    difficulty[:n_canary] = -3.0  # canaries are hard (atypical) examples: low loss only when IN
    spread = rng.uniform(0.3, 1.0, n + z)
    boost = np.zeros(n + z)
    boost[:n_canary] = 7.0
    inn = np.zeros((m + 1, n + z), dtype=bool)  # row 0 is the target; population is never IN
    inn[:, :n] = rng.random((m + 1, n)) < 0.5
    phi = difficulty + spread * rng.normal(size=(m + 1, n + z)) + boost * inn
    logits = _logits_with_confidence(phi, labels, k, rng)
    canary = np.zeros(n, dtype=bool)
    canary[:n_canary] = True
    return World(
        target=logits[0, :n],
        labels=labels[:n],
        member=inn[0, :n],
        canary=canary,
        shadow=logits[1:, :n],
        shadow_in=inn[1:, :n],
        pop_target=logits[0, n:],
        pop_labels=labels[n:],
        pop_shadow=logits[1:, n:],
    )


@pytest.fixture(scope="module")
def world() -> World:
    return _make_world()


def _auc(scores: np.ndarray, member: np.ndarray) -> float:
    return attack_metrics(scores, member, n_bootstrap=0).auc


def _check_known_answer(w: World, scores: np.ndarray, top_fraction: float = 0.8) -> None:
    """Canaries separate, random data stays at chance, canary members rank on top."""
    assert scores.shape == (w.labels.shape[0],) and scores.dtype == np.float64
    assert np.isfinite(scores).all()
    assert _auc(scores[w.canary], w.member[w.canary]) >= 0.97
    assert abs(_auc(scores[~w.canary], w.member[~w.canary]) - 0.5) < 0.05
    canary_members = w.canary & w.member
    top = np.argsort(-scores, kind="stable")[: canary_members.sum()]
    assert canary_members[top].mean() >= top_fraction


# --- signals ---------------------------------------------------------------------------------


def test_phi_equals_naive_formula_where_stable() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(0.0, 3.0, (200, 7))
    labels = rng.integers(0, 7, 200)
    p = softmax(logits, axis=1)[np.arange(200), labels]
    naive = np.log(p / (1 - p))
    np.testing.assert_allclose(logit_scaled_confidence(logits, labels), naive, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(cross_entropy_loss(logits, labels), -np.log(p), rtol=1e-12)
    np.testing.assert_allclose(true_class_probability(logits, labels), p, rtol=1e-12)


def test_phi_is_stable_for_extreme_logits() -> None:
    logits = np.array([[1000.0, 0.0, 0.0], [-1000.0, 0.0, 0.0], [0.0, 40.0, 40.0]])
    labels = np.array([0, 0, 1])
    phi = logit_scaled_confidence(logits, labels)
    np.testing.assert_allclose(phi, [1000 - np.log(2.0), -1000 - np.log(2.0), 0.0], atol=1e-12)
    # float32 logits where p_y rounds to 1: the naive formula gives +inf, φ stays exact
    z32 = np.array([[50.0, 0.0, 0.0]], dtype=np.float32)
    p32 = softmax(z32, axis=1)[0, 0]
    with np.errstate(divide="ignore"):
        assert np.isinf(np.log(p32 / (np.float32(1) - p32)))
    phi32 = logit_scaled_confidence(z32, np.array([0]))[0]
    assert phi32 == pytest.approx(50.0 - np.log(2.0), abs=1e-12)
    assert cross_entropy_loss(logits, labels)[0] == pytest.approx(2 * np.exp(-1000.0), abs=1e-300)


def test_signals_broadcast_over_leading_axes() -> None:
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(3, 5, 4))
    labels = rng.integers(0, 4, 5)
    stacked = np.stack([logit_scaled_confidence(logits[i], labels) for i in range(3)])
    np.testing.assert_array_equal(logit_scaled_confidence(logits, labels), stacked)


def test_signals_accept_torch_tensors() -> None:
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(6, 5)).astype(np.float32)
    labels = rng.integers(0, 5, 6)
    got = logit_scaled_confidence(torch.from_numpy(logits), torch.from_numpy(labels))
    assert isinstance(got, np.ndarray) and got.dtype == np.float64
    np.testing.assert_array_equal(got, logit_scaled_confidence(logits, labels))
    bf16 = logit_scaled_confidence(torch.from_numpy(logits).bfloat16(), torch.from_numpy(labels))
    np.testing.assert_allclose(bf16, got, atol=0.1)


@pytest.mark.parametrize(
    "logits, labels",
    [
        (np.zeros((4, 3)), np.array([0, 1, 3, 0])),  # label out of range
        (np.zeros((4, 3)), np.array([0, 1, -1, 0])),  # negative label
        (np.zeros((4, 3)), np.array([0, 1, 2])),  # N mismatch
        (np.zeros((4, 3)), np.array([0.0, 1.0, 2.0, 0.0])),  # float labels
        (np.zeros((4, 1)), np.zeros(4, dtype=int)),  # one class
        (np.zeros(4), np.zeros(4, dtype=int)),  # no class axis
        (np.array([[0.0, np.nan], [0.0, 1.0]]), np.array([0, 1])),  # NaN logits
    ],
)
def test_signals_validate_inputs(logits: np.ndarray, labels: np.ndarray) -> None:
    with pytest.raises(AttackInputError) as err:
        logit_scaled_confidence(logits, labels)
    assert isinstance(err.value, ValueError) and isinstance(err.value, PrivtangentError)


# --- LOSS ------------------------------------------------------------------------------------


def test_loss_attack_is_negated_loss_and_blind_to_hard_canaries(world: World) -> None:
    scores = loss_scores(world.target, world.labels)
    np.testing.assert_array_equal(scores, -cross_entropy_loss(world.target, world.labels))
    # raw loss is dominated by per-example difficulty: the hard canaries' members are not at the
    # top of its ranking, while LiRA (calibrated per example) puts them there
    canary_members = world.canary & world.member
    top = np.argsort(-scores, kind="stable")[: canary_members.sum()]
    assert canary_members[top].mean() < 0.2
    lira = lira_scores(world.target, world.labels, world.shadow, world.shadow_in)
    top = np.argsort(-lira, kind="stable")[: canary_members.sum()]
    assert canary_members[top].mean() >= 0.8
    with pytest.raises(AttackInputError):
        loss_scores(world.shadow, world.labels)  # (M, N, K) is not a target model's output


# --- LiRA ------------------------------------------------------------------------------------


@pytest.mark.parametrize("online", [True, False])
@pytest.mark.parametrize("fixed_variance", [False, True])
def test_lira_finds_memorized_canaries(world: World, online: bool, fixed_variance: bool) -> None:
    scores = lira_scores(
        world.target,
        world.labels,
        world.shadow,
        world.shadow_in,
        online=online,
        fixed_variance=fixed_variance,
    )
    _check_known_answer(world, scores)
    # at 1% FPR (12 of ~1200 non-members) LiRA catches (nearly) every canary member
    canary_share = (world.canary & world.member).sum() / world.member.sum()
    assert tpr_at_fpr(scores, world.member, [0.01])[0] >= 0.8 * canary_share


def test_lira_online_matches_hand_computed_gaussian_fits() -> None:
    # 4 shadows, 2 examples; IN/OUT masks chosen so that every fit has 2 observations
    shadow_phi = np.array([[1.0, 4.0], [3.0, 0.0], [0.0, 6.0], [-2.0, 2.0]])
    shadow_in = np.array([[1, 1], [1, 0], [0, 1], [0, 0]], dtype=bool)
    target_phi = np.array([2.5, 1.0])
    mu_in, sd_in = np.array([2.0, 5.0]), np.array([np.sqrt(2.0), np.sqrt(2.0)])
    mu_out, sd_out = np.array([-1.0, 1.0]), np.array([np.sqrt(2.0), np.sqrt(2.0)])
    want = norm.logpdf(target_phi, mu_in, sd_in) - norm.logpdf(target_phi, mu_out, sd_out)
    got = lira_scores_from_confidences(target_phi, shadow_phi, shadow_in)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # the same through logits
    rng = np.random.default_rng(4)
    labels = np.array([2, 0])
    got_logits = lira_scores(
        _logits_with_confidence(target_phi, labels, 3, rng),
        labels,
        _logits_with_confidence(shadow_phi, labels, 3, rng),
        shadow_in,
    )
    np.testing.assert_allclose(got_logits, want, rtol=1e-9)
    # offline: negative log p-value of the one-sided test against the OUT fit
    offline = lira_scores_from_confidences(target_phi, shadow_phi, shadow_in, online=False)
    np.testing.assert_allclose(offline, -norm.logsf(target_phi, mu_out, sd_out), rtol=1e-12)


def test_lira_fixed_variance_pools_within_example_variance() -> None:
    shadow_phi = np.array([[1.0, 4.0], [3.0, 0.0], [0.0, 9.0], [-2.0, 1.0], [5.0, 0.0]])
    shadow_in = np.array([[1, 1], [1, 0], [0, 1], [0, 0], [1, 0]], dtype=bool)
    target_phi = np.array([2.5, 1.0])
    # IN: example 0 {1, 3, 5} mean 3, SS 8 (2 dof); example 1 {4, 9} mean 6.5, SS 12.5 (1 dof)
    # OUT: example 0 {0, -2} mean -1, SS 2 (1 dof); example 1 {0, 1, 0} mean 1/3, SS 2/3 (2 dof)
    var_in, var_out = (8 + 12.5) / 3, (2 + 2 / 3) / 3
    mu_in, mu_out = np.array([3.0, 6.5]), np.array([-1.0, 1 / 3])
    want = norm.logpdf(target_phi, mu_in, np.sqrt(var_in)) - norm.logpdf(
        target_phi, mu_out, np.sqrt(var_out)
    )
    got = lira_scores_from_confidences(target_phi, shadow_phi, shadow_in, fixed_variance=True)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    per_example = lira_scores_from_confidences(target_phi, shadow_phi, shadow_in)
    assert not np.allclose(per_example, got)


def test_lira_falls_back_to_global_statistics_for_few_shadows() -> None:
    # example 2 has no IN shadow, example 1 a single one: global mean / pooled variance are used
    shadow_phi = np.array([[1.0, 4.0, 7.0], [3.0, 0.0, 8.0], [0.0, 6.0, 9.0], [-2.0, 2.0, 10.0]])
    shadow_in = np.array([[1, 1, 0], [1, 0, 0], [0, 0, 0], [0, 0, 0]], dtype=bool)
    target_phi = np.array([2.0, 3.0, 9.0])
    scores = lira_scores_from_confidences(target_phi, shadow_phi, shadow_in)
    assert np.isfinite(scores).all()
    in_obs = np.array([1.0, 3.0, 4.0])
    pooled_in = 2.0  # only example 0 has two IN observations: {1, 3}, SS 2, 1 dof
    mu_out = np.array([-1.0, 8 / 3, 8.5])
    var_out = np.array([2.0, np.var([0, 6, 2], ddof=1), np.var([7, 8, 9, 10], ddof=1)])
    mu_in = np.array([2.0, 4.0, in_obs.mean()])
    sd_in = np.sqrt([2.0, pooled_in, pooled_in])
    want = norm.logpdf(target_phi, mu_in, sd_in) - norm.logpdf(target_phi, mu_out, np.sqrt(var_out))
    np.testing.assert_allclose(scores, want, rtol=1e-12)


def test_lira_offline_ignores_in_shadows(world: World) -> None:
    offline = lira_scores(world.target, world.labels, world.shadow, world.shadow_in, online=False)
    scrambled = world.shadow.copy()
    scrambled[world.shadow_in] += 100.0  # change every IN shadow's logits
    offline_scrambled = lira_scores(
        world.target, world.labels, scrambled, world.shadow_in, online=False
    )
    assert np.array_equal(offline, offline_scrambled)
    assert not np.array_equal(
        lira_scores(world.target, world.labels, world.shadow, world.shadow_in),
        lira_scores(world.target, world.labels, scrambled, world.shadow_in),
    )


def test_lira_accepts_torch_tensors(world: World) -> None:
    want = lira_scores(world.target, world.labels, world.shadow, world.shadow_in)
    got = lira_scores(
        torch.from_numpy(world.target),
        torch.from_numpy(world.labels),
        torch.from_numpy(world.shadow),
        torch.from_numpy(world.shadow_in),
    )
    assert isinstance(got, np.ndarray) and got.dtype == np.float64
    np.testing.assert_array_equal(got, want)


def _lira_bad_inputs():
    w = _make_world(n=20, n_canary=2, m=4, z=5)
    t, y, s, i = w.target, w.labels, w.shadow, w.shadow_in
    return [
        ("target_logits", (t[None], y, s, i)),
        ("shadow_logits", (t, y, s[0], i)),
        ("shadow_logits", (t, y, s[:, :-1], i)),
        ("shadow_logits", (t, y, s[..., :-1], i)),
        ("shadow_in", (t, y, s, i[:-1])),
        ("shadow_in", (t, y, s, i.astype(int) * 2)),
        ("labels", (t, y[:-1], s, i)),
        ("shadow_in", (t, y, s, np.zeros_like(i))),  # online needs IN shadows
    ]


@pytest.mark.parametrize("name, args", _lira_bad_inputs())
def test_lira_validates_inputs(name: str, args: tuple) -> None:
    with pytest.raises(ValueError, match=name):
        lira_scores(*args)


def test_lira_offline_needs_only_out_shadows() -> None:
    w = _make_world(n=20, n_canary=2, m=4, z=5)
    all_out = np.zeros_like(w.shadow_in)
    assert np.isfinite(lira_scores(w.target, w.labels, w.shadow, all_out, online=False)).all()
    with pytest.raises(ValueError, match="OUT"):
        lira_scores(w.target, w.labels, w.shadow, ~all_out, online=False)


# --- RMIA ------------------------------------------------------------------------------------


@pytest.mark.parametrize("online", [True, False])
def test_rmia_beats_chance_on_canaries(world: World, online: bool) -> None:
    scores = rmia_scores(
        world.target,
        world.labels,
        world.shadow,
        world.shadow_in,
        world.pop_target,
        world.pop_labels,
        world.pop_shadow,
        online=online,
    )
    assert ((scores >= 0) & (scores <= 1)).all()
    # Online, Pr(x) averages IN and OUT references, so a memorized canary's ratio
    # Pr(x|θ)/Pr(x) is at most ~2, while hard random examples with noisy confidences reach
    # larger ratios by chance: in this world online RMIA separates the canaries but does not put
    # all of them at the very top. Offline (a = 0.3) it does.
    _check_known_answer(world, scores, top_fraction=0.0 if online else 0.8)
    canary_members = world.canary & world.member
    assert np.median(scores[canary_members]) > np.quantile(scores[~world.member], 0.9)


def _rmia_bruteforce(w: World, gamma: float, online: bool, a: float) -> np.ndarray:
    p_x = true_class_probability(w.target, w.labels)
    p_ref = true_class_probability(w.shadow, w.labels)
    mean_in = (p_ref * w.shadow_in).sum(0) / w.shadow_in.sum(0)
    mean_out = (p_ref * ~w.shadow_in).sum(0) / (~w.shadow_in).sum(0)
    pr_x = (mean_in + mean_out) / 2 if online else ((1 + a) * mean_out + (1 - a)) / 2
    pr_z = true_class_probability(w.pop_shadow, w.pop_labels).mean(0)
    if not online:
        pr_z = ((1 + a) * pr_z + (1 - a)) / 2
    p_z = true_class_probability(w.pop_target, w.pop_labels)
    lr = (p_x / pr_x)[:, None] / (p_z / pr_z)[None, :]
    return (lr >= gamma).mean(axis=1)


@pytest.mark.parametrize(
    "online, gamma, a", [(True, 1.0, 0.3), (False, 1.0, 0.3), (True, 2.0, 0.3), (False, 1.5, 0.8)]
)
def test_rmia_matches_pairwise_definition(online: bool, gamma: float, a: float) -> None:
    w = _make_world(seed=5, n=80, n_canary=8, m=6, z=150)
    w.shadow_in[0], w.shadow_in[1] = True, False  # every example has IN and OUT references
    got = rmia_scores(
        w.target, w.labels, w.shadow, w.shadow_in, w.pop_target, w.pop_labels, w.pop_shadow,
        gamma=gamma, online=online, offline_a=a,
    )
    np.testing.assert_allclose(got, _rmia_bruteforce(w, gamma, online, a), atol=1e-12)


def test_rmia_accepts_torch_and_validates() -> None:
    w = _make_world(n=20, n_canary=2, m=4, z=30)
    args = [w.target, w.labels, w.shadow, w.shadow_in, w.pop_target, w.pop_labels, w.pop_shadow]
    want = rmia_scores(*args)
    np.testing.assert_array_equal(rmia_scores(*[torch.from_numpy(x) for x in args]), want)
    bad = {
        "ref_logits": (2, w.shadow[:, :-1]),
        "population_ref_logits": (6, w.pop_shadow[:-1]),
        "ref_in": (3, w.shadow_in[:, :-1]),
        "population_target_logits": (4, w.pop_target[:, :-1]),
    }
    for name, (pos, value) in bad.items():
        broken = list(args)
        broken[pos] = value
        with pytest.raises(ValueError, match=name):
            rmia_scores(*broken)
    with pytest.raises(ValueError, match="gamma"):
        rmia_scores(*args, gamma=0.0)
    with pytest.raises(ValueError, match="offline_a"):
        rmia_scores(*args, online=False, offline_a=1.5)


# --- metrics ---------------------------------------------------------------------------------

TINY_SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.55, 0.4])
TINY_MEMBER = np.array([1, 1, 0, 1, 0, 0], dtype=bool)


def test_metrics_match_hand_computed_roc() -> None:
    # thresholds 0.9, 0.8, 0.7, 0.6, 0.55, 0.4 give (FPR, TPR) = (0, 1/3), (0, 2/3), (1/3, 2/3),
    # (1/3, 1), (2/3, 1), (1, 1); member/non-member pairs ranked correctly: 3 + 3 + 2 of 9
    fpr, tpr = roc(TINY_SCORES, TINY_MEMBER)
    corners = {(0.0, 0.0), (0.0, 2 / 3), (1 / 3, 2 / 3), (1 / 3, 1.0), (1.0, 1.0)}
    got = {(round(f, 12), round(t, 12)) for f, t in zip(fpr, tpr)}
    assert {(round(f, 12), round(t, 12)) for f, t in corners} <= got
    m = attack_metrics(TINY_SCORES, TINY_MEMBER, fprs=[0.0, 0.2, 1 / 3, 0.5], n_bootstrap=0)
    assert m.auc == pytest.approx(8 / 9)
    tprs = [m.tpr_at_fpr[f] for f in [0.0, 0.2, 1 / 3, 0.5]]
    assert tprs == pytest.approx([2 / 3, 2 / 3, 1.0, 1.0])
    assert (m.n_members, m.n_nonmembers) == (3, 3)
    assert m.auc_ci is None and m.tpr_at_fpr_ci is None


def test_tpr_at_fpr_is_conservative_with_ties() -> None:
    # a member tied with a non-member cannot be caught without also flagging the non-member
    scores = np.array([2.0, 1.0, 1.0, 0.0])
    member = np.array([1, 1, 0, 0], dtype=bool)
    np.testing.assert_allclose(tpr_at_fpr(scores, member, [0.0, 0.49, 0.5]), [0.5, 0.5, 1.0])
    assert attack_metrics(scores, member, n_bootstrap=0).auc == pytest.approx(0.875)
    # tied groups give the collinear ROC points (1/5, 1/3), (2/5, 2/3), (3/5, 1): the middle one
    # is a real threshold and must not be lost (sklearn's drop_intermediate would drop it)
    scores = np.array([4.0, 4.0, 3.0, 3.0, 2.0, 2.0, 1.0, 1.0])
    member = np.array([1, 0, 1, 0, 1, 0, 0, 0], dtype=bool)
    np.testing.assert_allclose(tpr_at_fpr(scores, member, [0.0, 0.45, 0.6]), [0.0, 2 / 3, 1.0])


def test_bootstrap_ci_is_seeded_and_contains_estimate(world: World) -> None:
    scores = lira_scores(world.target, world.labels, world.shadow, world.shadow_in)
    m1 = attack_metrics(scores, world.member, n_bootstrap=200, seed=7)
    m2 = attack_metrics(scores, world.member, n_bootstrap=200, seed=7)
    m3 = attack_metrics(scores, world.member, n_bootstrap=200, seed=8)
    assert m1.auc_ci == m2.auc_ci and m1.tpr_at_fpr_ci == m2.tpr_at_fpr_ci
    assert m1.auc_ci != m3.auc_ci
    lo, hi = m1.auc_ci
    assert lo < m1.auc < hi and hi - lo < 0.2
    lo, hi = m1.tpr_at_fpr_ci[0.01]
    assert lo <= m1.tpr_at_fpr[0.01] <= hi
    doc = json.loads(json.dumps(m1.to_dict(), allow_nan=False))
    assert doc["auc"] == m1.auc and doc["auc_ci"] == list(m1.auc_ci)
    assert set(doc["tpr_at_fpr"]) == {"0.001", "0.01"}
    assert len(doc["roc"]["fpr"]) == len(doc["roc"]["tpr"]) >= 2


def test_bootstrap_resamples_members_and_nonmembers_separately() -> None:
    # with 2 + 2 samples, pooled resampling would often draw a single class and fail;
    # per-class resampling keeps both, and perfectly separated scores stay perfect
    scores = np.array([3.0, 2.0, 1.0, 0.0])
    member = np.array([1, 1, 0, 0], dtype=bool)
    auc_ci, tpr_ci = bootstrap_ci(scores, member, fprs=[0.0], n_bootstrap=300, seed=0)
    assert auc_ci == (1.0, 1.0) and tpr_ci == {0.0: (1.0, 1.0)}


@pytest.mark.parametrize(
    "scores, member",
    [
        (np.array([0.1, np.nan, 0.3]), np.array([1, 0, 1], dtype=bool)),
        (np.array([0.1, 0.2, 0.3]), np.array([1, 1, 1], dtype=bool)),
        (np.array([0.1, 0.2, 0.3]), np.array([1, 0], dtype=bool)),
        (np.array([0.1, 0.2, 0.3]), np.array([1, 0, 2])),
        (np.array([[0.1, 0.2]]), np.array([[1, 0]], dtype=bool)),
    ],
)
def test_metrics_validate_inputs(scores: np.ndarray, member: np.ndarray) -> None:
    with pytest.raises(AttackInputError):
        attack_metrics(scores, member, n_bootstrap=0)
