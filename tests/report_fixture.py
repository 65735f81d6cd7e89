"""A small, hand-made run directory: the results a `privtangent audit` writes, no training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from audits.report_file import write_report_json


def make_run(run_dir: Path, fail: bool = False) -> Path:
    checks = [
        {"id": "dp-accounting", "section": "dp_statement", "title": "ε accounted (PRV) within the target",
         "status": "PASS", "reason": "ε = 2.98 ≤ 3 at δ = 1e-05 (RDP cross-check 3.21)"},
        {"id": "mia-eps3", "section": "membership_inference", "title": "black-box audit at ε = 3",
         "status": "FAIL" if fail else "PASS",
         "reason": "ε lower bound 4.1 exceeds claimed 3" if fail else "ε lower bound 0 ≤ claimed 3"},
        {"id": "unlearning-exact", "section": "unlearning", "title": "recomposition is bit-identical", "status": "PASS",
         "reason": "sha256 of served Δw equals recomposition"},
    ]
    report = {
        "title": "privtangent compliance report (fixture)",
        "subtitle": "fixture run for tests.",
        "created_at": "2026-11-23T12:00:00+00:00",
        "privtangent_version": "0.1.0",
        "verdict": "FAIL" if fail else "PASS",
        "checks": checks,
        "summary": "A hand-made fixture.",
        "dp_statement": {
            "privacy_unit": "one training example (an image and its label)",
            "adjacency": "add/remove one example",
            "accountant": "PRV", "cross_check": "RDP", "sampling": "full-batch DP-GD (q = 1)",
            "tuning_accounted": False,
            "runs": [{"epsilon_target": e, "epsilon": e * 0.993, "epsilon_rdp": e * 1.09, "delta": 1e-5,
                      "sigma": 10.0 / e, "clip": 1.0, "sample_rate": 1.0, "steps": 50, "test_accuracy": 0.7 + e / 100}
                     for e in (1, 3, 8)],
        },
        "utility": {"rows": [{"regime": r, "epsilon": e, "ours": 0.6 + e / 50 + i / 100, "reg": 0.58 + e / 50}
                             for i, r in enumerate(["full", "fc"]) for e in (1, 3, 8)]},
        "membership_inference": {"rows": [{"model": "non-private", "epsilon_claimed": None, "auc": 0.6123,
                                           "tpr_at_fpr_1pct": 0.0412, "epsilon_lb": 1.234, "audit_power": 5.6,
                                           "status": "PASS"}]},
        "canary_audit": {"rows": [{"method": "white-box f-DP", "epsilon_claimed": 3, "num_canaries": 1000,
                                   "num_guesses": 100, "num_correct": 97, "epsilon_lb": 1.91, "tightness": 0.6367,
                                   "ideal_tightness": 0.65, "status": "PASS"}]},
        "unlearning": {"mia_before_after": [
            {"label": "forgotten, before removal", "auc": 0.81, "auc_ci_lo": 0.75, "auc_ci_hi": 0.86},
            {"label": "forgotten, after removal", "auc": 0.51, "auc_ci_lo": 0.45, "auc_ci_hi": 0.57},
            {"label": "never seen", "auc": 0.5, "auc_ci_lo": 0.44, "auc_ci_hi": 0.56}]},
        "reproducibility": {"versions": {"torch": "2.14.1"}, "seeds": {"train": 0}, "command": "privtangent audit --out x"},
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    write_report_json(run_dir, report)
    fpr = np.linspace(0, 1, 50)
    pd.DataFrame({"curve": ["non-private"] * 50, "fpr": fpr, "tpr": np.sqrt(fpr)}).to_csv(run_dir / "roc.csv", index=False)
    return run_dir
