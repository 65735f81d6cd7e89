"""The input-canary audit: exact identities of the black-box scores, the construction, the audit.

Fast by design: a tiny tangent ViT (the identities hold for any model), a handful of canaries.
The run on the embedded default is ``@pytest.mark.slow``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from audits.privacy import input_canaries as ic
from privtangent.data.dataset import LabeledData
from privtangent.dp.per_sample import per_sample_grads, trainable
from privtangent.dp.training import DPConfig
from privtangent.errors import ConfigError
from privtangent.train import prepare_model
from tests.conftest import make_tiny_vit

K = 5


def tiny_config(**changes) -> DPConfig:
    values = dict(tangent=True, blocks=1, regime="full", reset=True, lr=1e-2, epochs=4, seed=0,
                  target_epsilon=None, noise_multiplier=2.0, delta=1e-5, loss="ce")
    values.update(changes)
    return DPConfig(**values)


@pytest.fixture(scope="module")
def tiny():
    base = make_tiny_vit(embed_dim=32, depth=2, num_heads=2, num_classes=K, seed=0)
    model = prepare_model(base, K, tiny_config().train_config()).eval()
    return base, model


def images(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def flat_grads(model, x, v) -> torch.Tensor:
    """Reference J(x_b)ᵀ v_b through the library's per-sample gradients of the loss ⟨f, v⟩."""
    table = torch.as_tensor(v, dtype=torch.float32)
    loss = lambda f, idx: (f * table[idx]).sum()  # noqa: E731
    g = per_sample_grads(model, loss, x, torch.arange(len(v)), output="jvp", method="loop")
    return torch.cat([t.flatten(1) for t in g.values()], 1)


def flat_delta(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in trainable(model).values()])


def random_delta(model, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    model.load_delta({n: torch.randn(p.shape, generator=gen) * 0.1 for n, p in model.delta_state_dict().items()})


# --------------------------------------------------------------------------------------
# exact identities
# --------------------------------------------------------------------------------------
def test_tangent_gradients_equal_the_library_per_sample_gradients(tiny):
    _, model = tiny
    x = images(6, 1)
    v = torch.randn(6, K, generator=torch.Generator().manual_seed(2))
    got = ic.tangent_gradients(model, model.prefix(x), v)
    torch.testing.assert_close(got, flat_grads(model, x, v), atol=1e-5, rtol=1e-4)


def test_tangent_gradients_are_differentiable_in_the_input(tiny):
    _, model = tiny
    x = images(3, 3).requires_grad_(True)
    v = ic.residual_directions(torch.tensor([0, 2, 4]), K)
    ic.tangent_gradients(model, ic._prefix(model, x), v, create_graph=True).pow(2).sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    # finite-difference check of d‖g‖²/dx along a random direction
    d = torch.randn_like(x)
    h = 1e-3
    with torch.no_grad():
        xp, xm = x + h * d, x - h * d
    fp = ic.tangent_gradients(model, model.prefix(xp), v).pow(2).sum()
    fm = ic.tangent_gradients(model, model.prefix(xm), v).pow(2).sum()
    assert math.isclose(float((fp - fm) / (2 * h)), float((x.grad * d).sum()), rel_tol=2e-2)


def test_residual_direction_is_minus_the_cross_entropy_gradient_at_zero_logits():
    y = torch.tensor([0, 3, 4])
    logits = torch.zeros(3, K, requires_grad=True)
    torch.nn.functional.cross_entropy(logits, y, reduction="sum").backward()
    torch.testing.assert_close(ic.residual_directions(y, K), -logits.grad)


def test_public_subspace_is_orthonormal_and_read_from_probe_outputs(tiny):
    _, model = tiny
    probes = images(40, 4)
    feats = model.prefix(probes)
    sub = ic.public_subspace(model, feats, K, rank=12, oversample=20, power_iterations=2, chunk=16)
    torch.testing.assert_close(sub.basis @ sub.basis.T, torch.eye(12), atol=1e-4, rtol=0)
    a = ic._probe_rows(model, feats, K).double()
    torch.testing.assert_close(sub.coef @ a, sub.basis.double(), atol=1e-4, rtol=1e-3)
    # the singular values are A's largest ones
    top = torch.linalg.svdvals(a)[:12]
    torch.testing.assert_close(sub.singular_values, top, rtol=0.03, atol=1e-6)
    # ⟨Δw, basis_j⟩ read from the model's outputs on the probes alone
    released = prepare_model(tiny[0], K, tiny_config().train_config()).eval()
    random_delta(released, 5)
    outs = ic.tangent_outputs(released, probes, "jvp")
    torch.testing.assert_close(sub.read(outs), sub.basis.double() @ flat_delta(released).double(), atol=1e-4, rtol=1e-3)


def test_probe_span_is_every_probe_row_and_is_read_from_probe_outputs(tiny):
    base, model = tiny
    probes, canary_images = images(10, 11), images(5, 12)
    labels = torch.tensor([0, 1, 2, 3, 4])
    feats = model.prefix(probes)
    span = ic.probe_span(model, feats, K, chunk=3)
    a = ic._probe_rows(model, feats, K).double()
    assert span.rank == int(torch.linalg.matrix_rank(a))
    torch.testing.assert_close(span.basis.double() @ span.basis.double().T, torch.eye(span.rank, dtype=torch.float64),
                               atol=1e-4, rtol=0)
    torch.testing.assert_close(span.coef @ a, span.basis.double(), atol=1e-4, rtol=1e-3)
    basis = span.basis.double()
    residual = a - (a @ basis.T) @ basis  # every probe row lies in the span
    assert float(residual.norm() / a.norm()) < 1e-4
    # the whole-span decoder reads ⟨Δw, ŵ_c⟩, ŵ_c ⊥ every probe row, from the outputs alone
    canaries = ic.canary_directions(model, canary_images, labels, K, span)
    released = prepare_model(base, K, tiny_config().train_config()).eval()
    random_delta(released, 13)
    _, projected = ic.projected_scores(ic.tangent_outputs(released, canary_images, "jvp"),
                                       ic.tangent_outputs(released, probes, "jvp"), canaries, span.coef)
    g = flat_grads(model, canary_images, ic.residual_directions(labels, K)).double()
    u = g / g.norm(dim=1, keepdim=True)
    w = u - (u @ basis.T) @ basis
    assert float((w @ a.T).abs().max()) < 1e-4 * float(a.norm(dim=1).max())
    torch.testing.assert_close(projected, (w / w.norm(dim=1, keepdim=True)) @ flat_delta(released).double(),
                               atol=1e-4, rtol=1e-3)


def test_pushing_canaries_out_of_the_probe_span_lowers_their_share_inside_it(tiny):
    _, model = tiny
    probes, canary_images = images(10, 21), images(6, 22)
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    span = ic.probe_span(model, model.prefix(probes), K)
    pushed, trace = ic.push_out_of_span(model, canary_images, labels, K, span.basis, steps=30, every=10, batch=4)
    assert [t["step"] for t in trace] == [0, 10, 20, 30] and pushed.shape == canary_images.shape
    u = ic.canary_gradients(model, pushed, labels, K).double()
    share = ((u / u.norm(dim=1, keepdim=True)) @ span.basis.double().T).pow(2).sum(1)
    assert trace[-1]["median"] == pytest.approx(float(share.median()), abs=1e-4)  # the trace measures the result
    assert trace[-1]["median"] < 0.8 * trace[0]["median"]


def test_a_span_construction_scores_against_the_whole_probe_span(tiny):
    base, model = tiny
    probes = images(10, 23)
    construction = ic.Construction(num_canaries=6, rank=4, surrogate_steps=3, span_steps=3)
    canaries, coef = ic.build_input_canaries(base, tiny_config(), probes, K, construction)
    span = ic.probe_span(model, model.prefix(probes), K)
    assert coef.shape == span.coef.shape and canaries.coords.shape == (6, span.rank)
    assert construction.to_dict()["span_steps"] == 3 and "span_steps" not in ic.Construction().to_dict()
    for bad in (dict(span_steps=-1), dict(num_canaries=1), dict(rank=1.5)):
        with pytest.raises(ConfigError, match="construction"):
            ic.Construction(**bad)


def test_scores_from_outputs_are_the_intended_linear_functionals_of_delta_w(tiny):
    base, model = tiny
    probes, canary_images = images(30, 6), images(8, 7)
    labels = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2])
    sub = ic.public_subspace(model, model.prefix(probes), K, rank=10, oversample=15)
    canaries = ic.canary_directions(model, canary_images, labels, K, sub)
    released = prepare_model(base, K, tiny_config().train_config()).eval()
    random_delta(released, 8)
    dw = flat_delta(released).double()
    raw, projected = ic.projected_scores(ic.tangent_outputs(released, canary_images, "jvp"),
                                         ic.tangent_outputs(released, probes, "jvp"), canaries, sub.coef)
    g = flat_grads(model, canary_images, ic.residual_directions(labels, K)).double()
    u = g / g.norm(dim=1, keepdim=True)
    w = u - (u @ sub.basis.double().T) @ sub.basis.double()
    torch.testing.assert_close(raw, u @ dw, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(projected, (w / w.norm(dim=1, keepdim=True)) @ dw, atol=1e-4, rtol=1e-3)
    # the public interference matrix and noise Gram
    wh = w / w.norm(dim=1, keepdim=True)
    torch.testing.assert_close(canaries.interference.double(), wh @ u.T, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(canaries.noise_gram.double(), wh @ wh.T, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(canaries.keep.double(), w.norm(dim=1), atol=1e-5, rtol=1e-4)


def test_a_full_output_model_is_read_through_the_public_reference(tiny):
    base, _ = tiny
    cfg = tiny_config(output="full")
    released = prepare_model(base, K, cfg.train_config()).eval()
    reference = prepare_model(base, K, cfg.train_config()).eval()
    random_delta(released, 9)
    x = images(4, 10)
    torch.testing.assert_close(ic.tangent_outputs(released, x, "full", reference), released(x, output="jvp"),
                               atol=1e-5, rtol=1e-4)
    with pytest.raises(ConfigError):
        ic.tangent_outputs(released, x, "full")


def test_last_block_activations_reproduce_the_models_primal_output(tiny):
    _, model = tiny
    x = images(5, 11)
    acts = ic.last_block_activations(model, model.prefix(x))
    base = model.base
    with torch.no_grad():
        tokens = base.blocks[-1](model.prefix(x))
        expected = base.norm(tokens)[:, 0]
    torch.testing.assert_close(acts["final_norm"].detach(), expected, atol=1e-5, rtol=1e-4)
    assert acts["hidden"].shape == (5, 4 * 32) and acts["value_mix"].shape == (5, 2 * 32)


# --------------------------------------------------------------------------------------
# the construction and the decoder
# --------------------------------------------------------------------------------------
def _overlap(model, x, y, sub) -> float:
    g = ic.tangent_gradients(model, model.prefix(x), ic.residual_directions(y, K))
    u = g / g.norm(dim=1, keepdim=True)
    return float((u @ sub.basis.T).pow(2).sum(1).mean())


def test_the_construction_moves_canaries_out_of_the_public_subspace(tiny):
    _, model = tiny
    probes = images(60, 12)
    sub = ic.public_subspace(model, model.prefix(probes), K, rank=8, oversample=16)
    x0, y0 = ic.make_input_canaries(model, probes, sub, 12, K, seed=3, surrogate_steps=0)
    x1, y1 = ic.make_input_canaries(model, probes, sub, 12, K, seed=3, surrogate_steps=60, refine_steps=2,
                                    batch=6, refine_lr=0.02)
    assert torch.equal(y0, y1)  # labels: from the seed alone
    assert _overlap(model, x1, y1, sub) < 0.8 * _overlap(model, x0, y0, sub)


def test_mmse_decoder_separates_a_simulated_mixture_better_than_matched_filtering():
    rng = np.random.default_rng(0)
    m, d = 300, 400
    u = torch.as_tensor(rng.standard_normal((m, d)) + 0.6 * rng.standard_normal((1, d)))  # a shared component
    u = u / u.norm(dim=1, keepdim=True)
    gram = u @ u.T
    canaries = ic.InputCanaries(torch.zeros(m, 1), torch.zeros(m, dtype=torch.long), torch.ones(m),
                                torch.zeros(m, 1), torch.ones(m), gram.float(), gram.float())
    wins = 0
    for trial in range(5):
        bits = rng.random(m) < 0.5
        dw = 1.5 * (torch.as_tensor(bits, dtype=torch.float64) @ u) + torch.as_tensor(rng.standard_normal(d))
        s = u @ dw
        def auc(scores):
            from sklearn.metrics import roc_auc_score
            return roc_auc_score(bits, np.asarray(scores))
        wins += auc(ic.mmse_scores(s, canaries)) > auc(s)
    assert wins >= 4


def test_mmse_decoder_handles_more_canaries_than_dimensions():
    """m > |Δw| (the FC regime with 1,024 canaries): the noise Gram is singular; pseudo-inverses."""
    rng = np.random.default_rng(1)
    u = torch.as_tensor(rng.standard_normal((50, 20)))
    u = u / u.norm(dim=1, keepdim=True)
    gram = u @ u.T
    canaries = ic.InputCanaries(torch.zeros(50, 1), torch.zeros(50, dtype=torch.long), torch.ones(50),
                                torch.zeros(50, 1), torch.ones(50), gram.float(), gram.float())
    bits = rng.random(50) < 0.5
    s = u @ (torch.as_tensor(bits, dtype=torch.float64) @ u + torch.as_tensor(rng.standard_normal(20)))
    out = ic.mmse_scores(s, canaries)
    assert out.shape == (50,) and bool(torch.isfinite(out).all())


def test_unknown_decoder_and_bug_are_named():
    with pytest.raises(ConfigError, match="decoder"):
        ic.input_canary_scores(torch.zeros(2, K), torch.zeros(2, K), None, torch.zeros(1, 8), decoder="oracle")


# --------------------------------------------------------------------------------------
# the audit end to end (tiny model)
# --------------------------------------------------------------------------------------
def _tiny_train(n: int = 40) -> LabeledData:
    gen = torch.Generator().manual_seed(20)
    return LabeledData(torch.randn(n, 1, 28, 28, generator=gen), torch.randint(0, K, (n,), generator=gen),
                       torch.arange(n), [str(k) for k in range(K)], "tiny")


def test_canaries_enter_training_as_ordinary_records():
    train = _tiny_train()
    made = ic.InputCanaries(images(6, 21), torch.tensor([0, 1, 2, 3, 4, 0]), torch.ones(6), torch.zeros(6, 1),
                            torch.ones(6), torch.eye(6), torch.eye(6))
    bits = np.array([1, 0, 1, 1, 0, 0], dtype=bool)
    data = ic.with_canaries(train, made, bits)
    assert len(data) == len(train) + 3
    torch.testing.assert_close(data.images[len(train):], made.images[[0, 2, 3]])
    assert data.labels[len(train):].tolist() == [0, 2, 3]
    assert (data.ids[len(train):] >= ic.CANARY_ID_OFFSET).all()


def test_canaries_join_a_streamed_image_folder(tmp_path, tiny):
    """A team's image folder streams from disk; the canary run decodes it and appends the canaries."""
    from privtangent.data import open_image_folder
    from tests.test_data_streaming import write_folder

    base, _ = tiny
    train = open_image_folder(write_folder(tmp_path / "f", {"a": 3, "b": 2}, size=(28, 28), mode="L"), model=base)
    made = ic.InputCanaries(images(2, 23), torch.tensor([0, 1]), torch.ones(2), torch.zeros(2, 1), torch.ones(2),
                            torch.eye(2), torch.eye(2))
    data = ic.with_canaries(train, made, np.array([True, True]))
    assert len(data) == 7 and data.labels[5:].tolist() == [0, 1]
    torch.testing.assert_close(data.images[:5], train.materialize().images)


def test_tiny_audit_end_to_end_and_clipping_off_fails(tiny):
    """64 canaries can certify at most ε ≈ 1.5 here (the audit power): the claim audited is ε = 1."""
    base, model = tiny
    train, probes = _tiny_train(), images(30, 22)
    cfg = tiny_config(noise_multiplier=None, target_epsilon=1.0, epochs=10)
    sub = ic.public_subspace(model, model.prefix(probes), K, rank=6, oversample=10)
    x, y = ic.make_input_canaries(model, probes, sub, 64, K, seed=1, surrogate_steps=20)
    pack = (ic.canary_directions(model, x, y, K, sub), sub.coef.float())
    result = ic.run_input_canary_audit(base, train, cfg, probe_images=probes, canaries=pack, seed=0, noise_seed=1,
                                       ideal_simulations=3, decoder="projected")
    assert result.key == ic.SECTION
    assert [c.status.value for c in result.checks] == ["PASS"]
    row = result.body["rows"][-1]
    assert row["num_canaries"] == 64 and 0 <= row["epsilon_lb"] <= row["epsilon_claimed"] < row["audit_power"]
    # Adam over 10 full-batch steps keeps 0.78 of μ at most (audits.privacy.readout_ceiling); SGD all of it
    assert 0.7 < result.body["runs"][0]["readout_ceiling"] < 0.9
    assert ic._readout_ceiling(cfg.replace(optimizer="sgd"), 10) == pytest.approx(1.0, abs=0.01)
    assert ic._readout_ceiling(cfg.replace(sample_rate=0.5), 10) is None  # a canary is not in every step
    broken = ic.run_input_canary_audit(base, train, cfg, probe_images=probes, canaries=pack, seed=0, noise_seed=1,
                                       ideal_simulations=3, decoder="projected", bug="clip-off")
    assert [c.status.value for c in broken.checks] == ["FAIL"]


@pytest.mark.slow
def test_embedded_default_small_audit_passes_and_catches_clipping_off(base_model, near_small, tmp_path):
    """The main job's recipe on 300 training images, 256 canaries from a short construction
    (cached in ``tmp_path``): a correct run stays under the claim, clipping off is refuted."""
    train, test = near_small
    cfg = DPConfig(reset=True, target_epsilon=1.0)
    construction = ic.Construction(num_canaries=256, rank=50, surrogate_steps=40)
    kwargs = dict(probe_images=test.images, epsilons=[1.0], construction=construction, cache_directory=tmp_path,
                  seed=0, ideal_simulations=3)
    ok = ic.run_input_canary_audit(base_model, train, cfg, **kwargs)
    assert [c.status.value for c in ok.checks] == ["PASS"]
    assert ok.body["construction"]["cached"] is False
    broken = ic.run_input_canary_audit(base_model, train, cfg, bug="clip-off", **kwargs)
    assert broken.body["construction"]["cached"] is True  # the same canaries, from the cache
    assert [c.status.value for c in broken.checks] == ["FAIL"]
