"""The DP mechanism: clipping, Gaussian noise, Poisson sampling, the DP optimizer step, canaries."""

from __future__ import annotations

import math

import pytest
import torch

from privtangent.dp import per_sample_grads
from privtangent.dp.clipping import clip_factors, clip_per_sample, per_sample_norms
from privtangent.dp.noise import mechanism_randomness, privatize
from privtangent.dp.optimizer import DPOptimizer, DPStep
from privtangent.dp.per_sample import site_gradients
from privtangent.dp.sampling import BatchSampler, micro_batches, poisson_sample, steps_for_epochs
from privtangent.errors import ConfigError
from privtangent.finetune import NonLinearViT
from privtangent.losses import make_loss
from privtangent.tangent import linearize
from tests.conftest import make_tiny_vit


def _grads(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    scales = torch.logspace(-2, 2, n, dtype=torch.float64)  # norms from far below to far above C
    return {"a": torch.randn(n, 3, 4, generator=g, dtype=torch.float64) * scales.view(-1, 1, 1),
            "b": torch.randn(n, 5, generator=g, dtype=torch.float64) * scales.view(-1, 1)}


def test_every_clipped_per_sample_gradient_has_norm_at_most_C():
    grads = _grads()
    before = per_sample_norms(grads)
    for clip in (0.1, 1.0, 7.5):
        after = per_sample_norms(clip_per_sample(grads, clip))
        assert float(after.max()) <= clip * (1 + 1e-12)
        small = before <= clip
        assert small.any() and (~small).any()
        torch.testing.assert_close(after[small], before[small])  # untouched below C
        torch.testing.assert_close(after[~small], torch.full_like(after[~small], clip))  # exactly C above


def test_clip_factors_are_min_one_c_over_norm():
    norms = torch.tensor([0.0, 0.5, 1.0, 2.0, 8.0], dtype=torch.float64)
    torch.testing.assert_close(clip_factors(norms, 1.0), torch.tensor([1.0, 1.0, 1.0, 0.5, 0.125], dtype=torch.float64))
    with pytest.raises(ConfigError):
        clip_factors(norms, 0.0)


def test_ghost_clipped_gradients_have_norm_at_most_C():
    base = make_tiny_vit(depth=2).double()
    tm = linearize(base, regime="full", reset=True)
    x = torch.randn(10, 1, 28, 28, dtype=torch.float64)
    y = torch.randint(0, 5, (10,))
    sites, _ = site_gradients(tm, make_loss("ce"), tm.prefix(x), y, "jvp")
    clip = float(sites.norms().median())
    factors = clip_factors(sites.norms(), clip)
    per = sites.per_sample()
    clipped = {k: t * factors.view(-1, *([1] * (t.dim() - 1))) for k, t in per.items()}
    assert float(per_sample_norms(clipped).max()) <= clip * (1 + 1e-12)
    assert float(per_sample_norms(per).max()) > clip * 1.01


def _sgd_step(model, loss, feats, y, sigma, clip, physical, output, extra=None, expected=None):
    params = model.trainable_parameters()
    opt = torch.optim.SGD(list(params.values()), lr=1.0)
    seen: list[DPStep] = []
    dp = DPOptimizer(model, opt, loss, noise_multiplier=sigma, max_grad_norm=clip,
                     expected_batch_size=expected or len(y),
                     generator=mechanism_randomness(0).generator, output=output, physical_batch_size=physical,
                     observers=[seen.append])
    before = {k: p.detach().clone() for k, p in params.items()}
    dp.step(feats, y, extra_per_sample_grads=extra)
    after = {k: p.detach().clone() for k, p in params.items()}
    return before, after, seen


@pytest.mark.parametrize("kind", ["tangent", "nonlinear"])
def test_noiseless_update_is_the_mean_of_clipped_per_sample_gradients_of_a_plain_loop(kind):
    base = make_tiny_vit(depth=2).double()
    model = linearize(base, regime="full", reset=True) if kind == "tangent" else NonLinearViT(base, regime="full")
    output = "jvp" if kind == "tangent" else "full"
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(9, 1, 28, 28, generator=g, dtype=torch.float64), torch.randint(0, 5, (9,), generator=g)
    feats, loss = model.prefix(x), make_loss("ce")
    loop = per_sample_grads(model, loss, feats, y, features=True, output=output, method="loop")
    clip = float(per_sample_norms(loop).median())
    mean_clipped = {k: t.mean(0) for k, t in clip_per_sample(loop, clip).items()}
    before, after, seen = _sgd_step(model, loss, feats, y, 0.0, clip, physical=4, output=output)  # 3 micro-batches
    for k in before:
        torch.testing.assert_close(before[k] - after[k], mean_clipped[k], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(seen[0].grad[k], mean_clipped[k], rtol=1e-10, atol=1e-12)
    assert seen[0].batch_size == 9 and seen[0].step == 1 and seen[0].noise_std == 0.0


def test_noise_on_zero_gradients_has_std_sigma_c_over_b():
    sigma, clip, batch = 2.5, 0.7, 40
    zeros = {"w": torch.zeros(400, 100, dtype=torch.float64), "b": torch.zeros(1000, dtype=torch.float64)}
    gen = mechanism_randomness().generator
    draws = torch.cat([torch.cat([t.flatten() for t in privatize(zeros, sigma, clip, batch, gen).values()])
                       for _ in range(5)])
    expected = sigma * clip / batch
    assert abs(float(draws.std()) / expected - 1) < 0.05
    assert abs(float(draws.mean())) < 5 * expected / math.sqrt(draws.numel())


def test_noise_through_the_optimizer_on_zero_gradients():
    """The whole step: a loss with zero gradient → the observed gradient is pure noise of std σC/B."""
    base = make_tiny_vit(depth=2).double()
    tm = linearize(base, regime="full")
    feats = tm.prefix(torch.randn(8, 1, 28, 28, dtype=torch.float64))
    y = torch.randint(0, 5, (8,))
    zero_loss = lambda logits, t: 0.0 * logits.sum()  # noqa: E731
    sigma, clip, expected_batch = 3.0, 1.5, 8.0
    opt = torch.optim.SGD(list(tm.trainable_parameters().values()), lr=1e-3)
    seen: list[DPStep] = []
    dp = DPOptimizer(tm, opt, zero_loss, noise_multiplier=sigma, max_grad_norm=clip, expected_batch_size=expected_batch,
                     generator=mechanism_randomness().generator, output="jvp", observers=[seen.append])
    for _ in range(8):
        dp.step(feats, y)
    draws = torch.cat([t.flatten() for s in seen for t in s.grad.values()])
    assert draws.numel() > 100_000
    assert abs(float(draws.std()) / (sigma * clip / expected_batch) - 1) < 0.05


def test_poisson_batch_sizes_have_mean_qn_and_binomial_variance():
    n, q, draws = 1000, 0.1, 2000
    gen = torch.Generator().manual_seed(7)
    sizes = torch.tensor([len(poisson_sample(n, q, gen)) for _ in range(draws)], dtype=torch.float64)
    mean, var = float(sizes.mean()), float(sizes.var())
    binom_var = n * q * (1 - q)
    assert abs(mean - n * q) < 4 * math.sqrt(binom_var / draws)
    assert abs(var / binom_var - 1) < 0.15  # the sample variance's relative s.e. here is ≈ 3 %
    idx = poisson_sample(n, q, gen)
    assert torch.all(idx[1:] > idx[:-1]) and int(idx.max()) < n  # distinct, in range


def test_empty_poisson_batches_are_steps_of_pure_noise():
    gen = torch.Generator().manual_seed(0)
    sampler = BatchSampler(10, 0.05, 40, gen)
    batches = list(sampler)
    assert len(batches) == 40 and sampler.scheme == "poisson"
    assert any(len(b) == 0 for b in batches)
    base = make_tiny_vit(depth=1).double()
    tm = linearize(base, regime="fc")
    feats = tm.prefix(torch.randn(10, 1, 28, 28, dtype=torch.float64))
    empty = torch.zeros(0, dtype=torch.long)
    before, after, seen = _sgd_step(tm, make_loss("ce"), feats[empty], torch.zeros(0, dtype=torch.long), 1.0, 1.0,
                                    physical=4, output="jvp", expected=0.5)
    assert seen[0].batch_size == 0
    assert any(float((before[k] - after[k]).abs().max()) > 0 for k in before)  # the noise still moved Δw


def test_full_batch_sampler_and_steps():
    sampler = BatchSampler(7, 1.0, 3, torch.Generator())
    assert [b.tolist() for b in sampler] == [list(range(7))] * 3
    assert sampler.scheme == "full-batch" and sampler.expected_batch_size == 7
    assert steps_for_epochs(50, 1.0) == 50 and steps_for_epochs(2, 0.25) == 8
    assert [len(m) for m in micro_batches(torch.arange(10), 4)] == [4, 4, 2]


def test_canaries_are_clipped_and_added_to_the_sum():
    base = make_tiny_vit(depth=1).double()
    tm = linearize(base, regime="fc")
    g = torch.Generator().manual_seed(3)
    feats = tm.prefix(torch.randn(6, 1, 28, 28, generator=g, dtype=torch.float64))
    y = torch.randint(0, 5, (6,), generator=g)
    loss = make_loss("ce")
    clip = 0.5
    canary = torch.zeros(2, *tm.trainable_parameters()["head.weight"].shape, dtype=torch.float64)
    canary[0, 0, 0] = 100.0  # a Dirac canary far above C: clipped to C
    canary[1, 1, 1] = 0.1  # below C: added as is
    _, _, plain = _sgd_step(tm, loss, feats, y, 0.0, clip, 6, "jvp")
    tm2 = linearize(base, regime="fc")
    _, _, with_canary = _sgd_step(tm2, loss, feats, y, 0.0, clip, 6, "jvp", extra={"head.weight": canary})
    diff = with_canary[0].grad["head.weight"] - plain[0].grad["head.weight"]
    expected = torch.zeros_like(diff)
    expected[0, 0], expected[1, 1] = clip / 6, 0.1 / 6
    torch.testing.assert_close(diff, expected, rtol=1e-10, atol=1e-12)
    assert with_canary[0].num_canaries == 2 and with_canary[0].batch_size == 8
    with pytest.raises(ConfigError):
        _sgd_step(tm2, loss, feats, y, 0.0, clip, 6, "jvp", extra={"not.a.parameter": canary})


def test_mechanism_randomness_is_os_entropy_unless_seeded():
    a, b = mechanism_randomness(), mechanism_randomness()
    assert not a.seeded and "noise_seed" not in a.manifest()
    assert not torch.equal(torch.randn(8, generator=a.generator), torch.randn(8, generator=b.generator))
    c, d = mechanism_randomness(5), mechanism_randomness(5)
    assert c.seeded and c.manifest()["noise_seeded"] and "NOT FOR RELEASE" in c.manifest()["release"]
    assert torch.equal(torch.randn(8, generator=c.generator), torch.randn(8, generator=d.generator))
