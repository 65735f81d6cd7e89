"""The design of a regime comparison: δ rule, Poisson recipe, per-cell hyperparameters, paired
noise seeds, disjoint public/private/test splits, t intervals, and the embedded bases."""

from __future__ import annotations

import math

import pytest
import torch

from privtangent.errors import ConfigError
from privtangent.experiments.regimes import (
    RegimeGrid,
    default_delta,
    paired_difference,
    split_task,
    t_interval,
)
from privtangent.experiments.regimes.stats import verdict


def test_delta_is_a_tenth_of_one_over_n_and_never_above_1e_5():
    assert default_delta(30_000) == pytest.approx(1 / 300_000)
    assert default_delta(5_000) == 1e-5  # 1/(10·5,000) = 2e-5 > 1e-5
    assert default_delta(1_077) == 1e-5
    with pytest.raises(ConfigError):
        default_delta(0)


def test_poisson_recipe_sets_q_from_the_batch_size_and_keeps_t_fixed():
    grid = RegimeGrid(regimes=("full", "fc"), batch_size=512, steps=100, delta=None)
    for n, q in ((30_000, 512 / 30_000), (5_000, 512 / 5_000), (500, 1.0)):
        config = grid.dp_config(True, "full", 3.0, 0, n=n)
        assert config.sample_rate == pytest.approx(q)
        assert config.steps == 100  # T·B per run whatever N is
        assert config.delta == pytest.approx(default_delta(n))
    legacy = RegimeGrid(epochs=50)  # full-batch DP-GD: 50 epochs = 50 steps
    assert legacy.dp_config(False, "fc", 1.0, 0).steps == 50 and legacy.dp_config(False, "fc", 1.0, 0).delta == 1e-5
    with pytest.raises(ConfigError, match="batch_size needs"):
        grid.dp_config(True, "full", 3.0, 0)


def test_tuned_hyperparameters_apply_per_cell_and_bad_entries_are_refused():
    grid = RegimeGrid(regimes=("full", "fc"), lr=0.5, clip=7.0, tuned=(("full", "Ours", 0.03, 1.0),
                                                                     ("full", "Reg", 0.003, 10.0)))
    ours, reg = grid.dp_config(True, "full", 3.0, 0), grid.dp_config(False, "full", 3.0, 0)
    assert (ours.lr, ours.max_grad_norm) == (0.03, 1.0) and (reg.lr, reg.max_grad_norm) == (0.003, 10.0)
    fc = grid.dp_config(True, "fc", 3.0, 0)
    assert (fc.lr, fc.max_grad_norm) == (0.5, 7.0)  # no entry: the shared values
    for bad in (("everything", "Ours", 0.1, 1.0), ("full", "Mine", 0.1, 1.0), ("full", "Ours", -1.0, 1.0)):
        with pytest.raises(ConfigError, match="tuned"):
            RegimeGrid(tuned=(bad,))


def test_both_kinds_of_a_cell_share_the_noise_seed_and_cells_differ():
    grid = RegimeGrid(noise_seed=0)
    seed = grid.cell_noise_seed("digits", "full", 3.0, 1)
    assert seed == grid.cell_noise_seed("digits", "full", 3.0, 1)  # kind is not an input: paired
    others = {grid.cell_noise_seed("digits", "full", 8.0, 1), grid.cell_noise_seed("digits", "fc", 3.0, 1),
              grid.cell_noise_seed("digits", "full", 3.0, 2), RegimeGrid(noise_seed=1).cell_noise_seed(
                  "digits", "full", 3.0, 1)}
    assert seed not in others and len(others) == 4
    assert RegimeGrid(noise_seed=None).cell_noise_seed("digits", "full", 3.0, 1) is None


@pytest.mark.parametrize(("name", "private", "public", "test"), [("fashion-near", 30_000, 2_000, 3_000),
                                                                  ("digits", 1_077, 360, 360)])
def test_splits_are_disjoint_stratified_and_sized_as_documented(name, private, public, test):
    split = split_task(name)
    assert (len(split.train), len(split.public_train) + len(split.public_val), len(split.test)) == (private, public, test)
    parts = [split.train.ids, split.public_train.ids, split.public_val.ids, split.test.ids]
    if name == "fashion-near":  # test IDs and train IDs come from different splits: compare within the test split
        ids = torch.cat(parts[1:])
    else:
        ids = torch.cat(parts[:3])
    assert torch.unique(ids).numel() == ids.numel()
    counts = torch.bincount(split.public_val.labels)
    assert counts.max() - counts.min() <= 2  # stratified (two stratified cuts of near-balanced classes)
    limited = split_task(name, train_limit=100, test_limit=50)
    assert len(limited.train) == 100 and len(limited.test) == 50
    assert torch.equal(limited.public_val.ids, split.public_val.ids)  # the public part never moves
    with pytest.raises(ConfigError, match="no public tuning split"):
        split_task("fashion-pretrain")


def test_t_interval_matches_the_textbook_formula():
    interval = t_interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 * 1.0 / math.sqrt(3)  # t_{0.975, 2} · s / √n
    assert (interval.mean, interval.low, interval.high, interval.n) == pytest.approx((2.0, 2 - half, 2 + half, 3))
    single = t_interval([5.0])
    assert single.low is None and single.high is None and "no interval" in single.text()


def test_paired_difference_uses_shared_seeds_and_the_verdict_reads_the_interval():
    ours, reg = {0: 80.0, 1: 82.0, 2: 81.0, 3: 99.0}, {0: 70.0, 1: 71.5, 2: 71.0}
    diff = paired_difference(ours, reg)
    assert diff.n == 3 and diff.mean == pytest.approx(10.1666666, abs=1e-6)
    assert verdict(diff) == "Ours better"
    assert verdict(paired_difference(reg, ours)) == "Reg better"
    assert verdict(paired_difference({0: 1.0, 1: 2.0}, {0: 2.0, 1: 1.0})) == "no clear difference"


def test_default_base_key_is_unchanged_and_the_wide_base_has_its_own():
    from privtangent.models.pretrain import BASES, DEFAULT_MODEL, DEFAULT_RECIPE, _key, base_spec

    assert _key(DEFAULT_MODEL, DEFAULT_RECIPE) == "19ed24e97e786781"  # the cache key of the embedded default
    wide_model, wide_recipe = base_spec("wide")
    assert _key(wide_model, wide_recipe) != _key(*BASES["default"])
    assert wide_model["kwargs"]["embed_dim"] == 384 and wide_model["kwargs"]["depth"] == 6
    with pytest.raises(ConfigError, match="unknown embedded base"):
        base_spec("huge")


def test_wide_base_is_cached_under_its_key(tmp_path, monkeypatch):
    """The cache round trip of a non-default base (pretraining replaced by a random init: seconds, not minutes)."""
    from privtangent.models import pretrain as module
    from privtangent.models.vit import build_vit

    calls = []

    def fake_pretrain(model_cfg, recipe, progress=True):
        calls.append(model_cfg)
        torch.manual_seed(0)
        return build_vit(model_cfg["name"], **model_cfg["kwargs"]), {"test_accuracy": 0.5, "train_seconds": 0.0,
                                                                     "model": model_cfg, "recipe": recipe}

    monkeypatch.setattr(module, "pretrain", fake_pretrain)
    model, info = module.pretrained_base(progress=False, directory=tmp_path, base="wide")
    assert not info["cached"] and info["base"] == "wide" and model.embed_dim == 384
    again, info2 = module.pretrained_base(progress=False, directory=tmp_path, base="wide")
    assert info2["cached"] and len(calls) == 1
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    key = module._key(*module.base_spec("wide"))
    assert (tmp_path / "base" / f"{key}.safetensors").exists()
