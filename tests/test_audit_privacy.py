"""The black-box privacy audit: shadows, attacks, ε lower bounds, verdicts, positive controls."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from audits.population import PopulationFeatureCache, make_population, membership_masks
from audits.privacy.blackbox import (
    AuditTarget,
    analyze_replicas,
    broken_target,
    guess_count,
    headline_attack,
    run_privacy_audit,
)
from audits.results import AuditSection
from audits.shadows import ShadowSet, train_shadows
from privtangent.data import load_task
from privtangent.errors import ConfigError
from privtangent.features import FeatureCache
from privtangent.train import TrainConfig
from tests.conftest import make_tiny_vit

ROW_KEYS = {"model", "epsilon_claimed", "auc", "auc_ci_lo", "auc_ci_hi", "tpr_at_fpr_0_1pct", "tpr_at_fpr_1pct",
            "epsilon_lb", "audit_power", "method", "status"}
CHECK_KEYS = {"id", "section", "title", "status", "reason"}


def DEFAULT_TRAIN():  # noqa: N802 - the embedded default's audit data, as the main job draws populations from it
    return load_task("fashion-near", "train", limit=2000)


def synthetic_shadows(num_models: int, n: int, k: int = 5, signal: float = 0.0, seed: int = 0) -> ShadowSet:
    """Replicas whose logits are noise, plus ``signal`` on the label logit of members."""
    rng = np.random.default_rng(seed)
    member = torch.from_numpy(rng.random((num_models, n)) < 0.5)
    labels = torch.from_numpy(rng.integers(0, k, n))
    difficulty = rng.normal(0, 1, (1, n, k))
    logits = difficulty + rng.normal(0, 1, (num_models, n, k))
    logits[np.arange(num_models)[:, None], np.arange(n)[None, :], labels.numpy()[None, :]] += signal * member.numpy()
    return ShadowSet(logits=torch.from_numpy(logits).float(), member=member, labels=labels, ids=torch.arange(n),
                     extra_logits=None, seconds=[0.0] * num_models, procedure={"kind": "synthetic", "config": {}},
                     key="synthetic")


# --------------------------------------------------------------------------------------
# building blocks (no training)
# --------------------------------------------------------------------------------------
def test_population_canaries_and_masks(near_small):
    train, _ = near_small
    pop = make_population(train, 64, 16, seed=3)
    again = make_population(train, 64, 16, seed=3)
    assert torch.equal(pop.data.ids, again.data.ids) and torch.equal(pop.data.labels, again.data.labels)
    assert pop.num_canaries == 16
    canary = pop.is_canary
    assert (pop.data.labels[canary] != pop.true_labels[canary]).all()  # every canary is mislabelled
    assert torch.equal(pop.data.labels[~canary], pop.true_labels[~canary])
    masks = membership_masks(200, 64, seed=1)
    assert masks.shape == (200, 64) and masks.dtype == torch.bool
    assert abs(masks.float().mean().item() - 0.5) < 0.02  # Bernoulli(1/2)
    assert torch.equal(masks, membership_masks(200, 64, seed=1))
    assert not torch.equal(masks, membership_masks(200, 64, seed=2))
    with pytest.raises(ConfigError, match="population size"):
        make_population(train, 10_000, 0)
    with pytest.raises(ConfigError, match="canaries"):
        make_population(train, 32, 40)


def test_guess_rule_and_headline_attack():
    assert [guess_count(m) for m in (1, 2, 7, 8, 100, 1000)] == [1, 2, 2, 2, 25, 250]
    assert headline_attack(3) == "lira-offline" and headline_attack(16) == "lira-online"


def test_random_guessing_bound_is_zero_and_a_real_signal_fails():
    null = analyze_replicas("noise", 1.0, synthetic_shadows(6, 400), np.ones(400, bool), n_bootstrap=100)
    assert null.row["epsilon_lb"] < 0.2
    assert null.check.status == "PASS"
    assert null.row["auc_ci_lo"] < 0.5 < null.row["auc_ci_hi"]
    leaky = analyze_replicas("leaky", 1.0, synthetic_shadows(6, 400, signal=4.0), np.ones(400, bool), n_bootstrap=100)
    assert leaky.row["epsilon_lb"] > 1.5 and leaky.check.status == "FAIL"
    assert leaky.row["audit_power"] >= leaky.row["epsilon_lb"]
    assert leaky.one_run_row["num_correct"] > 0.9 * leaky.one_run_row["num_guesses"]
    reference = analyze_replicas("ref", None, synthetic_shadows(6, 400, signal=4.0), np.ones(400, bool), n_bootstrap=50)
    assert reference.check.id == "mia-positive-control" and reference.check.status == "PASS"
    blind = analyze_replicas("blind", None, synthetic_shadows(6, 400), np.ones(400, bool), n_bootstrap=50)
    assert blind.check.status == "SKIP" and "inconclusive" in blind.check.reason


# --------------------------------------------------------------------------------------
# shadows on a tiny ViT: shared prefix features, disk cache, DP replicas
# --------------------------------------------------------------------------------------
def test_shadows_share_features_and_are_cached(near_small, tmp_path):
    from privtangent.dp.config import DPConfig

    train, _ = near_small
    model = make_tiny_vit()
    pop = make_population(train, 48, 12, seed=0)
    cache = FeatureCache()
    config = TrainConfig(epochs=1)
    shadows = train_shadows(model, pop, config, num_models=3, cache=cache, run_dir=tmp_path)
    assert cache.misses == 1  # the population's prefix ran once; every replica's subset was served from it
    assert shadows.logits.shape == (3, 48, 5) and shadows.member.shape == (3, 48) and not shadows.cached
    again = train_shadows(model, pop, config, num_models=3, cache=cache, run_dir=tmp_path)
    assert again.cached and torch.equal(again.logits, shadows.logits) and torch.equal(again.member, shadows.member)
    files = sorted(p.suffix for p in (tmp_path / "shadows").iterdir())
    assert files == [".json", ".safetensors"]
    other = train_shadows(model, pop, config.replace(epochs=2), num_models=3, cache=cache, run_dir=tmp_path)
    assert not other.cached  # another procedure is another cache entry
    dp = train_shadows(model, pop, DPConfig(target_epsilon=8.0, epochs=2), num_models=3, cache=cache)
    assert len(dp.manifests) == 3 and all(abs(m["epsilon"] - 8.0) < 0.1 for m in dp.manifests)
    assert len({m["noise_multiplier"] for m in dp.manifests}) == 1  # σ calibrated once
    wrapper = PopulationFeatureCache([pop.data], cache)
    sub = pop.data.subset(torch.arange(5))
    assert torch.equal(wrapper.features(model, 1, sub), cache.features(model, 1, pop.data)[:5])
    assert wrapper.subset_hits == 1


def test_return_contract_all_attacks_tiny(near_small, tmp_path):
    from privtangent.dp.config import DPConfig

    train, test = near_small
    model = make_tiny_vit()
    targets = [AuditTarget("reference", TrainConfig(epochs=2)),
               AuditTarget("DP ε=8", DPConfig(target_epsilon=8.0, epochs=2), 8.0)]
    result = run_privacy_audit(model, train=train, test=test, targets=targets, population_size=48, num_canaries=12,
                               num_models=3, n_bootstrap=50, run_dir=tmp_path, rmia_population=40)
    assert isinstance(result, AuditSection)
    assert result.key == "membership_inference"
    body = result.body
    assert [set(r) for r in body["rows"]] == [ROW_KEYS, ROW_KEYS]
    assert {r["attack"] for r in body["attacks"]} == {"LiRA online", "LiRA offline", "LOSS", "RMIA"}
    assert {"rows", "guess_rule"} <= set(body["one_run"]) and len(body["one_run"]["rows"]) == 2
    assert {"tangent_seconds", "nonlinear_seconds", "nonlinear_uncached_seconds"} <= set(body["shadow_timing"])
    assert all(set(c.to_dict()) == CHECK_KEYS and c.section == "membership_inference" for c in result.checks)
    assert [c.id for c in result.checks] == ["mia-positive-control", "mia-eps8"]
    assert list(result.roc.columns) == ["curve", "fpr", "tpr"]
    assert set(result.roc.curve) == {"reference", "DP ε=8"}
    json.dumps(body)  # JSON-ready
    with pytest.raises(ConfigError, match="≥ 3"):
        run_privacy_audit(model, train=train, test=test, targets=targets, num_models=2)


# --------------------------------------------------------------------------------------
# the embedded default
# --------------------------------------------------------------------------------------
def test_overfit_nonprivate_model_bound_far_above_one(base_model, tmp_path):
    """Few samples, many epochs, half of them mislabelled canaries: a non-private model memorizes them."""
    overfit = AuditTarget("overfit TAFT", TrainConfig(epochs=30, schedule="constant", weight_decay=0.0), 1.0)
    result = run_privacy_audit(base_model, DEFAULT_TRAIN(), targets=[overfit], population_size=256, num_canaries=128, num_models=4,
                               attacks=("lira-offline",), n_bootstrap=100, measure_timing=False, run_dir=tmp_path)
    row = result.body["rows"][0]
    assert row["auc"] > 0.8
    assert row["epsilon_lb"] >= 2.5, row
    assert row["audit_power"] >= row["epsilon_lb"]
    assert result.checks[0].status == "FAIL"


def test_broken_dp_fails_and_correct_dp_passes_cli(base_model, tmp_path):
    """Positive controls on the embedded default: noise off while claiming ε = 1 FAILS (exit 1);
    the correct ε = 1 run PASSES (exit 0, its replicas loaded from the cache)."""
    from audits.cli import main

    common = ["privacy", "--epsilons", "1", "--no-reference", "--no-timing", "--quiet", "--population", "128",
              "--canaries", "64", "--models", "3", "--attacks", "lira-offline,loss", "--bootstrap", "100",
              "--out", str(tmp_path)]
    assert main(common + ["--inject-bug", "noise-off"]) == 1
    doc = json.loads((tmp_path / "membership_inference.json").read_text())
    status = {c["id"]: c["status"] for c in doc["checks"]}
    assert status["mia-eps1"] == "PASS"
    assert status["mia-dp-eps1-noise-off-injected-bug"] == "FAIL"
    rows = {r["model"]: r for r in doc["body"]["rows"]}
    assert rows["DP ε=1"]["epsilon_lb"] <= 1.0 < rows["DP ε=1 (noise-off: injected bug)"]["epsilon_lb"]
    assert doc["verdict"] == "FAIL"
    assert main(common) == 0
    doc = json.loads((tmp_path / "membership_inference.json").read_text())
    assert doc["verdict"] == "PASS" and [c["status"] for c in doc["checks"]] == ["PASS"]
    assert doc["body"]["procedures"][0]["cached"] is True
    assert (tmp_path / "membership_inference-roc.csv").exists()


@pytest.mark.slow
def test_clip_off_fails(base_model, tmp_path):
    """Clipping off (noise std still σ·C for C = 1) is a weaker bug here than noise off: per-sample
    gradient norms are only a few times C. At 128 samples / 4 replicas the bound reached 0.9995;
    this size reached 1.36 (one run each)."""
    target = broken_target("clip-off", 1.0, dataset_size=128)
    result = run_privacy_audit(base_model, DEFAULT_TRAIN(), targets=[target], population_size=256, num_canaries=128, num_models=6,
                               attacks=("lira-offline",), n_bootstrap=100, measure_timing=False, run_dir=tmp_path)
    assert result.checks[0].status == "FAIL", result.checks[0]


@pytest.mark.slow
def test_default_audit_embedded(base_model, tmp_path):
    """The default sizes, as the main job runs them: ε ∈ {1, 3, 8} pass, the reference is detected."""
    result = run_privacy_audit(base_model, DEFAULT_TRAIN(), test=load_task("fashion-near", "test", limit=1000),
                               run_dir=tmp_path)
    status = {c.id: c.status for c in result.checks}
    assert status == {"mia-positive-control": "PASS", "mia-eps1": "PASS", "mia-eps3": "PASS", "mia-eps8": "PASS"}
