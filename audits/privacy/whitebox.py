"""The white-box audit of privtangent's DP training: gradient canaries watched at every step.

**Game** (Steinke, Nasr, Jagielski 2023, one run; Nasr et al. 2023 for the white-box threat
model). For each claimed ε, a separate canary run of the audited configuration
(``audits.privacy.canary_runs``) gets m Dirac gradient canaries, each included independently
with probability ½; the auditor observes every privatized update and knows everything except
the secret bits and the mechanism's noise. The scores and the subtraction of the data's
gradient are described in ``canary_runs``; the guesses, the bounds and the confidence each
bound runs at in ``audits.privacy.game``.

**What this audits**: the privatization of a record's gradient as implemented (the clipping
rule and the clipping norm, the Gaussian noise and its scale, the divisor, the number of
steps, the sample rate) against the accountant's claim for the configuration.
**What it does not**: whether the per-sample gradients of real records are computed
correctly (canary gradients are injected after the forward/backward pass), the data
pipeline, the sampler's secrecy, and the released model itself (the canary run is separate);
a weaker adversary (who sees only the final model) may learn far less than this bound.
A pass does not prove (ε, δ)-DP; an over-claim refutes the claim.

**Broken-DP controls** (``bug=``, ``audits.privacy.claims.BUGS``): ``noise-half`` (noise std
× ½), ``clip-off`` (C = 10⁶ with the claimed noise std σ·C), ``wrong-steps`` (σ calibrated for
T/10 steps, T run), ``wrong-sample-rate`` (σ calibrated for a sample rate 10× smaller than the
one run). Each claims the target ε; each must FAIL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from timm.models.vision_transformer import VisionTransformer

from audits.choices import WHITEBOX_CANARIES
from audits.privacy.canaries import DEFAULT_NORM_FACTOR
from audits.privacy.canary_runs import DEFAULT_DATA_LIMIT, CanaryRun, canary_run
from audits.privacy.claims import Claim, claim_for, general_hypothesis
from audits.privacy.game import (
    IDEAL_SIMULATIONS,
    MIN_POWER_RATIO,
    BoundRow,
    bound_rows,
    choose_num_guesses,
)
from audits.results import AuditSection, Check, Status
from privtangent.data.dataset import ImageData
from privtangent.dp.config import DPConfig
from privtangent.dp.per_sample import trainable
from privtangent.errors import ConfigError
from privtangent.features import FeatureCache
from privtangent.train import prepare_model

SECTION = "canary_audit"
DEFAULT_CANARIES = WHITEBOX_CANARIES


def whitebox_scope() -> str:
    return ("A white-box audit inserts gradient canaries into a separate training run of the same configuration and "
            "observes every privatized update, so it tests the DP mechanism as implemented (clipping, noise scale, "
            "divisor, number of steps, sample rate) against the accountant's claim; it does not test the per-sample "
            "gradients of real records, the data pipeline or the released model, and a pass does not prove (ε, δ)-DP.")


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be an integer ≥ 1, got {value!r}")
    return int(value)


def whitebox_check(name: str, run: CanaryRun, rows: list[BoundRow], m: int, r: int, bug: str | None) -> Check:
    """The release check of one canary run: FAIL when any bound exceeds the claimed ε."""
    claim = run.claim
    claimed = claim.target_epsilon or claim.epsilon  # the claim as made (the accountant's ε is at most this)
    slug = f"whitebox-eps{claimed:g}" + (f"-{bug}" if bug else "")
    title = f"white-box canary audit of {name} at claimed ε = {claimed:g}"
    done = [row for row in rows if row.get("epsilon_lb") is not None]
    skipped = "".join(f"; {row['method']}: {row['error']}" for row in rows if row.get("epsilon_lb") is None)
    if not done:
        return Check(slug, SECTION, title, Status.SKIP, "no bound could be computed" + skipped)
    failed = any(row["status"] == "FAIL" for row in done)
    worst = max(done, key=lambda row: row["epsilon_lb"] or 0.0)
    power = max(row["audit_power"] or 0.0 for row in done)
    reason = (f"ε lower bound {worst['epsilon_lb']:.3g} ({worst['method']}) {'exceeds' if failed else '≤'} the "
              f"accounted ε = {claim.epsilon:.4g} of the claim ε = {claimed:g}; tightness {worst['tightness']:.2f} (ideal mechanism {worst['ideal_tightness']:.2f}); "
              f"{m} canaries, {r} guesses, {worst['num_correct']} correct; audit power {power:.3g}"
              + ("" if failed or power > claim.epsilon else " < claimed ε: this audit could not have refuted the claim")
              + skipped + (f"; {run.details['replay_warning']}" if "replay_warning" in run.details else ""))
    return Check(slug, SECTION, title, Status.FAIL if failed else Status.PASS, reason)


def _capped_canaries(base: VisionTransformer, train: ImageData, config: DPConfig, m: int) -> tuple[int, list[str]]:
    """m, capped at the number of trained coordinates (one Dirac canary each)."""
    coords = sum(int(p.numel()) for p in trainable(prepare_model(base, train.num_classes,
                                                                 config.train_config())).values())
    if m <= coords:
        return m, []
    return coords, [f"{m} canaries requested; capped at the {coords} trained coordinates (one Dirac canary each)"]


def run_whitebox_audit(base: VisionTransformer, train: ImageData, dp_config: DPConfig, *,
                       num_canaries: int = DEFAULT_CANARIES, num_guesses: int | None = None, confidence: float = 0.95,
                       seed: int = 0, epsilons: Sequence[float] | None = None, bug: str | None = None,
                       data_limit: int | None = DEFAULT_DATA_LIMIT, data_gradient: str = "subtract",
                       canary_norm_factor: float = DEFAULT_NORM_FACTOR, ideal_simulations: int = IDEAL_SIMULATIONS,
                       fdp_method: str = "auto", cache: FeatureCache | None = None, noise_seed: int | None = None,
                       threads: int | None = 1, progress: bool = False, label: str | None = None) -> AuditSection:
    """The white-box canary audit of ``dp_config`` (one canary run per claimed ε).

    Args:
        base, train: the base model and the private training set of the audited configuration.
        dp_config: a ``DPConfig``; with ``epsilons`` it is re-targeted at each ε (σ calibrated).
        num_canaries: m, the size of the one-run game (capped at the number of trained coordinates).
        num_guesses: r, fixed in advance; default ``choose_num_guesses(m, claim)`` per ε, a rule
            of m and the claim evaluated before the canary run.
        bug: None, or a broken-DP control (``audits.privacy.claims.BUGS``) that must FAIL.
        data_limit: training records in each canary run (None: all; see ``canary_runs``).
        fdp_method: the f-DP bound's method, "auto" (certified LP + recursion + binomial) or "recursion".
        noise_seed: seed of the canary runs' DP noise (default: OS entropy).

    Returns:
        the ``canary_audit`` section: body {hypothesis, scope, method, guess_rule, rows, runs, claims},
        one check per ε.
    """
    m = _count(num_canaries, "num_canaries")
    if num_guesses is not None and _count(num_guesses, "num_guesses") > m:
        raise ConfigError(f"num_guesses ({num_guesses}) must not exceed num_canaries ({m})")
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")
    configs = [dp_config] if epsilons is None else [dp_config.replace(target_epsilon=float(e), noise_multiplier=None)
                                                     for e in epsilons]
    m, notes = _capped_canaries(base, train, configs[0], m)
    if num_guesses is not None and num_guesses > m:
        raise ConfigError(f"num_guesses ({num_guesses}) exceeds the {m} trained coordinates available as canaries")
    name = label or ("DP training" if bug is None else f"DP training ({bug}: injected bug)")
    rows: list[BoundRow] = []
    checks: list[Check] = []
    claims: list[Claim] = []
    runs: list[dict[str, Any]] = []
    for i, cfg in enumerate(configs):
        claim, _ = claim_for(cfg, len(train), bug)
        r = int(num_guesses) if num_guesses is not None else choose_num_guesses(m, claim, seed=seed)
        run = canary_run(base, train, cfg, num_canaries=m, seed=seed + 1000 * i, bug=bug, data_limit=data_limit,
                         data_gradient=data_gradient, canary_norm_factor=canary_norm_factor, cache=cache,
                         noise_seed=None if noise_seed is None else noise_seed + i, threads=threads,
                         progress=progress)
        these = bound_rows(run, num_guesses=r, confidence=confidence, ideal_simulations=ideal_simulations,
                           seed=seed + 1000 * i, fdp_method=fdp_method)
        for row in these:
            row["model"] = name
        rows += these
        claims.append(run.claim)
        runs.append({"epsilon_claimed": run.claim.epsilon, "seconds": run.seconds, "steps_observed": run.steps,
                     **run.details})
        checks.append(whitebox_check(name, run, these, m, r, bug))
    body: dict[str, Any] = {
        "hypothesis": general_hypothesis(claims),
        "scope": whitebox_scope(),
        "method": (f"{m} Dirac gradient canaries (norm {canary_norm_factor:g}·C, distinct random coordinates of Δw), "
                   "each included with probability ½, in a separate canary run of the same configuration (never "
                   "released); every privatized update observed; "
                   + ("the known clipped data sum subtracted (the auditor replays the run from the observed updates)"
                      if data_gradient == "subtract" else
                      "the data's gradient left in the scores as extra noise (valid, less powerful)")),
        "guess_rule": ("top ⌊r/2⌋ scores guessed in, bottom r − ⌊r/2⌋ guessed out, abstain on the rest; r fixed "
                       "before the canary run from m and the claim alone "
                       + ("(given)" if num_guesses is not None else
                          f"(the r in m/40…m/4 with the best simulated tightness whose audit power ≥ "
                          f"{MIN_POWER_RATIO:g}× the claimed ε)")
                       + "; every bound on the whole game of m canaries, guessed or not"),
        "confidence": confidence,
        "multiple_testing": ("full batch: none needed, the f-DP bound (method auto) already includes the binomial "
                             "bound at the same δ and confidence, so the verdict fails exactly when it does; "
                             "otherwise each bound at 1 − α/k (Bonferroni)"),
        "rows": rows,
        "runs": runs,
        "claims": [c.to_dict() for c in claims],
    }
    if notes:
        body["note"] = "; ".join(notes)
    return AuditSection(SECTION, body, checks)


__all__ = ["DEFAULT_CANARIES", "SECTION", "run_whitebox_audit", "whitebox_check", "whitebox_scope"]
