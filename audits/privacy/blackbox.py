"""The black-box privacy audit: membership inference against replicas of a training procedure.

For every audited procedure (a non-private ``TrainConfig`` as the reference, a ``DPConfig`` at
each claimed ε, or any procedure with a claim attached, ``AuditTarget``):

1. **Replicas.** M models trained by the procedure on random halves of one audit population
   (each sample in independently with probability ½; ``audits.shadows``). A fraction of the
   population are *canaries*: samples with a wrong label, which a model that is not private
   memorizes. The same membership masks serve every procedure (paired comparison).
2. **Attacks** (leave-one-out: each replica in turn is the target, the other M − 1 are its
   shadow models): LiRA online and offline (Carlini et al. 2022; one pooled σ per side when
   there are few shadows, their "global variance"), LOSS (Yeom et al. 2018) and, when a
   reference set is given, RMIA (Zarifzadeh et al. 2024). Scores of all replicas are pooled:
   AUC with a bootstrap CI, TPR at 0.1 % and 1 % FPR, the ROC curve.
3. **Two ε lower bounds**, each at confidence 1 − α/2 so that the verdict, which fails when
   either exceeds the claim, has a false-FAIL rate ≤ α (Bonferroni; α = 1 − ``confidence``):

   - *threshold* (Clopper–Pearson): the test "LiRA score ≥ t ⇒ member" (the headline attack,
     fixed in advance by ``headline_attack``: online with ≥ 16 shadows, else offline), t chosen on a
     random half of the pooled scores, counts taken on the other half
     (``audits.privacy.clopper_pearson.threshold_attack_epsilon``). It treats every
     (replica, sample) pair as an independent trial; samples of one training run are not
     independent, so this bound is the conventional heuristic, not a theorem.
   - *one-run* (Steinke, Nasr, Jagielski 2023): the (replica, canary) pairs form one game.
     Every canary is in its replica independently with probability ½, and a canary of
     replica j influences only replica j, so the M replicas together are (ε, δ)-DP with
     respect to each canary (parallel composition) and the theorem applies to the pooled
     game. Guesses use a score that depends on the models' outputs only, never on a
     membership bit: the canary's logit-scaled confidence minus its mean over all M replicas.
     The top r/2 are guessed "in", the bottom r/2 "out", with r = max(2, ⌊m/4⌋) fixed in
     advance (``guess_count``).

   Beside each bound, its **audit power** (``audits.privacy.power``): what a perfect attack
   could certify with this sample size. ε_lb ≤ claimed ε with a power below the claim
   means "no violation found", never "ε confirmed".

Verdict per claimed ε: PASS when both bounds are ≤ the claim, FAIL otherwise. The
non-private reference is the positive control: the audit must detect it (LiRA AUC CI above
½), else the audit is reported inconclusive (SKIP) — its PASS verdicts then carry little weight.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import pandas as pd
import torch
from timm.models.vision_transformer import VisionTransformer

from attacks.lira import lira_scores
from attacks.loss import loss_scores
from attacks.metrics import AttackMetrics, attack_metrics
from attacks.rmia import rmia_scores
from attacks.signals import logit_scaled_confidence
from audits.choices import ATTACKS, BLACKBOX_BUGS
from audits.population import Population, make_population, membership_masks
from audits.privacy.clopper_pearson import threshold_attack_epsilon
from audits.privacy.one_run import one_run_epsilon_lower_bound, one_run_guesses
from audits.privacy.power import one_run_power, threshold_power
from audits.results import AuditSection, Check, Status
from audits.shadows import Procedure, ShadowSet, resolve_procedure, time_shadow_training, train_shadows
from privtangent.data.dataset import ImageData
from privtangent.dp.config import DPConfig
from privtangent.errors import ConfigError
from privtangent.features import FeatureCache
from privtangent.progress import Progress
from privtangent.threads import torch_threads
from privtangent.train import TrainConfig

SECTION = "membership_inference"
ATTACK_NAMES = {"lira-online": "LiRA online", "lira-offline": "LiRA offline", "loss": "LOSS", "rmia": "RMIA"}
BUGS = BLACKBOX_BUGS
FIXED_VARIANCE_BELOW = 16  # fewer shadows than this per target: one pooled σ per side (Carlini et al. 2022)


class MembershipRow(TypedDict):
    """The headline row of one audited procedure."""

    model: str
    epsilon_claimed: float | None
    auc: float
    auc_ci_lo: float
    auc_ci_hi: float
    tpr_at_fpr_0_1pct: float
    tpr_at_fpr_1pct: float
    epsilon_lb: float
    audit_power: float
    method: str
    status: str


class AttackRow(TypedDict):
    """One attack's metrics on one procedure's replicas."""

    model: str
    attack: str
    auc: float
    auc_ci_lo: float | None
    auc_ci_hi: float | None
    tpr_at_fpr_0_1pct: float
    tpr_at_fpr_1pct: float
    tpr_at_fpr_1pct_ci_lo: float | None
    tpr_at_fpr_1pct_ci_hi: float | None
    members: int
    nonmembers: int


class OneRunResult(TypedDict):
    num_canaries: int
    num_guesses: int
    num_correct: int
    epsilon_lb: float
    audit_power: float


@dataclass(frozen=True)
class AuditTarget:
    """One audited procedure and the ε claimed for it (None: the non-private reference)."""

    name: str
    procedure: Procedure
    claimed_epsilon: float | None = None
    delta: float | None = None  # default: the DPConfig's δ, else the audit's δ


def default_dp_config(**overrides: Any) -> DPConfig:
    """The DP procedure audited by default: ``DPConfig()`` (the paper's full-batch DP-GD:
    tangent model, J·Δw output, 50 steps, C = 1), with ``overrides``."""
    return DPConfig(**overrides)


def _check_epsilons(epsilons: Sequence[float]) -> list[float]:
    out = []
    for e in epsilons:
        if isinstance(e, bool) or not isinstance(e, (int, float)) or not math.isfinite(e) or e <= 0:
            raise ConfigError(f"claimed ε must be a finite number > 0, got {e!r}")
        out.append(float(e))
    return out


def default_targets(epsilons: Sequence[float] = (1, 3, 8), delta: float = 1e-5, *,
                    train_config: TrainConfig | None = None, dp_config: DPConfig | None = None,
                    include_reference: bool = True) -> list[AuditTarget]:
    """The non-private reference (``train_config``, default the TAFT recipe ``TrainConfig()``)
    and ``dp_config`` (default ``DPConfig()``) calibrated for each ε in ``epsilons``."""
    targets = []
    if include_reference:
        cfg = train_config or TrainConfig()
        targets.append(AuditTarget(f"non-private {cfg.method}", cfg, None, delta))
    template = dp_config if dp_config is not None else default_dp_config()
    for eps in _check_epsilons(epsilons):
        targets.append(AuditTarget(f"DP ε={eps:g}", template.replace(target_epsilon=float(eps), noise_multiplier=None,
                                                                   delta=float(delta)), float(eps), float(delta)))
    return targets


def broken_target(bug: str, claimed_epsilon: float, delta: float = 1e-5, dp_config: DPConfig | None = None,
                  dataset_size: int = 128) -> AuditTarget:
    """A DP procedure with an injected bug that still claims ``claimed_epsilon`` (a positive
    control of the audit itself: it must FAIL).

    - ``noise-off``: σ = 0 (clipping still on).
    - ``clip-off``: the noise std σ·C is the one calibrated for the claim with C = 1, but
      per-sample gradients are clipped at 10⁶ (never, in practice).
    """
    if bug not in BUGS:
        raise ConfigError(f"unknown bug {bug!r}; choose one of {', '.join(BUGS)}")
    template = dp_config if dp_config is not None else default_dp_config()
    claimed = _check_epsilons([claimed_epsilon])[0]
    if bug == "noise-off":
        proc = template.replace(target_epsilon=None, noise_multiplier=0.0, delta=float(delta))
    else:
        honest = resolve_procedure(template.replace(target_epsilon=claimed, noise_multiplier=None, delta=float(delta)),
                                   dataset_size)
        assert isinstance(honest, DPConfig) and honest.noise_multiplier is not None
        big = 1e6
        proc = honest.replace(max_grad_norm=big, noise_multiplier=honest.noise_multiplier * honest.max_grad_norm / big)
    return AuditTarget(f"DP ε={claimed:g} ({bug}: injected bug)", proc, claimed, float(delta))


def guess_count(num_canaries: int) -> int:
    """The one-run audit's number of guesses, fixed in advance from m alone: max(2, ⌊m/4⌋) ≤ m.

    Abstaining on most canaries keeps the guesses on the ones the attack is surest about
    (Steinke et al. 2023, Sec. 5), while m/4 keeps the ceiling (``one_run_power``) above
    ε = 1 for m ≥ 64.
    """
    return max(min(2, num_canaries), min(num_canaries, num_canaries // 4))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower().replace("ε=", "eps").replace("ε", "eps")).strip("-")


def _check_id(target: AuditTarget, used: set[str]) -> str:
    base = f"mia-eps{target.claimed_epsilon:g}" if target.claimed_epsilon is not None else "mia-positive-control"
    if base in used:
        base = f"mia-{_slug(target.name)}"
    ident, k = base, 2
    while ident in used:
        ident, k = f"{base}-{k}", k + 1
    used.add(ident)
    return ident


# --------------------------------------------------------------------------------------
# attacks on one shadow set (leave-one-out)
# --------------------------------------------------------------------------------------
def leave_one_out_scores(shadows: ShadowSet, attack: str, fixed_variance: bool | None = None,
                         rmia_labels: np.ndarray | None = None) -> np.ndarray:
    """(M, N) membership scores of each replica, attacked with the other replicas as shadows."""
    logits, member, labels = shadows.numpy()
    m = logits.shape[0]
    if fixed_variance is None:
        fixed_variance = (m - 1) < FIXED_VARIANCE_BELOW
    out = np.empty(member.shape, dtype=np.float64)
    for t in range(m):
        others = [j for j in range(m) if j != t]
        if attack == "loss":
            out[t] = loss_scores(logits[t], labels)
        elif attack in ("lira-online", "lira-offline"):
            out[t] = lira_scores(logits[t], labels, logits[others], member[others],
                                 online=attack == "lira-online", fixed_variance=fixed_variance)
        elif attack == "rmia":
            assert shadows.extra_logits is not None
            z = shadows.extra_logits.double().numpy()
            out[t] = rmia_scores(logits[t], labels, logits[others], member[others], z[t], rmia_labels, z[others])
        else:
            raise ConfigError(f"unknown attack {attack!r}; choose from {', '.join(ATTACKS)}")
    return out


def _attack_row(name: str, attack: str, met: AttackMetrics) -> AttackRow:
    ci = met.auc_ci or (None, None)
    tci = met.tpr_at_fpr_ci or {}
    return {"model": name, "attack": ATTACK_NAMES[attack], "auc": met.auc, "auc_ci_lo": ci[0], "auc_ci_hi": ci[1],
            "tpr_at_fpr_0_1pct": met.tpr_at_fpr[0.001], "tpr_at_fpr_1pct": met.tpr_at_fpr[0.01],
            "tpr_at_fpr_1pct_ci_lo": tci.get(0.01, (None, None))[0],
            "tpr_at_fpr_1pct_ci_hi": tci.get(0.01, (None, None))[1],
            "members": met.n_members, "nonmembers": met.n_nonmembers}


def one_run_audit(shadows: ShadowSet, is_canary: np.ndarray, delta: float, confidence: float) -> OneRunResult:
    """Steinke et al. (2023) on the pooled (replica, canary) game; see the module notes."""
    logits, member, labels = shadows.numpy()
    phi = logit_scaled_confidence(logits, labels)  # (M, N)
    score = phi - phi.mean(axis=0, keepdims=True)  # uses the outputs only, no membership bit
    mask = np.asarray(is_canary, dtype=bool)
    if not mask.any():
        mask = np.ones(member.shape[1], dtype=bool)
    s, bits = score[:, mask].ravel(), member[:, mask].ravel()
    m = int(s.size)
    r = guess_count(m)
    guesses, correct = one_run_guesses(s, bits, r)
    return {"num_canaries": m, "num_guesses": guesses, "num_correct": correct,
            "epsilon_lb": one_run_epsilon_lower_bound(m, guesses, correct, delta, confidence),
            "audit_power": one_run_power(m, guesses, delta, confidence)}


def headline_attack(num_shadows: int) -> str:
    """The attack the threshold bound and the headline numbers use, fixed in advance: LiRA
    online with ≥ 16 shadows per target, else LiRA offline. With a handful of shadows the
    per-example IN/OUT means are too noisy for the online test: on the DP replicas of the
    embedded default with 3–7 shadows, online AUCs sat at or below offline ones
    (benchmarks/results/mia.md)."""
    return "lira-online" if num_shadows >= FIXED_VARIANCE_BELOW else "lira-offline"


@dataclass
class ReplicaAnalysis:
    """Everything the audit derives from one procedure's replicas."""

    row: MembershipRow
    check: Check
    attack_rows: list[AttackRow]
    threshold_row: dict[str, Any]
    one_run_row: dict[str, Any]
    roc: pd.DataFrame
    metrics: dict[str, AttackMetrics]


def _attack_all(name: str, shadows: ShadowSet, wanted: list[str], n_bootstrap: int, confidence: float, seed: int,
                rmia_labels: np.ndarray | None) -> tuple[dict[str, np.ndarray], dict[str, AttackMetrics], list[AttackRow]]:
    truth = shadows.member.numpy().astype(bool).ravel()
    scores, metrics, rows = {}, {}, []
    for attack in wanted:
        scores[attack] = leave_one_out_scores(shadows, attack, rmia_labels=rmia_labels).ravel()
        metrics[attack] = attack_metrics(scores[attack], truth, n_bootstrap=n_bootstrap, confidence=confidence, seed=seed)
        rows.append(_attack_row(name, attack, metrics[attack]))
    return scores, metrics, rows


def _verdict(name: str, claimed_epsilon: float | None, met: AttackMetrics, head: str, lb: float, power: float,
             thr_lb: float, one_lb: float, check_id: str) -> Check:
    lo, hi = met.auc_ci if met.auc_ci else (float("nan"), float("nan"))
    if claimed_epsilon is None:
        # the control passes only if the audit can prove leakage at all: an AUC above ½ with a bound of 0
        # (AUC 0.57, ε_lb 0) shows the attack sees something, but the audit could not refute any claim
        detected = lo > 0.5 and lb > 0
        reason = (f"{ATTACK_NAMES[head]} AUC {met.auc:.3g} (CI {lo:.3g}–{hi:.3g}) > 0.5 and ε lower bound {lb:.3g} > 0"
                  if detected else
                  f"inconclusive: on a non-private model the audit reached AUC {met.auc:.3g} (CI {lo:.3g}–{hi:.3g}) and "
                  f"ε lower bound {lb:.3g}: it cannot prove leakage even without DP at these sizes, so its PASS "
                  f"verdicts at the claimed ε carry little weight (more replicas or canaries would help)")
        return Check(check_id, SECTION, f"positive control: the audit detects {name}",
                     Status.PASS if detected else Status.SKIP, reason)
    claimed = float(claimed_epsilon)
    status = Status.FAIL if lb > claimed else Status.PASS
    reason = (f"ε lower bound {lb:.3g} {'exceeds' if lb > claimed else '≤'} claimed {claimed:g} "
              f"(threshold {thr_lb:.3g}, one-run {one_lb:.3g}; audit power {power:.3g}"
              f"{': no violation found, ε not confirmed' if status is Status.PASS and power < claimed else ''})")
    return Check(check_id, SECTION, f"black-box audit of {name} at claimed ε = {claimed:g}", status, reason)


def analyze_replicas(name: str, claimed_epsilon: float | None, shadows: ShadowSet, is_canary: Any, *,
                     attacks: Sequence[str] = ("lira-online", "lira-offline", "loss"), delta: float = 1e-5,
                     confidence: float = 0.95, n_bootstrap: int = 500, seed: int = 0,
                     rmia_labels: np.ndarray | None = None, check_id: str | None = None) -> ReplicaAnalysis:
    """Attacks, metrics, both ε lower bounds, their power and the verdict for one procedure.

    ``shadows`` holds M ≥ 3 replicas (``train_shadows``); ``is_canary`` (N,) marks the
    canaries of the one-run game (all samples when none is marked).
    """
    m = shadows.num_models
    if m < 3:
        raise ConfigError(f"the audit needs at least 3 replicas (each target needs 2 shadows), got {m}")
    each = 1.0 - (1.0 - confidence) / 2.0
    head = headline_attack(m - 1)
    wanted = [head] + [a for a in ATTACKS if a in attacks and a != head]
    if shadows.extra_logits is None:
        wanted = [a for a in wanted if a != "rmia"]  # RMIA needs the replicas' logits on reference samples
    scores, metrics, attack_rows = _attack_all(name, shadows, wanted, n_bootstrap, confidence, seed, rmia_labels)
    truth = shadows.member.numpy().astype(bool).ravel()
    s = scores[head]
    thr = threshold_attack_epsilon(s[truth], s[~truth], delta=delta, confidence=each, seed=seed)
    sizes = thr["split_sizes"]
    thr_power = threshold_power(sizes["evaluation_members"], sizes["evaluation_nonmembers"], delta, each)
    one = one_run_audit(shadows, is_canary, delta, each)
    lb = max(thr["epsilon_lb"], one["epsilon_lb"])
    method = (f"threshold on {ATTACK_NAMES[head]} scores (Clopper–Pearson, held-out split)"
              if thr["epsilon_lb"] >= one["epsilon_lb"] else "one-run canary game (Steinke et al. 2023)")
    power = max(thr_power, one["audit_power"])
    met = metrics[head]
    lo, hi = met.auc_ci if met.auc_ci else (float("nan"), float("nan"))
    default_id = f"mia-eps{claimed_epsilon:g}" if claimed_epsilon is not None else "mia-positive-control"
    check = _verdict(name, claimed_epsilon, met, head, lb, power, thr["epsilon_lb"], one["epsilon_lb"],
                     check_id or default_id)
    row: MembershipRow = {"model": name, "epsilon_claimed": claimed_epsilon, "auc": met.auc, "auc_ci_lo": lo,
                          "auc_ci_hi": hi, "tpr_at_fpr_0_1pct": met.tpr_at_fpr[0.001],
                          "tpr_at_fpr_1pct": met.tpr_at_fpr[0.01], "epsilon_lb": lb, "audit_power": power,
                          "method": method, "status": check.status.value}
    threshold_row = {"model": name, "epsilon_claimed": claimed_epsilon, "attack": ATTACK_NAMES[head],
                     "epsilon_lb": thr["epsilon_lb"], "audit_power": thr_power, "threshold": thr["threshold"],
                     **thr["counts"], **sizes, "delta": delta}
    one_run_row = {"model": name, "epsilon_claimed": claimed_epsilon, **one, "delta": delta,
                   "status": check.status.value if claimed_epsilon is not None else None}
    roc = pd.DataFrame({"curve": name, "fpr": met.roc_fpr, "tpr": met.roc_tpr})
    return ReplicaAnalysis(row, check, attack_rows, threshold_row, one_run_row, roc, metrics)


# --------------------------------------------------------------------------------------
# the audit
# --------------------------------------------------------------------------------------
def _rmia_reference(test: ImageData | None, population: Population, size: int) -> ImageData | None:
    """RMIA's population z: test samples that are not in the audit population (None: no RMIA)."""
    if test is None or len(test) < 2:
        return None
    clash = sorted(set(test.ids.tolist()) & set(population.data.ids.tolist()))
    candidates = test.select_ids(clash, keep=False) if clash else test
    return candidates.limit(min(size, len(candidates)))


def _procedure_row(target: AuditTarget, shadows: ShadowSet) -> dict[str, Any]:
    accounted = [mf["epsilon"] for mf in shadows.manifests if mf.get("epsilon") is not None]
    config = shadows.procedure["config"]
    return {"model": target.name, "kind": shadows.procedure["kind"],
            "noise_multiplier": config.get("noise_multiplier"), "max_grad_norm": config.get("max_grad_norm"),
            "epsilon_accounted": float(np.median(accounted)) if accounted else None,
            "epochs": config.get("epochs"), "cached": shadows.cached,
            "train_seconds_per_model": float(np.median(shadows.seconds)),
            "shadow_file": Path(shadows.path).name if shadows.path else None}


def _check_sizes(num_models: int, confidence: float, n_bootstrap: int, attacks: Sequence[str]) -> None:
    if isinstance(num_models, bool) or not isinstance(num_models, int) or num_models < 3:
        raise ConfigError(f"number of models must be an integer ≥ 3 (each target needs ≥ 2 shadows), got {num_models!r}")
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int) or n_bootstrap < 1:
        raise ConfigError(f"n_bootstrap must be an integer ≥ 1, got {n_bootstrap!r}")
    unknown = sorted(set(attacks) - set(ATTACKS))
    if unknown:
        raise ConfigError(f"unknown attack {unknown[0]!r}; choose from {', '.join(ATTACKS)}")


def _body(analyses: list[ReplicaAnalysis], procedures: list[dict[str, Any]], population: Population,
          num_models: int, attacks: Sequence[str], rmia_set: ImageData | None, confidence: float,
          n_bootstrap: int, delta: float, seed: int, timing: dict[str, Any] | None,
          seconds: dict[str, float]) -> dict[str, Any]:
    each = 1.0 - (1.0 - confidence) / 2.0
    head = headline_attack(num_models - 1)
    return {
        "attack": (f"{ATTACK_NAMES[head]} (Carlini et al. 2022), leave-one-out over {num_models} replicas per "
                   f"procedure ({num_models - 1} shadow models per target"
                   f"{', one pooled variance per side' if num_models - 1 < FIXED_VARIANCE_BELOW else ''})"),
        "summary": ("Each procedure was run on random halves of the audit population; every model was attacked with "
                    "the others as shadow models. The ε lower bound is the larger of a threshold test on LiRA scores "
                    "(Clopper–Pearson on a held-out split) and a one-run canary game (Steinke et al. 2023); each is "
                    f"taken at {100 * each:g}% confidence, so the verdict holds at {100 * confidence:g}%. Audit power "
                    "is the largest bound a perfect attack could reach with these sample sizes."),
        "rows": [a.row for a in analyses],
        "attacks": [r for a in analyses for r in a.attack_rows],
        "threshold": {"rows": [a.threshold_row for a in analyses],
                      "note": "Counts pool every (replica, sample) pair and treat them as independent trials; samples "
                              "of one training run are not, so this bound is the conventional heuristic. The one-run "
                              "bound does not need that assumption."},
        "one_run": {"rows": [a.one_run_row for a in analyses],
                    "guess_rule": "r = max(2, floor(m/4)) guesses fixed in advance: top r/2 scores 'in', bottom r/2 'out'",
                    "score": "the canary's logit-scaled confidence minus its mean over all replicas (no membership bit used)",
                    "game": "every (replica, canary) pair is one canary of a single game: each canary was included "
                            "independently with probability 1/2 and influences only its own replica",
                    "confidence": each},
        "setup": {"population": population.describe(), "num_models": num_models, "shadows_per_target": num_models - 1,
                  "membership": "each population sample in each replica independently with probability 1/2 (seeded)",
                  "attacks": [ATTACK_NAMES[a] for a in ATTACKS if a in attacks or a == head],
                  "headline_attack": ATTACK_NAMES[head],
                  "rmia_population": len(rmia_set) if rmia_set is not None else None,
                  "confidence": confidence, "confidence_per_bound": each, "n_bootstrap": n_bootstrap,
                  "intervals": ("percentile bootstrap over pooled (replica, sample) pairs; a sample's scores in "
                                "different replicas are correlated, so these intervals are somewhat too narrow"),
                  "delta": delta, "seed": seed, "torch_threads": torch.get_num_threads()},
        "procedures": procedures,
        "shadow_timing": timing,
        "seconds": seconds,
    }


def _comparison_notes(analyses: list[ReplicaAnalysis]) -> list[str]:
    """What a reader would otherwise puzzle over: a DP model that looks leakier than the non-private one."""
    reference = next((a for a in analyses if a.row["epsilon_claimed"] is None), None)
    if reference is None:
        return []
    notes = []
    for a in analyses:
        if a.row["epsilon_claimed"] is None or not a.row["auc"] > reference.row["auc"]:
            continue
        overlap = a.row["auc_ci_lo"] <= reference.row["auc_ci_hi"]
        notes.append(f"{a.row['model']}: AUC {a.row['auc']:.3g} is above the non-private reference's "
                     f"{reference.row['auc']:.3g}. " + (
                         "Their intervals overlap: with this few replicas that is sampling noise, not a leak."
                         if overlap else
                         "Their intervals do not overlap: a DP model should not be easier to attack than the same "
                         "recipe without DP; check the DP configuration (the bound above is the test that decides)."))
    return notes


def run_privacy_audit(
    base: VisionTransformer,
    train: ImageData,
    *,
    test: ImageData | None = None,
    epsilons: Sequence[float] = (1, 3, 8),
    delta: float = 1e-5,
    train_config: TrainConfig | None = None,
    dp_config: DPConfig | None = None,
    include_reference: bool = True,
    targets: Sequence[AuditTarget] | None = None,
    extra_targets: Sequence[AuditTarget] = (),
    population_size: int = 128,
    num_canaries: int = 32,
    num_models: int = 4,
    attacks: Sequence[str] = ATTACKS,
    rmia_population: int = 128,
    confidence: float = 0.95,
    n_bootstrap: int = 500,
    measure_timing: bool = True,
    seed: int = 0,
    run_dir: str | Path | None = None,
    cache: FeatureCache | None = None,
    progress: bool = False,
    threads: int | None = 1,
) -> AuditSection:
    """Black-box membership-inference audit of each target procedure; see the module notes.

    Args:
        base: the base ViT.
        train: the data the audit population is drawn from.
        test: the data RMIA's population z is drawn from (without it RMIA is left out).
        epsilons, delta: the claims audited with ``dp_config`` (default ``DPConfig()``).
        train_config: the non-private reference (default ``TrainConfig()``, TAFT-1).
        include_reference: audit the non-private reference (the positive control).
        targets: audit exactly these instead of the reference + ``epsilons``.
        extra_targets: audited in addition (e.g. ``broken_target("noise-off", 1.0)``).
        population_size, num_canaries, num_models: the audit population, how many of it are
            mislabelled canaries, and M, the replicas per procedure (≥ 3).
        attacks: any of "lira-online", "lira-offline", "loss", "rmia" (the headline attack,
            ``headline_attack``, always runs: the threshold bound uses it).
        confidence: of the verdict (each of the two bounds is taken at 1 − (1 − confidence)/2).
        n_bootstrap: bootstrap replicates of the AUC / TPR intervals.
        measure_timing: also time one tangent vs one non-linear shadow model.
        run_dir: where the replicas' signals are cached (``RUN_DIR/shadows/``).

    Returns:
        the ``membership_inference`` section with one check per target and the ROC curves.
    """
    with torch_threads(threads):
        start = time.perf_counter()
        _check_sizes(num_models, confidence, n_bootstrap, attacks)
        if targets is None:
            targets = default_targets(epsilons, delta, train_config=train_config, dp_config=dp_config,
                                      include_reference=include_reference)
        targets = list(targets) + list(extra_targets)
        if not targets:
            raise ConfigError("nothing to audit: no targets")
        population = make_population(train, population_size, num_canaries, seed)
        masks = membership_masks(num_models, population_size, seed)
        rmia_set = _rmia_reference(test, population, rmia_population) if "rmia" in attacks else None
        if rmia_set is None:
            attacks = [a for a in attacks if a != "rmia"]
        cache = cache or FeatureCache()
        analyses: list[ReplicaAnalysis] = []
        procedures, seconds = [], {}
        used_ids: set[str] = set()
        with Progress(len(targets), "privacy audit", unit="procedure", enabled=progress) as bar:
            for target in targets:
                t0 = time.perf_counter()
                proc_delta = float(target.delta if target.delta is not None else
                                   (target.procedure.delta if isinstance(target.procedure, DPConfig) else delta))
                shadows = train_shadows(base, population, target.procedure, seed=seed, member=masks, cache=cache,
                                        run_dir=run_dir, extra=rmia_set, progress=progress,
                                        desc=f"replicas of {target.name}")
                analyses.append(analyze_replicas(
                    target.name, target.claimed_epsilon, shadows, population.is_canary.numpy(), attacks=attacks,
                    delta=proc_delta, confidence=confidence, n_bootstrap=n_bootstrap, seed=seed,
                    rmia_labels=rmia_set.labels.numpy() if rmia_set is not None else None,
                    check_id=_check_id(target, used_ids)))
                procedures.append(_procedure_row(target, shadows))
                seconds[target.name] = time.perf_counter() - t0
                bar.update()
        timing = None
        if measure_timing:
            reference = next((t.procedure for t in targets if isinstance(t.procedure, TrainConfig)), None)
            timing = time_shadow_training(base, population, reference or train_config or TrainConfig(), seed=seed,
                                          cache=cache)
            timing["note"] = ("one model each on the same random half of the population; tangent and non-linear use the "
                              "shared prefix features; 'uncached' reruns the prefix on the model's own subset")
        body = _body(analyses, procedures, population, num_models, attacks, rmia_set, confidence, n_bootstrap, delta,
                     seed, timing, {"total": time.perf_counter() - start, **seconds})
        roc = pd.concat([a.roc for a in analyses], ignore_index=True) if analyses else None
        return AuditSection(SECTION, body, [a.check for a in analyses], roc)


__all__ = ["ATTACKS", "ATTACK_NAMES", "AttackRow", "AuditTarget", "BUGS", "MembershipRow", "SECTION",
           "analyze_replicas", "broken_target", "default_dp_config", "default_targets", "guess_count",
           "headline_attack", "leave_one_out_scores", "one_run_audit", "run_privacy_audit"]
