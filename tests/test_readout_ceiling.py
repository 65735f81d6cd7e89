"""``readout_efficiency``: the share of μ a reading of the final model keeps under an optimizer.

Checked against closed forms (plain SGD: 1; SGD with momentum β: Σ K_s / √(T Σ K_s²) with
K_s = 1 − β^(T−s+1); Adam at T = 1, whose bias-corrected update is sign(g): the central difference
of a sign, (2Φ(h) − 1)/h → √(2/π)) and against an independent NumPy transcription of Adam
(Kingma & Ba 2015, Algorithm 1) at T = 50.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from audits.privacy.readout_ceiling import final_coordinates, readout_efficiency
from privtangent.errors import ConfigError

COORDS = 100_000  # sampling error of the efficiency ≈ 1/√(2·COORDS) ≈ 0.2 % (the spread), larger at T = 1


def numpy_adam_efficiency(steps: int, coords: int, push: float, seed: int, b1: float = 0.9, b2: float = 0.999,
                          eps: float = 1e-8) -> float:
    noise = np.random.default_rng(seed).standard_normal((steps, coords))

    def final(c: float) -> np.ndarray:
        m = np.zeros(coords)
        v = np.zeros(coords)
        w = np.zeros(coords)
        for t in range(1, steps + 1):
            g = c + noise[t - 1]
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            w -= (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
        return w

    slope = (final(push) - final(-push)).mean() / (2 * push)
    return float(abs(slope) / (final(0.0).std() * math.sqrt(steps)))


def test_plain_sgd_keeps_all_of_mu():
    assert readout_efficiency("sgd", 50, coordinates=COORDS) == pytest.approx(1.0, abs=0.01)


def test_sgd_momentum_matches_its_closed_form():
    steps, beta = 50, 0.9
    weights = np.array([1 - beta ** (steps - s + 1) for s in range(1, steps + 1)])
    expected = weights.sum() / math.sqrt(steps * (weights**2).sum())
    got = readout_efficiency("sgd", steps, momentum=beta, coordinates=COORDS)
    assert expected < 0.98  # the loss is real, not a rounding
    assert got == pytest.approx(expected, abs=0.01)


def test_adam_first_step_is_a_sign():
    push = 0.1
    expected = (2 * norm.cdf(push) - 1) / push  # √(2/π) = 0.798 as the push → 0
    got = readout_efficiency("adam", 1, push=push, coordinates=400_000)
    assert got == pytest.approx(expected, abs=0.03)  # binomial error of the counts near 0: ≈ 0.006


def test_adam_matches_an_independent_transcription():
    ours = readout_efficiency("adam", 50, coordinates=COORDS)
    theirs = numpy_adam_efficiency(50, COORDS, 0.05, seed=1)
    assert 0.8 < ours < 0.95
    assert ours == pytest.approx(theirs, abs=0.02)


def test_adam_loses_less_with_more_steps_and_more_with_a_data_drift():
    at_50 = readout_efficiency("adam", 50, coordinates=COORDS)
    assert readout_efficiency("adam", 200, coordinates=COORDS) > at_50 + 0.05
    assert readout_efficiency("adam", 50, drift=1.0, coordinates=COORDS) < at_50 - 0.1


def test_adams_final_coordinate_is_close_to_gaussian():
    from scipy.stats import kurtosis, skew

    z = final_coordinates("adam", 50, 0.0, coordinates=COORDS).numpy()
    assert abs(skew(z)) < 0.05
    assert -0.3 < kurtosis(z) < -0.05  # slightly platykurtic (≈ −0.16): bounded steps, not a heavy tail


def test_the_noise_is_shared_by_every_push():
    a = final_coordinates("adam", 5, 0.0, coordinates=1000, seed=3)
    b = final_coordinates("adam", 5, 0.0, coordinates=1000, seed=3)
    c = final_coordinates("adam", 5, 0.0, coordinates=1000, seed=4)
    assert bool((a == b).all()) and not bool((a == c).all())


@pytest.mark.parametrize("kwargs", [{"steps": 0}, {"steps": 2.5}, {"coordinates": 1}, {"push": 0.0},
                                    {"optimizer": "rmsprop"}])
def test_bad_arguments_are_refused(kwargs):
    args = {"optimizer": "adam", "steps": 3, **kwargs}
    optimizer, steps = args.pop("optimizer"), args.pop("steps")
    with pytest.raises(ConfigError):
        readout_efficiency(optimizer, steps, **args)
