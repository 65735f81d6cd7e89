"""The audit of a released model directory (``privtangent audit --model DIR``).

What is audited is the artifact a team will release, not a fresh training run: its manifest's
DP statement, with the accounting re-derived independently from the σ, q, T and δ it records
(a manifest whose σ is lower than its ε needs FAILs); its measured test accuracy; and, through
the black-box and white-box audits, replicas of *its* training recipe (the ``DPConfig`` in its
manifest) on *its* training data (reloaded and checked against the recorded content hash). The
report names the artifact's sha256 on its first page.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from audits.gate import data_section, delta_check, noise_check
from audits.results import Check, Status
from audits.stages import AuditRun, accountant_name, base_statement
from privtangent.config.schema import PrivacySpec, RunConfig
from privtangent.dp.accounting import epsilon, epsilon_report
from privtangent.dp.config import DPConfig
from privtangent.features import FeatureCache
from privtangent.release import artifact_sha256, load_model, read_manifest, training_data, verified_base
from privtangent.train import TrainConfig
from privtangent.train.evaluate import evaluate

SECTION = "dp_statement"


def artifact_config(manifest: dict[str, Any], config: RunConfig) -> RunConfig:
    """``config`` (the audit sizes) with the model part and the DP recipe of the artifact's manifest."""
    training = TrainConfig.from_dict(manifest["config"], section="model.json config")
    privacy = config.privacy
    if manifest.get("dp_config"):
        dp = DPConfig.from_dict(manifest["dp_config"], section="model.json dp_config")
        privacy = PrivacySpec(epsilons=(float(dp.target_epsilon or manifest["privacy"]["target_epsilon"]),),
                              mechanism=dp)
    return RunConfig(model=config.model, data=config.data, training=training, privacy=privacy, regimes=config.regimes,
                     shards=config.shards, audit=config.audit, out=config.out, threads=config.threads,
                     device=config.device, source=config.source)


def load_artifact(run: AuditRun, model_dir: Path) -> dict[str, Any]:
    """Base, released model and data of ``model_dir``, each verified; returns the manifest."""
    manifest = read_manifest(model_dir)
    run.base = verified_base(manifest, progress=run.progress)
    run.released = load_model(model_dir, run.base)
    run.base_info = {**manifest["base"], "weights_sha256": manifest["base"]["sha256"]}
    run.train, run.test = training_data(manifest, run.base)
    run.data_info = dict(manifest["data"]["train"])
    section, check = data_section(run.train, run.test, run.data_info)
    run.result.sections["data"] = section
    run.result.checks.append(check)
    return manifest


def _accounting_checks(privacy: dict[str, Any]) -> tuple[list[Check], dict[str, Any]]:
    """The manifest's claim re-derived from its own σ, q, T, δ by the accountant it names."""
    sigma, q, steps, delta = privacy["sigma"], privacy["sample_rate"], privacy["steps"], privacy["delta"]
    target = privacy["target_epsilon"]
    derived = epsilon(sigma, q, steps, delta, privacy["accountant"]) if sigma > 0 else math.inf
    report = epsilon_report(sigma, q, steps, delta) if sigma > 0 else {}
    ok = derived <= target * (1 + 1e-9)
    consistent = math.isclose(derived, privacy["epsilon"], rel_tol=1e-6) if math.isfinite(derived) else False
    checks = [Check(f"dp-accounting-eps{target:g}", SECTION, f"the released model's σ gives at most the claimed ε = {target:g}",
                    Status.PASS if ok else Status.FAIL,
                    f"re-derived from the manifest's σ = {sigma:.4g}, q = {q:.4g}, T = {steps}, δ = {delta:g} by "
                    f"{privacy['accountant'].upper()}: ε = {derived:.4g} {'≤' if ok else '>'} {target:g}"),
              Check("dp-manifest-consistent", SECTION, "the manifest's accounted ε is the one its parameters give",
                    Status.PASS if consistent else Status.FAIL,
                    f"recorded ε = {privacy['epsilon']:.6g}, re-derived ε = {derived:.6g}")]
    return checks, {"epsilon_rederived": derived, "epsilon_rdp_rederived": report.get("rdp")}


def statement_stage(run: AuditRun) -> None:
    """The released model: its identity, its DP statement (re-derived), its measured accuracy."""
    manifest = run.artifact
    privacy = manifest.get("privacy") or {"private": False}
    test = run.test_data
    released = run.released
    if released is None:
        raise RuntimeError("the statement stage needs the released model: load_artifact runs first")
    measured = evaluate(released, FeatureCache().features(released.base, released.start, test),
                        test.labels, test.num_classes, None, manifest["config"]["output"])["accuracy"]
    run.result.sections["released_model"] = {
        "directory": str(run.model_dir), "sha256": artifact_sha256(manifest), "method": manifest["method"],
        "base_sha256": manifest["base"]["sha256"], "train_data_sha256": manifest["data"]["train"]["content_sha256"],
        "test_accuracy_logged": manifest["metrics"].get("test_accuracy"), "test_accuracy_measured": measured,
        "test_samples": len(test)}
    if not privacy.get("private"):
        run.result.checks.append(Check("dp-claim", SECTION, "the released model was trained with differential privacy",
                                       Status.FAIL, "model.json records no DP guarantee: it was trained without DP"))
        run.result.sections[SECTION] = {"privacy_unit": "none", "runs": []}
        return
    checks, derived = _accounting_checks(privacy)
    checks += [delta_check(privacy["delta"], privacy["dataset_size"], SECTION), noise_check(privacy["noise_seeded"])]
    run.result.checks.extend(checks)
    run.result.sections[SECTION] = {
        "privacy_unit": privacy["unit_of_privacy"], "accountant": accountant_name(privacy["sample_rate"]),
        "mechanism": privacy["mechanism"], "sampling": privacy["sampling"], "clipping": privacy["clipping"],
        "noise": privacy["noise"], "noise_seeded": privacy["noise_seeded"], "tuning_note": privacy["hyperparameter_tuning"],
        "covered": ("every access to the private training set during fine-tuning of this model: each step's gradient "
                    "is clipped per example and noised. " + base_statement(run.base_info)
                    + " The audit's own replicas are not released."),
        "training_set_size": privacy["dataset_size"],
        "runs": [{"epsilon_target": privacy["target_epsilon"], "epsilon": privacy["epsilon"], **derived,
                  "delta": privacy["delta"], "sigma": privacy["sigma"], "clip": privacy["max_grad_norm"],
                  "sample_rate": privacy["sample_rate"], "steps": privacy["steps"], "test_accuracy": measured}],
    }


__all__ = ["artifact_config", "load_artifact", "statement_stage"]
