"""The release workflow: DP training that writes the artifact, loading and evaluating it, auditing it.

A tiny timm ViT and image folders stand in for a team's own model and data; Poisson DP-SGD is
checked for what DP needs (batch sizes Binomial(N, q), the divisor q·N, the accountant asked
about q < 1)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from scipy import stats

import privtangent
from privtangent.cli.main import main
from privtangent.dp import training as dp_training
from privtangent.dp.config import DPConfig
from privtangent.dp.noise import mechanism_randomness
from privtangent.dp.optimizer import DPOptimizer, make_torch_optimizer
from privtangent.dp.per_sample import trainable
from privtangent.dp.run import PRIVACY_KEYS
from privtangent.dp.sampling import BatchSampler
from privtangent.features import FeatureCache
from privtangent.losses import make_loss
from privtangent.release import read_manifest, training_data, verified_base
from privtangent.train import prepare_model
from privtangent.train.evaluate import evaluate
from tests.conftest import make_tiny_vit

KWARGS = {"img_size": 16, "patch_size": 4, "in_chans": 3, "embed_dim": 32, "depth": 2, "num_heads": 2, "num_classes": 3}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A team's project: a base checkpoint, image folders (3 classes), a config naming both."""
    root = tmp_path_factory.mktemp("project")
    model = make_tiny_vit(**{k: v for k, v in KWARGS.items()})
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(root / "base.safetensors"))
    rng = np.random.default_rng(0)
    for split, count in (("train", 40), ("test", 16)):
        for c, name in enumerate(("ants", "bees", "cats")):
            folder = root / "data" / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
                pixels[..., c] = 255 - pixels[..., c] // 4  # a class signal a model can learn
                Image.fromarray(pixels).save(folder / f"{i}.png")
    (root / "run.yaml").write_text(
        f"model: {{name: vit_tiny_patch16_224, kwargs: {json.dumps(KWARGS)}, checkpoint: base.safetensors}}\n"
        "data: {train: data/train, test: data/test}\ntraining: {reset: true}\n")
    return root


@pytest.fixture(scope="module")
def artifact(project):
    out = project / "release"
    status = main(["train", "--config", str(project / "run.yaml"), "--epsilon", "3", "--sample-rate", "0.1",
                   "--epochs", "3", "--out", str(out), "--quiet"])
    assert status == 0
    return out


def test_dp_training_writes_the_release_artifact(artifact):
    assert {p.name for p in artifact.iterdir()} >= {"model.safetensors", "model.json", "model_card.md", "metrics.json",
                                                   "anchor.safetensors"}
    manifest = read_manifest(artifact)
    privacy = manifest["privacy"]
    assert set(PRIVACY_KEYS) <= set(privacy) and privacy["private"] is True
    assert privacy["epsilon"] <= privacy["target_epsilon"] == 3 and privacy["sample_rate"] == 0.1
    assert privacy["steps"] == 30 and privacy["noise_seeded"] is False and privacy["accountant"] == "prv"
    assert manifest["base"]["name"] == "vit_tiny_patch16_224" and manifest["base"]["checkpoint_sha256"]
    assert manifest["data"]["train"]["num_samples"] == 120 and manifest["data"]["train"]["content_sha256"]
    from safetensors.torch import load_file

    names = set(load_file(str(artifact / "model.safetensors")))
    assert "blocks.1.attn.qkv.weight" in names and "head.weight" in names  # Δw keyed by the base's own names
    card = (artifact / "model_card.md").read_text()
    assert "(ε = " in card and "δ = " in card and "σ" in card and manifest["sha256"] in card


def test_load_model_reproduces_the_logged_test_accuracy_exactly(artifact):
    model = privtangent.load_model(artifact)
    manifest = read_manifest(artifact)
    base = verified_base(manifest)
    _, test = training_data(manifest, base)
    features = FeatureCache().features(model.base, model.start, test)
    accuracy = evaluate(model, features, test.labels, test.num_classes, None, manifest["config"]["output"])["accuracy"]
    assert accuracy == json.loads((artifact / "metrics.json").read_text())["test_accuracy"]


def test_evaluate_and_tampering(artifact, project, tmp_path, capsys):
    assert main(["evaluate", "--model", str(artifact), "--json", "--predictions", str(tmp_path / "p.csv")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["accuracy"] == json.loads((artifact / "metrics.json").read_text())["test_accuracy"]
    assert len((tmp_path / "p.csv").read_text().splitlines()) == 1 + result["num_samples"]
    for target in (artifact / "model.safetensors", project / "base.safetensors"):
        original = target.read_bytes()
        tampered = bytearray(original)
        tampered[-3] ^= 1
        target.write_bytes(bytes(tampered))
        try:
            assert main(["evaluate", "--model", str(artifact)]) == 2
            assert "sha256" in capsys.readouterr().err
        finally:
            target.write_bytes(original)
    assert main(["evaluate", "--model", str(artifact)]) == 0


def test_audit_of_the_artifact(artifact, tmp_path, capsys):
    config = tmp_path / "sizes.yaml"
    config.write_text("audit: {population: 48, shadows: 3, canaries: 12, whitebox_canaries: 500}\n")
    status = main(["audit", "--model", str(artifact), "--config", str(config), "--out", str(tmp_path / "a"),
                   "--quiet", "--no-pdf"])
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    assert status == (0 if report["verdict"] == "PASS" else 1)
    manifest = read_manifest(artifact)
    assert report["released_model_sha256"] == manifest["sha256"] == report["released_model"]["sha256"]
    assert report["dp_statement"]["runs"][0]["epsilon"] == pytest.approx(manifest["privacy"]["epsilon"], rel=1e-3)
    assert {"dp-accounting-eps3", "dp-manifest-consistent"} <= {c["id"] for c in report["checks"]}
    assert any(c["id"].startswith("mia-") for c in report["checks"])
    assert any(c["id"].startswith("whitebox-") for c in report["checks"])
    assert manifest["sha256"] in (tmp_path / "a" / "report.html").read_text()


def test_a_manifest_whose_sigma_is_too_low_fails_the_accounting(artifact, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(artifact, copy)
    manifest = json.loads((copy / "model.json").read_text())
    manifest["privacy"]["sigma"] *= 0.5  # the noise the run would need for ε = 3 is twice this
    (copy / "model.json").write_text(json.dumps(manifest))
    config = tmp_path / "sizes.yaml"
    config.write_text("audit: {population: 48, shadows: 3, canaries: 12, whitebox_canaries: 500}\n")
    assert main(["audit", "--model", str(copy), "--config", str(config), "--out", str(tmp_path / "a"),
                 "--quiet", "--no-pdf"]) == 1
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    status = {c["id"]: c["status"] for c in report["checks"]}
    assert status["dp-accounting-eps3"] == "FAIL"


# --------------------------------------------------------------------------------------
# Poisson DP-SGD: what the accountant assumes is what runs
# --------------------------------------------------------------------------------------
def test_poisson_batch_sizes_are_binomial_chi_square():
    n, q, steps = 200, 0.05, 4000
    sampler = BatchSampler(n, q, steps, mechanism_randomness(3).generator)
    sizes = np.array([len(batch) for batch in sampler])
    observed = np.bincount(sizes, minlength=n + 1)
    expected = stats.binom.pmf(np.arange(n + 1), n, q) * steps
    # merge the tails so every bin expects ≥ 5
    lo, hi = int(np.argmax(expected >= 5)), int(n - np.argmax(expected[::-1] >= 5))
    obs = np.concatenate([[observed[:lo + 1].sum()], observed[lo + 1:hi], [observed[hi:].sum()]])
    exp = np.concatenate([[expected[:lo + 1].sum()], expected[lo + 1:hi], [expected[hi:].sum()]])
    exp *= obs.sum() / exp.sum()
    assert stats.chisquare(obs, exp).pvalue > 1e-3


def test_update_divides_the_clipped_sum_by_the_expected_batch_qn():
    torch.manual_seed(0)
    base = make_tiny_vit()
    model = prepare_model(base, 5, DPConfig().train_config())
    features = torch.randn(7, 17, 32)
    labels = torch.randint(0, 5, (7,))
    params = trainable(model)
    dp = DPOptimizer(model, make_torch_optimizer(list(params.values()), "sgd", 0.0), make_loss("ce"),
                     noise_multiplier=0.0, max_grad_norm=0.5, expected_batch_size=12.5,
                     generator=mechanism_randomness(0).generator, output="jvp")
    clipped = dp.clipped_sum(features, labels).grads
    step = dp.step(features, labels)
    assert step.expected_batch_size == 12.5 and step.batch_size == 7
    for name in params:
        torch.testing.assert_close(step.grad[name] * 12.5, clipped[name], rtol=1e-5, atol=1e-7)


def test_the_accountant_is_asked_about_the_sample_rate_that_runs(monkeypatch, near_small):
    train, _ = near_small
    asked = []
    real = dp_training.calibrate_noise

    def spy(target, delta, sample_rate, steps, accountant, **kw):
        asked.append((sample_rate, steps, accountant))
        return real(target, delta, sample_rate, steps, accountant, **kw)

    monkeypatch.setattr(dp_training, "calibrate_noise", spy)
    seen = []
    config = DPConfig(target_epsilon=5.0, sample_rate=0.1, epochs=2, lr=0.05)
    result = dp_training.fit_dp(make_tiny_vit(), train, config, progress=False,
                                on_step=lambda info: seen.append(info.expected_batch_size))
    assert asked == [(0.1, 20, "prv")]
    assert result.manifest["sample_rate"] == 0.1 and result.manifest["sampling"] == "poisson"
    assert result.manifest["steps"] == 20 == len(seen) and all(math.isclose(b, 0.1 * len(train)) for b in seen)
