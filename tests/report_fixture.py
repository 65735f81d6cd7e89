"""A hand-made run directory shaped like what `privtangent audit` writes, with no training.

Its report.json has the sections, nesting and widths of a real main-job report (a DP statement
with released models and their model cards, wide attack and unlearning tables, nested setups,
long hashes, a check that is inconclusive), plus a ``data`` section and a section the renderer
does not know, so the layout rules are exercised without running an audit.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from audits.report_file import write_report_json

TITLE = "privtangent compliance report (fixture)"
EPSILONS = (1, 3, 8)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def checks(fail: bool, inconclusive: bool, confidence: float) -> list[dict]:
    level = f"{100 * confidence:g}%"
    out = [{"id": f"dp-accounting-eps{e}", "section": "dp_statement", "title": f"accounted ε within the claim (ε = {e})",
            "status": "PASS", "reason": f"PRV ε = {e * 0.993:.3f} ≤ {e} at δ = 1e-05 (RDP cross-check {e * 1.09:.3f})"}
           for e in EPSILONS]
    out += [
        {"id": "dp-delta", "section": "dp_statement", "title": "δ is below 1/N", "status": "PASS",
         "reason": "δ = 1e-05 < 1/N = 0.0002 (N = 5000 training examples)"},
        {"id": "dp-noise-unseeded", "section": "dp_statement", "title": "the DP noise is not seeded", "status": "PASS",
         "reason": "noise drawn from operating-system entropy"},
        {"id": "data-classes", "section": "data", "title": "every class has training and test examples",
         "status": "PASS", "reason": "5 classes; fewest training examples 1000 (sandal), fewest test examples 196"},
        {"id": "utility-dp-above-chance", "section": "utility", "title": "every DP model learns (test accuracy above chance)",
         "status": "PASS", "reason": "every cell above chance (0.2); Ours ≥ Reg in 5 of 6 DP cells (1 seed(s) each)"},
        {"id": "mia-positive-control", "section": "membership_inference",
         "title": "positive control: the audit detects non-private TAFT-1", "status": "PASS",
         "reason": "LiRA offline AUC 0.612 (CI 0.55–0.67) > 0.5; ε lower bound 1.23"},
        {"id": "mia-eps3", "section": "membership_inference", "title": "black-box audit of DP ε=3 at claimed ε = 3",
         "status": "FAIL" if fail else "PASS",
         "reason": "ε lower bound 4.1 exceeds claimed 3" if fail
         else "ε lower bound 0 ≤ claimed 3 (audit power 5.6: no violation found, ε not confirmed)"},
        {"id": "whitebox-eps3", "section": "canary_audit", "title": "white-box canary audit of DP training at claimed ε = 2.979",
         "status": "PASS", "reason": f"ε lower bound 1.91 ≤ claimed 2.979 at {level}; 1000 canaries, 100 guesses, 97 correct"},
        {"id": "unlearning-exact", "section": "unlearning",
         "title": "forgetting is exact: served Δw = recomposition without the removed shards", "status": "PASS",
         "reason": "1 active shard(s) recomposed; tensor sha256 5b0813a028952857… vs served 5b0813a028952857…"},
        {"id": "unlearning-ledger", "section": "unlearning",
         "title": "the ledger's hash chain and before/after hashes match the served model", "status": "PASS",
         "reason": "3 record(s), head fab74a745d5cb5a5…"},
        {"id": "unlearning-mia", "section": "unlearning", "title": "forgotten samples look like never-seen samples to LiRA",
         "status": "SKIP" if inconclusive else "PASS",
         "reason": "inconclusive: the positive control failed — the forgotten samples were not detectable before "
                   "removal either (AUC 0.432, permutation p = 0.743 ≥ 0.05)" if inconclusive
         else "after removal AUC 0.51 is within the never-seen interval"},
    ]
    return out


def dp_statement() -> dict:
    return {
        "privacy_unit": "one training example (an image and its label); add/remove-one adjacency",
        "accountant": "PRV (Gopi, Lee, Wutschitz 2021), conservative upper estimate",
        "cross_check": "RDP (Mironov 2017; Opacus)",
        "mechanism": "DP-GD (full batch)",
        "sampling": "full-batch",
        "covered": "every access to the private training set during fine-tuning of the model that is released: each "
                   "step's gradient is clipped per example and noised. The base model was pretrained on separate, "
                   "public data and is not covered.",
        "tuning_accounted": False,
        "tuning_note": "not accounted for in epsilon (choose C and lr on public data)",
        "noise_seeded": False,
        "release_note": "noise drawn from operating-system entropy",
        "training_set_size": 5000,
        "runs": [{"epsilon_target": e, "epsilon": e * 0.993, "epsilon_rdp": e * 1.09, "delta": 1e-5,
                  "sigma": 10.0 / e, "clip": 1.0, "sample_rate": 1.0, "steps": 50, "test_accuracy": 0.7 + e / 100,
                  "model": f"models/eps-{e}", "model_sha256": sha(f"model {e}")} for e in EPSILONS],
    }


def membership_inference(confidence: float) -> dict:
    models = ["non-private TAFT-1", *[f"DP ε={e}" for e in EPSILONS]]
    return {
        "summary": "Each procedure was run on random halves of the audit population; every model was attacked with "
                   "the others as shadow models. Audit power is the largest bound a perfect attack could reach.",
        "rows": [{"model": m, "epsilon_claimed": None if i == 0 else EPSILONS[i - 1], "auc": 0.6123 - i / 50,
                  "auc_ci_lo": 0.55 - i / 50, "auc_ci_hi": 0.67 - i / 50, "tpr_at_fpr_1pct": 0.0412,
                  "epsilon_lb": 1.234 if i == 0 else 0.0, "audit_power": 5.6,
                  "method": "one-run canary game (Steinke et al. 2023)", "status": None if i == 0 else "PASS"}
                 for i, m in enumerate(models)],
        "attacks": [{"model": m, "attack": a, "auc": 0.61 - i / 40 - j / 100, "auc_ci_lo": 0.55, "auc_ci_hi": 0.68,
                     "tpr_at_fpr_0_1pct": 0.0121, "tpr_at_fpr_1pct": 0.0181 + j / 100, "tpr_at_fpr_1pct_ci_lo": 0.0,
                     "tpr_at_fpr_1pct_ci_hi": 0.1566, "members": 166, "nonmembers": 134 + i}
                    for i, m in enumerate(models) for j, a in enumerate(["LiRA offline", "LiRA online", "LOSS", "RMIA"])],
        "setup": {"population": {"name": "fashion-near audit population (100, 32 canaries)", "size": 100,
                                 "content_sha256": sha("population")},
                  "attacks": ["LiRA online", "LiRA offline", "LOSS", "RMIA"], "confidence": confidence,
                  "confidence_per_bound": 0.975, "n_bootstrap": 500, "delta": 1e-5},
        "seconds": {"total": 10.73, "non-private TAFT-1": 2.618},
    }


def canary_audit(confidence: float) -> dict:
    rows = [{"method": method, "epsilon_claimed": e, "num_canaries": 1000, "num_guesses": 100, "num_correct": 97,
             "epsilon_lb": 1.91 * k, "tightness": 0.6367 * k, "ideal_tightness": 0.65, "ideal_epsilon_lb": 1.95,
             "audit_power": 6.616, "confidence": confidence, "status": "PASS", "seconds": 2.06, "model": "DP training"}
            for e in (0.9999, 2.979) for k, method in enumerate(["white-box binomial (Steinke et al. 2023)",
                                                                 "white-box f-DP (accountant's curve)"], start=1)]
    return {"scope": "A white-box audit inserts gradient canaries into a separate training run of the same "
                     "configuration and observes every privatized update; a pass does not prove (ε, δ)-DP.",
            "confidence": confidence, "rows": rows,
            "claims": [{"epsilon": 2.979, "delta": 1e-5, "noise_multiplier": 3.3, "max_grad_norm": 1.0, "mu": 1.666,
                        "target_epsilon": 3}]}


def unlearning(confidence: float) -> dict:
    before, after = sha("served before"), sha("served after")
    return {
        "summary": "A forget request was served by removing the shard that held the samples; the served model was "
                   "recomposed from the shard checkpoints and checked bit for bit.",
        "ledger": {"records": 3, "head": sha("ledger head"), "verified": True,
                   "requests": [{"request": 1, "mode": "remove", "before": before, "after": after,
                                 "shards_removed": [0, 3], "active_shards": 8, "seconds": 0.04661}],
                   "served_sha256": after, "forgotten_ids": 10},
        "exactness": [
            {"check": "served Δw = composition of the stored Δw of the active shards", "status": "PASS",
             "detail": "1 active shard(s) recomposed; tensor sha256 5b0813a028952857… vs served 5b0813a028952857…",
             "recomposed_sha256": sha("recomposed"), "served_sha256": sha("recomposed")},
            {"check": "every shard that held a forgotten ID was removed or retrained", "status": "PASS",
             "detail": "shards holding forgotten IDs: [0, 3]; still served unchanged: []"},
            {"check": "ledger before/after hashes chain to the served model", "status": "PASS",
             "detail": f"1 request(s): before/after hashes chain from {before[:12]}… to the served {after[:12]}…"}],
        "mia_before_after": [
            {"label": "forgotten, before removal", "auc": 0.81, "auc_ci_lo": 0.75, "auc_ci_hi": 0.86, "p_value": 0.0123},
            {"label": "forgotten, after removal", "auc": 0.5123, "auc_ci_lo": 0.45, "auc_ci_hi": 0.57, "p_value": 0.4711},
            {"label": "never seen", "auc": 0.5, "auc_ci_lo": 0.44, "auc_ci_hi": 0.56}],
        "mia": {"tests": {"before": {"auc": 0.81, "p_auc_greater": 0.0123, "null_auc_median": 0.5025,
                                     "null_auc_lo": 0.3024, "null_auc_hi": 0.7, "permutations": 2000}}},
        "setup": {"num_shards": 10, "training": {"tangent": True, "blocks": 1, "regime": "full", "lr": 0.01},
                  "forgotten_samples": 10, "confidence": confidence},
    }


def make_run(run_dir: Path, fail: bool = False, inconclusive: bool = True, confidence: float = 0.95,
             stored_verdict: str | None = None) -> Path:
    """A run directory with report.json, roc.csv and the model cards of the released models.

    ``stored_verdict`` overrides the verdict written to the file (to test that it is recomputed).
    """
    report = {
        "title": TITLE,
        "subtitle": "fixture run for tests.",
        "created_at": "2026-11-23T12:00:00+00:00",
        "privtangent_version": "0.1.0",
        "verdict": stored_verdict or ("FAIL" if fail else "PASS"),
        "summary": "A hand-made fixture: the model was fine-tuned with differential privacy at ε ∈ {1, 3, 8}.",
        "checks": checks(fail, inconclusive, confidence),
        "dp_statement": dp_statement(),
        "data": {"classes": [{"class": name, "train": 1000 + i, "test": 200 - i}
                             for i, name in enumerate(["sandal", "shirt", "sneaker", "bag", "ankle boot"])],
                 "warnings": ["class 'bag' has 3 duplicated images in the training set (the duplicates count as "
                              "separate examples for the privacy unit)"]},
        "utility": {"rows": [{"regime": r, "epsilon": e, "ours": 0.6 + e / 50 + i / 100, "ours_std": 0.0123,
                              "reg": 0.58 + e / 50, "reg_std": 0.0234, "seeds": 3}
                             for i, r in enumerate(["full", "bitfit", "layernorm", "fc"]) for e in EPSILONS],
                    "setup": {"regimes": ["full", "bitfit", "layernorm", "fc"], "noise_multipliers": {"1": 11.8, "8": 1.898},
                              "recipe": {"epochs": 10, "clip": 1.0, "lr": 0.01, "kinds": ["Ours", "Reg"]}}},
        "membership_inference": membership_inference(confidence),
        "canary_audit": canary_audit(confidence),
        "unlearning": unlearning(confidence),
        "reproducibility": {"versions": {"torch": "2.14.1", "timm": "1.0.31"}, "seeds": {"train": 0},
                            "command": "privtangent audit --out x",
                            "hashes": {"train_data_sha256": sha("train data")}},
        "energy_audit": {"note": "a section this renderer does not know", "joules": 1234.5,
                         "devices": ["cpu0", "cpu1"], "per_stage": {"training": 1000.25, "audit": 234.25}},
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    write_report_json(run_dir, report)
    for e in EPSILONS:
        card = run_dir / "models" / f"eps-{e}" / "model_card.md"
        card.parent.mkdir(parents=True, exist_ok=True)
        card.write_text(f"# model card, ε = {e}\n")
    fpr = np.linspace(0, 1, 50)
    pd.DataFrame({"curve": ["non-private"] * 50, "fpr": fpr, "tpr": np.sqrt(fpr)}).to_csv(run_dir / "roc.csv", index=False)
    return run_dir
