"""Losses: the rescaled square loss (paper eq. 2) against hand-computed values; CE, MSE."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from privtangent.errors import ConfigError
from privtangent.losses import cross_entropy, make_loss, mse, rescaled_square_loss


def test_rsl_matches_hand_computed_value():
    logits = torch.tensor([[1.0, 2.0, 3.0]])
    y = torch.tensor([2])
    # (1/K)(α(f_y − κ)² + Σ_{i≠y} f_i²) = (1/3)((3 − 15)² + 1² + 2²) = 149/3
    assert rescaled_square_loss(logits, y).item() == pytest.approx(149 / 3, rel=1e-6)
    # α = 2 weighs only the true class: (1/3)(2·144 + 1 + 4) = 293/3
    assert rescaled_square_loss(logits, y, alpha=2.0).item() == pytest.approx(293 / 3, rel=1e-6)
    # κ = 1: (1/3)((3 − 1)² + 1 + 4) = 3
    assert rescaled_square_loss(logits, y, kappa=1.0).item() == pytest.approx(3.0, rel=1e-6)


def test_rsl_is_a_batch_mean_and_per_sample_on_request():
    logits = torch.tensor([[1.0, 2.0, 3.0], [0.0, 15.0, 0.0]])
    y = torch.tensor([2, 1])
    per_sample = rescaled_square_loss(logits, y, reduction="none")
    assert per_sample.tolist() == pytest.approx([149 / 3, 0.0])
    assert rescaled_square_loss(logits, y).item() == pytest.approx(149 / 6)
    with pytest.raises(ConfigError, match="reduction"):
        rescaled_square_loss(logits, y, reduction="sum")


def test_rsl_is_vmap_safe_and_matches_the_batch():
    logits, y = torch.randn(6, 5, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 2, 3, 4, 0])
    per = torch.func.vmap(lambda l, t: rescaled_square_loss(l.unsqueeze(0), t.unsqueeze(0)))(logits, y)
    assert torch.allclose(per, rescaled_square_loss(logits, y, reduction="none"))


def test_ce_and_mse():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([0, 0])
    assert cross_entropy(logits, y).item() == pytest.approx(F.cross_entropy(logits, y).item())
    # mean over batch of Σ(f − onehot)²/K: ((1 + 0)/2 + (1 + 1)/2)/2 = 0.75
    assert mse(logits, y).item() == pytest.approx(0.75)


def test_make_loss_by_name():
    logits, y = torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([2])
    assert make_loss("rsl", alpha=2.0, kappa=15.0)(logits, y).item() == pytest.approx(293 / 3, rel=1e-6)
    assert make_loss("ce")(logits, y).item() == pytest.approx(F.cross_entropy(logits, y).item())
    with pytest.raises(ConfigError, match="unknown loss 'hinge'"):
        make_loss("hinge")
