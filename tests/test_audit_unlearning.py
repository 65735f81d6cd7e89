"""The unlearning audit: exactness, ledger, forgotten vs never-seen (with a positive control), accuracy."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from audits.results import AuditSection
from audits.unlearning import audit_unlearning, build_unlearning_scenario, exactness_rows
from privtangent.data import load_task
from privtangent.threads import torch_threads


@pytest.fixture(scope="module")
def scenario(base_model, tmp_path_factory):
    """The embedded default: 2 shards of 320 samples, 32 mislabelled canaries in shard 0, forgotten."""
    with torch_threads(1):
        return build_unlearning_scenario(base_model, load_task("fashion-near", "train", limit=2000),
                                         test=load_task("fashion-near", "test", limit=1000),
                                         run_dir=tmp_path_factory.mktemp("unlearning"))


@pytest.fixture(scope="module")
def audited(scenario, base_model):
    return audit_unlearning(scenario, base_model, n_bootstrap=200)


def statuses(result):
    return {c.id: c.status for c in result.checks}


def copy_scenario(scenario, tmp_path):
    from privtangent.shards.sharding import copy_model

    copy_model(scenario.model_dir, tmp_path / "copy")
    return dataclasses.replace(scenario, model_dir=tmp_path / "copy")


def test_audit_passes_after_shard_removal(audited, scenario):
    assert audited.key == "unlearning" and isinstance(audited, AuditSection)
    assert statuses(audited) == {"unlearning-exact": "PASS", "unlearning-ledger": "PASS", "unlearning-mia": "PASS"}
    body = audited.body
    assert all(r["status"] == "PASS" for r in body["exactness"])
    before, after, never = body["mia_before_after"]
    assert [before["label"], after["label"], never["label"]] == ["forgotten, before removal", "forgotten, after removal",
                                                                 "never seen"]
    assert before["p_value"] < 0.05 and before["auc_ci_lo"] > 0.5  # the positive control: detectable before removal
    assert after["p_value"] >= 0.025 and after["p_value_tpr"] >= 0.025  # indistinguishable from never seen after
    assert never["auc_ci_lo"] <= after["auc"] <= never["auc_ci_hi"]
    assert body["ledger"]["verified"] and body["ledger"]["requests"][0]["before"] == scenario.before_sha256
    assert body["ledger"]["requests"][0]["shards_removed"] == [0]
    labels = [r["label"] for r in body["accuracy"]]
    assert labels == ["before removal", "after removal"]
    assert all(0.5 < r["test_accuracy"] <= 1 and 0.5 < r["retained_accuracy"] <= 1 for r in body["accuracy"])
    assert audited.roc is None  # the report's ROC figure is the black-box audit's
    json.dumps(body)


def test_audit_fails_when_removed_shard_is_secretly_kept(scenario, base_model, tmp_path):
    """The directory says shard 0 was removed, but the served Δw is still the old composition."""
    from privtangent.io.checkpoint import save_checkpoint
    from privtangent.shards import ShardedModel

    copy = copy_scenario(scenario, tmp_path)
    manifest = ShardedModel(copy.model_dir).served_manifest()
    save_checkpoint(copy.model_dir, scenario.before_delta,
                    {"kind": manifest["kind"], "state": manifest["state"]}, name="model")
    result = audit_unlearning(copy, base_model, n_bootstrap=200)
    assert statuses(result) == {"unlearning-exact": "FAIL", "unlearning-ledger": "FAIL", "unlearning-mia": "FAIL"}
    rows = {r["check"]: r["status"] for r in result.body["exactness"]}
    assert rows["served Δw = composition of the stored Δw of the active shards"] == "FAIL"
    after = result.body["mia_before_after"][1]
    assert after["auc"] > result.body["mia_before_after"][2]["auc_ci_hi"] and after["p_value"] < 0.025


def test_stale_checkpoint_and_edited_ledger_are_found(scenario, tmp_path):
    copy = copy_scenario(scenario, tmp_path)
    shards = copy.model_dir / "shards"
    kept = next(p for p in shards.iterdir() if p.suffix == ".json")
    (shards / "shard-0000.json").write_text(kept.read_text())  # a "removed" shard's file left behind
    ledger = copy.model_dir / "ledger.jsonl"
    lines = ledger.read_bytes().split(b"\n")
    lines[1] = lines[1].replace(b'"mode":"remove"', b'"mode":"retrain"')
    ledger.write_bytes(b"\n".join(lines))
    rows, summary = exactness_rows(copy.model_dir, scenario.before_sha256)
    status = {r["check"]: r["status"] for r in rows}
    assert status["no checkpoint of a dropped or superseded shard is left"] == "FAIL"
    assert status["ledger hash chain verifies"] == "FAIL"
    assert status["served Δw = composition of the stored Δw of the active shards"] == "PASS"
    assert not summary["verified"]


def test_positive_control_failure_is_inconclusive(scenario, base_model):
    """If the samples were not detectable before removal either, the audit cannot say PASS."""
    from privtangent.shards import ShardedModel

    served, _ = ShardedModel(scenario.model_dir).served()
    blind = dataclasses.replace(scenario, before_delta=served)
    result = audit_unlearning(blind, base_model, n_bootstrap=200)
    check = next(c for c in result.checks if c.id == "unlearning-mia")
    assert check.status == "SKIP" and "inconclusive" in check.reason


def test_permutation_test_is_calibrated():
    """Exchangeable scores: p-values roughly uniform; a shift is detected."""
    import numpy as np

    from audits.unlearning import permutation_test

    rng = np.random.default_rng(0)
    p = [permutation_test(rng.normal(size=32), rng.normal(size=64), n_permutations=500, seed=k)["p_auc_two_sided"]
         for k in range(60)]
    assert 0.3 < float(np.mean(p)) < 0.7 and np.mean(np.array(p) < 0.05) < 0.15
    shifted = permutation_test(rng.normal(1.5, 1, 32), rng.normal(size=64), n_permutations=500)
    assert shifted["p_auc_greater"] < 0.01 and shifted["auc"] > shifted["null_auc_hi"]


def test_bare_model_directory(scenario, base_model):
    result = audit_unlearning(scenario.model_dir, base_model)
    assert statuses(result) == {"unlearning-exact": "PASS", "unlearning-ledger": "PASS", "unlearning-mia": "SKIP"}
    assert result.roc is None and result.body["ledger"]["forgotten_ids"] == len(scenario.forget_ids)


def test_metrics_row_without_bootstrap_has_no_intervals():
    """With n_bootstrap = 0 the row carries the point estimates and None for every interval."""
    from attacks.metrics import attack_metrics
    from audits.unlearning.membership import _metrics_row

    rng = np.random.default_rng(0)
    member = np.r_[np.ones(50, bool), np.zeros(50, bool)]
    scores = rng.normal(size=100) + member
    met = attack_metrics(scores, member, n_bootstrap=0)
    row = _metrics_row("forgotten", met, 50, 50)
    assert row["auc"] == pytest.approx(met.auc) and 0.5 < row["auc"] < 1.0
    assert row["auc_ci_lo"] is None and row["auc_ci_hi"] is None
    assert row["tpr_at_fpr_1pct_ci_lo"] is None and row["tpr_at_fpr_1pct_ci_hi"] is None
    assert row["tpr_at_fpr_1pct"] == met.tpr_at_fpr[0.01]
    with_ci = _metrics_row("forgotten", attack_metrics(scores, member, n_bootstrap=50, seed=0), 50, 50)
    assert with_ci["auc_ci_lo"] <= with_ci["auc"] <= with_ci["auc_ci_hi"]
