"""fit_dp end to end, its privacy manifest, noise independence from the seed, compare-regimes."""

from __future__ import annotations

import json
import math

import pytest
import torch

from privtangent.dp.config import DPConfig
from privtangent.dp.training import fit_dp
from privtangent.errors import ConfigError
from privtangent.features import FeatureCache
from tests.conftest import make_tiny_vit


@pytest.fixture(scope="module")
def tiny_task(near_small):
    train, test = near_small
    return train.limit(64), test.limit(100)


MANIFEST_FIELDS = {"epsilon", "delta", "noise_multiplier", "max_grad_norm", "sample_rate", "steps", "accountant",
                   "sampling", "noise_seeded", "unit_of_privacy", "expected_batch_size", "dataset_size",
                   "epsilon_report", "epsilon_rdp", "target_epsilon", "noise_calibrated"}


@pytest.mark.parametrize("tangent", [True, False])
def test_fit_dp_end_to_end_writes_a_complete_manifest(tiny_task, tangent):
    train, test = tiny_task
    config = DPConfig(tangent=tangent, regime="full", epochs=3, target_epsilon=3.0, delta=1e-5, max_grad_norm=1.0)
    result = fit_dp(make_tiny_vit(), train, config, test=test, cache=FeatureCache(), progress=False)
    m = result.manifest
    assert MANIFEST_FIELDS <= set(m)
    assert m["epsilon"] <= 3.0 and m["epsilon"] > 2.9  # calibrated: at the target, within the 1 % of σ
    assert m["noise_calibrated"] and m["noise_multiplier"] > 0
    assert m["sampling"] == "full-batch" and m["sample_rate"] == 1.0 and m["steps"] == 3 == m["steps_run"]
    assert m["expected_batch_size"] == len(train) and m["dataset_size"] == len(train)
    assert m["accountant"] == "prv" and m["epsilon_report"]["gdp"] == pytest.approx(m["epsilon"])
    assert m["epsilon_rdp"] >= m["epsilon"]  # RDP is the looser cross-check
    assert m["noise_seeded"] is False and "release" not in m and "noise_seed" not in m
    assert m["model"]["kind"] == ("tangent" if tangent else "nonlinear")
    assert m["model"]["output"] == ("jvp" if tangent else "full")
    json.dumps(m)  # JSON-ready
    assert 0.0 <= result.metrics["test_accuracy"] <= 1.0 and len(result.history) == 3
    assert any(float(t.abs().max()) > 0 for t in result.model.trainable_state_dict().values())


def test_the_noise_is_not_derived_from_the_training_seed(tiny_task):
    train, _ = tiny_task
    cache = FeatureCache()
    base = make_tiny_vit()
    config = DPConfig(regime="fc", epochs=2, noise_multiplier=2.0, target_epsilon=None, seed=4)

    def final(cfg):
        return fit_dp(base, train, cfg, cache=cache, progress=False).model.trainable_state_dict()

    a, b = final(config), final(config)
    assert any(not torch.equal(a[k], b[k]) for k in a)  # same training seed, different noise
    c, d = final(config.replace(noise_seed=11)), final(config.replace(noise_seed=11))
    assert all(torch.equal(c[k], d[k]) for k in c)  # the explicit noise seed reproduces the run
    m = fit_dp(base, train, config.replace(noise_seed=11, epochs=1), cache=cache, progress=False).manifest
    assert m["noise_seeded"] is True and m["noise_seed"] == 11 and "NOT FOR RELEASE" in m["release"]


def test_fit_dp_with_sgd_poisson_sampling_and_a_given_sigma(tiny_task):
    train, _ = tiny_task
    config = DPConfig(regime="bitfit", optimizer="sgd", lr=0.1, epochs=1, sample_rate=0.25, noise_multiplier=1.0,
                      target_epsilon=None, accountant="rdp", physical_batch_size=8)
    steps = []
    result = fit_dp(make_tiny_vit(), train, config, cache=FeatureCache(), progress=False, on_step=steps.append)
    m = result.manifest
    assert m["sampling"] == "poisson" and m["steps"] == 4 and len(steps) == 4
    assert not m["noise_calibrated"] and math.isfinite(m["epsilon"]) and m["epsilon"] > 0
    assert m["expected_batch_size"] == pytest.approx(0.25 * len(train))
    assert all(s.expected_batch_size == pytest.approx(16.0) for s in steps)
    assert sorted(steps[0].grad) == sorted(result.model.trainable_parameters())


def test_dp_config_rejects_bad_input():
    with pytest.raises(ConfigError, match="jvp"):
        DPConfig(tangent=False, output="jvp")
    with pytest.raises(ConfigError, match="target_epsilon"):
        DPConfig(target_epsilon=None, noise_multiplier=None)
    with pytest.raises(ConfigError, match="sample_rate"):
        DPConfig(sample_rate=0.0)
    with pytest.raises(ConfigError, match="regime"):
        DPConfig(regime="everything")
    assert DPConfig().resolved_output == "jvp" and DPConfig(tangent=False).resolved_output == "full"
    assert DPConfig().steps == 50 and DPConfig(epochs=2, sample_rate=0.1).steps == 20


def test_a_given_sigma_too_small_for_the_target_is_refused(tiny_task):
    from privtangent.dp.training import resolve_noise

    with pytest.raises(ConfigError, match="target_epsilon"):
        resolve_noise(DPConfig(noise_multiplier=1.0, target_epsilon=1.0), 64)
    sigma, calibrated = resolve_noise(DPConfig(noise_multiplier=50.0, target_epsilon=1.0), 64)
    assert sigma == 50.0 and not calibrated


def _rows():
    rows = []
    accs = {("full", "Ours"): [0.80, 0.82, 0.84], ("full", "Reg"): [0.70, 0.71, 0.72],
            ("fc", "Ours"): [0.60, 0.61, 0.62], ("fc", "Reg"): [0.65, 0.66, 0.67]}
    for (regime, kind), values in accs.items():
        for eps, shift in ((1.0, -0.1), (8.0, 0.0)):
            for seed, v in enumerate(values):
                rows.append({"data": "toy", "regime": regime, "kind": kind, "target_epsilon": eps, "seed": seed,
                             "test_accuracy": v + shift})
    return rows


def test_regime_table_marks_the_better_kind_and_checks_the_shape():
    from privtangent.experiments.regimes import RegimeGrid, markdown_table, shape_checks, summarize

    grid = RegimeGrid(regimes=("full", "fc"), epsilons=(1.0, 8.0), data=("toy",), seeds=(0, 1, 2))
    summary = summarize(_rows())
    cell = next(s for s in summary if s["regime"] == "full" and s["kind"] == "Ours" and s["target_epsilon"] == 8.0)
    assert cell["mean"] == pytest.approx(82.0) and cell["std"] == pytest.approx(2.0) and cell["n"] == 3
    table = markdown_table(summary, grid)
    assert "| Dataset | Privacy | Full Ours | Full Reg | FC Ours | FC Reg |" in table
    assert "***82.0 ± 2.0***" in table  # better of the pair and best of the row
    assert "*66.0 ± 1.0*" in table and "*61.0" not in table  # FC: Reg is the better kind here
    checks = shape_checks(summary, grid)
    assert checks["ours_ge_reg_holds"] == 2 and checks["ours_ge_reg_total"] == 4
    assert checks["rising_holds"] == checks["rising_total"] == 4


def test_compare_regimes_cli_writes_table_plot_and_manifests(tmp_path, base_model):
    from privtangent.cli.main import main

    out = tmp_path / "t3"
    status = main(["compare-regimes", "--out", str(out), "--data", "digits", "--data-limit", "24", "--test-limit", "40",
                   "--epochs", "2", "--seeds", "0", "--epsilons", "3", "--regimes", "fc,layernorm", "--quiet",
                   "--threads", "1"])
    assert status == 0
    for name in ("table3.md", "table3.csv", "table3_runs.csv", "table3.png", "table3.json"):
        assert (out / name).stat().st_size > 0
    manifests = sorted((out / "table3_manifests").glob("*.json"))
    assert len(manifests) == 4  # 2 regimes × {Ours, Reg}
    m = json.loads(manifests[0].read_text())
    assert MANIFEST_FIELDS - {"epsilon_rdp"} <= set(m) and m["epsilon"] <= 3.0 and m["steps"] == 2
    md = (out / "table3.md").read_text()
    assert "LayerNorm Ours" in md and "compare-regimes" in md and "ε = 3" in md
