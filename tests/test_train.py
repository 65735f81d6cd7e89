"""The trainer: the TAFT objective is convex in Δw, a TAFT step moves only Δw, seeding, config."""

from __future__ import annotations

import pytest
import torch

from privtangent.config.files import read_config_file
from privtangent.data.dataset import LabeledData
from privtangent.errors import ConfigError
from privtangent.losses import make_loss
from privtangent.train import TrainConfig, fit, prepare_model
from privtangent.train.trainer import milestones, objective
from tests.conftest import make_tiny_vit


def synthetic(n: int = 48, classes: int = 3, seed: int = 0) -> LabeledData:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    images = torch.randn(n, 1, 28, 28, generator=g) + labels.view(-1, 1, 1, 1).float()
    return LabeledData(images, labels, torch.arange(n) + 1000 * seed, [str(c) for c in range(classes)], f"synthetic{seed}")


@pytest.fixture(scope="module")
def tiny():
    return make_tiny_vit(num_classes=3)


def _delta_at(model, a: dict, b: dict, t: float) -> None:
    model.load_trainable({k: (1 - t) * a[k] + t * b[k] for k in a})


@pytest.mark.parametrize("reset", [False, True])
def test_taft_objective_is_convex_along_random_segments(reset):
    """loss(Δw) + wd‖Δw‖² along Δw(t) = (1−t)a + tb is convex (float64): second differences ≥ 0,
    and the logits are affine in t (the reason it is convex)."""
    torch.manual_seed(0)
    config = TrainConfig(weight_decay=1e-3, reset=reset)
    model = prepare_model(make_tiny_vit(num_classes=3).double(), 3, config)
    data = synthetic(24)
    feats = model.prefix(data.images.double())
    loss_fn = make_loss("rsl")
    g = torch.Generator().manual_seed(1)
    names = model.trainable_state_dict()
    for _ in range(3):
        a = {k: torch.randn(v.shape, generator=g, dtype=torch.float64) * 0.5 for k, v in names.items()}
        b = {k: torch.randn(v.shape, generator=g, dtype=torch.float64) * 0.5 for k, v in names.items()}
        ts = torch.linspace(0, 1, 11, dtype=torch.float64)
        values, logits = [], []
        with torch.no_grad():
            for t in ts:
                _delta_at(model, a, b, float(t))
                values.append(float(objective(model, feats, data.labels, config, loss_fn)))
                logits.append(model.forward_features(feats))
        values = torch.tensor(values, dtype=torch.float64)
        second = values[:-2] - 2 * values[1:-1] + values[2:]
        assert (second >= -1e-9 * values.abs().max()).all(), second
        affine = logits[0] + ts.view(-1, 1, 1) * (logits[-1] - logits[0])
        assert torch.allclose(torch.stack(logits), affine, atol=1e-9, rtol=1e-9)


def test_a_taft_step_changes_only_delta(tiny):
    data = synthetic()
    config = TrainConfig(epochs=1, batch_size=16, seed=3)
    model = prepare_model(tiny, data.num_classes, config)
    before = {k: v.clone() for k, v in model.base.state_dict().items()}
    result = fit(tiny, data, config, model=model, progress=False)
    after = result.model.base.state_dict()
    assert before.keys() == after.keys()
    for name in before:
        assert torch.equal(before[name], after[name]), f"base weight {name} changed"
    delta = result.model.delta_state_dict()
    assert all(v.abs().sum() > 0 for v in delta.values()), "every Δ should have moved"
    assert set(delta) == set(model.delta_names)
    assert all(not p.requires_grad for p in result.model.base.parameters())


def test_nlft_changes_only_its_trainable_parameters(tiny):
    data = synthetic()
    config = TrainConfig.recipe(tangent=False, epochs=1, batch_size=16)
    model = prepare_model(tiny, data.num_classes, config)
    before = {k: v.clone() for k, v in model.base.state_dict().items()}
    trained = set(model.trainable_parameters())
    fit(tiny, data, config, model=model, progress=False)
    for name, value in model.base.state_dict().items():
        if name in trained:
            assert not torch.equal(before[name], value), f"{name} should have been trained"
        else:
            assert torch.equal(before[name], value), f"frozen {name} changed"
    assert any(n.startswith("blocks.1.") for n in trained) and not any(n.startswith("blocks.0.") for n in trained)


def test_seeded_identical_and_seed_sensitive(tiny):
    data = synthetic()
    run = lambda seed: fit(tiny, data, TrainConfig(epochs=1, seed=seed, batch_size=16), progress=False)  # noqa: E731
    a, b, c = run(0).model.delta_state_dict(), run(0).model.delta_state_dict(), run(1).model.delta_state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_fit_leaves_the_global_rng_alone(tiny):
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    fit(tiny, synthetic(16), TrainConfig(epochs=1, batch_size=8, reset=True, linearize_cls=True), progress=False)
    assert torch.equal(state, torch.random.get_rng_state())


def test_step_schedule_and_projection(tiny):
    assert milestones(30) == [15, 25] and milestones(10) == [5, 8] and milestones(1) == [1]
    config = TrainConfig(epochs=4, batch_size=16, lr=0.05, project_radius=0.1)
    result = fit(tiny, synthetic(), config, test=synthetic(24, seed=1), progress=False)
    lrs = [h["lr"] for h in result.history]
    assert lrs[0] == pytest.approx(0.05) and lrs[1] == pytest.approx(0.005) and lrs[-1] == pytest.approx(5e-4)
    norm = torch.sqrt(sum(v.pow(2).sum() for v in result.model.delta_state_dict().values()))
    assert float(norm) <= 0.1 + 1e-6
    assert 0.0 <= result.metrics["test_accuracy"] <= 1.0 and result.metrics["train_seconds"] > 0


def test_jvp_output_trains_and_evaluates(tiny):
    result = fit(tiny, synthetic(), TrainConfig(epochs=1, batch_size=16, output="jvp"), test=synthetic(24, 1),
                 progress=False)
    assert 0.0 <= result.metrics["test_accuracy"] <= 1.0


def test_config_names_the_bad_field():
    with pytest.raises(ConfigError, match=r"^lr: must be > 0"):
        TrainConfig(lr=-1.0)
    with pytest.raises(ConfigError, match=r"^train\.lr: must be > 0, got -0\.5"):
        TrainConfig.from_dict({"lr": -0.5})
    with pytest.raises(ConfigError, match=r"^train\.epochs: must be an integer"):
        TrainConfig.from_dict({"epochs": "ten"})
    with pytest.raises(ConfigError, match=r"^train\.lrate: unknown field"):
        TrainConfig.from_dict({"lrate": 0.1})
    with pytest.raises(ConfigError, match=r"^train\.regime: must be one of"):
        TrainConfig.from_dict({"regime": "everything"})
    with pytest.raises(ConfigError, match=r"^output: 'jvp' needs a tangent model"):
        TrainConfig(tangent=False, output="jvp")
    assert TrainConfig.from_dict({"lr": "1e-3"}).lr == 1e-3  # YAML 1.1 reads 1e-3 as a string


def test_recipe_defaults():
    taft, nlft, fc = TrainConfig.recipe(True), TrainConfig.recipe(False), TrainConfig.recipe(False, "fc")
    assert (taft.lr, taft.loss, taft.method) == (1e-2, "rsl", "TAFT-1")
    assert (nlft.lr, nlft.loss, nlft.method) == (1e-3, "ce", "NLFT-1")
    assert (fc.lr, fc.loss, fc.method) == (1e-3, "ce", "FC")
    assert TrainConfig.recipe(True, lr=None, blocks=2, loss="mse").lr == 1e-2
    assert TrainConfig.recipe(False, lr=0.5).lr == 0.5


def test_read_config_file(tmp_path):
    (tmp_path / "a.yaml").write_text("train:\n  lr: 1.0e-3\n  epochs: 3\ndata: digits\n")
    (tmp_path / "b.toml").write_text('data = "digits"\n[train]\nlr = 0.001\n')
    (tmp_path / "c.yaml").write_text("train: [1, 2\n")
    assert read_config_file(tmp_path / "a.yaml") == {"train": {"lr": 1e-3, "epochs": 3}, "data": "digits"}
    assert read_config_file(tmp_path / "b.toml")["train"]["lr"] == 0.001
    with pytest.raises(ConfigError, match="is not valid YAML"):
        read_config_file(tmp_path / "c.yaml")
    with pytest.raises(ConfigError, match="does not exist"):
        read_config_file(tmp_path / "missing.yaml")
