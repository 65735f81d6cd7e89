"""Input canaries: a one-run privacy audit of the *released* tangent model, from its outputs alone.

**Threat model.** The auditor inserts m canary records (image, label) into the training set, each
independently with probability ½ (the secret bits of the one-run game, Steinke, Nasr & Jagielski
2023), lets the production recipe (``privtangent.dp.training.fit_dp`` with the audited
``DPConfig``) train ONE model, and then sees only that model as a function x ↦ logits. It knows
the public base model, the configuration (hence the linearization point and the Jacobians), the
canaries, and public data of the task's distribution ("probes"); it never sees Δw, the updates,
the noise or the bits. The canaries are ordinary records: they go through the same per-sample
clipping as every other record.

**Why a tangent model leaks through its outputs.** With output "jvp" the model is
f(x) = J(x)·Δw, linear in Δw, and J(x) is public. So for any input x and any vector v the auditor
reads an exact linear functional of the released parameters, ⟨Δw, J(x)ᵀv⟩ = vᵀ f(x). Canary c's
own gradient at the start of training (Δw = 0, so f = 0 and the softmax is uniform) is
−g_c with g_c = J(x_c)ᵀ v_c, v_c = e_{y_c} − 𝟙/K: an included canary pushes Δw along
u_c = g_c/‖g_c‖ by C per step (its gradient norm is far above C, so it is clipped), and T steps
of full-batch DP-GD add T·C along u_c against noise of standard deviation √T·σ·C — the white-box
canary's μ = √T/σ — *if* (i) u_c stays the canary's direction during training, (ii) nothing else
moves Δw along u_c, and (iii) the optimizer is (close to) linear in the updates.

**What breaks (ii), and the construction that keeps it.** The tangent features of natural inputs
are nearly low-rank: on the embedded default the probes' Jacobian rows keep 99.0 % of their squared
norm in 200 directions, and a Gaussian-noise image keeps only 0.26 of its unit direction u_c
outside them (benchmarks/results/input_canaries.md, "Geometry"). Without crafting, the data's
gradient sum and the canaries' shared components swamp every canary's score. Hence:

1. *The public tangent subspace* (``public_subspace``): the top-R right singular vectors B of the
   probes' Jacobian rows A (rows J(x_p)ᵀ(e_k − e_K)), by a randomized SVD (Halko, Martinsson &
   Tropp 2011, Alg. 4.4 + 5.1). Each basis vector is a known combination of probe rows, B = Γ·A,
   so ⟨Δw, B_j⟩ = Γ_j · (A·Δw) is read from the model's outputs on the probes.
2. *Canaries crafted outside it* (``make_input_canaries``): images optimized against the public
   base model so that g_c has little energy in B's span and the canaries' directions are nearly
   orthogonal to each other. First a cheap surrogate on the last block's activations (every
   per-sample gradient of a linear site is (output gradient) ⊗ (site input), so inputs whose site
   activations avoid the data's principal activation directions, and each other's, have tangent
   gradients that do too), then optionally a few steps on the exact objective (below).
3. *The score* (``input_canary_scores``): the component of Δw along w_c = u_c − Bᵀ(B u_c), the
   part of the canary's direction outside the public subspace, normalized:
   s_c = ⟨Δw, w_c⟩/‖w_c‖ = (v_cᵀ f(x_c)/‖g_c‖ − (B u_c)·Γ·(A Δw))/‖w_c‖. What remains of the
   canaries' overlap with each other is a multiuser-detection problem, s = a·M·b + noise with the
   public M_{cc'} = ⟨ŵ_c, u_c'⟩ (CDMA: canaries are users, u_c their spreading codes): the default
   decoder is the linear MMSE detector (Verdú 1998), its two scales estimated from the scores.

The exact objective of step 2 for canary c is ½ log(1 − ‖B u_c‖²) − ½ log(1 + κ Σ_{c'} ⟨ŵ_c,
w_c'⟩²): with κ = μ²/4 it is the log of the predicted signal-to-noise ratio when the other
canaries' bits are unknown (Bernoulli(½) bits have variance ¼).

**Validity.** The guesses — top ⌊r/2⌋ scores "in", bottom r − ⌊r/2⌋ "out", r fixed before the
run from m and the claim (``audits.privacy.whitebox.choose_num_guesses``) — are a function of the
released model's outputs on inputs fixed before the bits were drawn, and of public quantities:
post-processing of the DP training's output. So the one-run bounds of the white-box audit (the
f-DP bound of ``audits.privacy.fdp`` for the accountant's curve, and Steinke et al.'s binomial
bound) stay valid for any mechanism that meets the claim, however crude the score. Nothing here
relies on the approximations (i)–(iii): they only decide how *tight* the audit is.

**How tight, measured** (benchmarks/results/input_canaries.md; embedded default, 1,024 canaries,
Adam, 5 seeds): median f-DP tightness ε_lb/ε = 0.05 / 0.30 / 0.21 at ε = 1 / 3 / 8, where the
black-box LiRA one-run audit gets 0.00 / 0.04 / 0.05 and the white-box audit 0.60 / 0.69 / 0.65.
The scores carry about half of the white-box signal (μ̂/μ ≈ 0.43–0.52), and the one-run game needs
nearly all of it: even a perfect decoder reaches 0.5 at ε = 8 only with μ_eff/μ ≥ 0.9 (m from
1,024 to 8,192). Fewer canaries (128) or more (2,048), a larger removed subspace (rank 100–800)
and reading along the canaries' drifted residuals do not close the gap. The likeliest cause is
where the canaries lie: a crafted canary keeps about three quarters of its direction inside the
span of the training images' Jacobian rows (a Gaussian-noise image: 99 %), only about a third in
the top 200 directions the decoder removes, and every data gradient of the run lies in that span.
Inside it the data's gradients also push back: including a canary moves Δw along the part of u_c
inside the span by 0.66–0.81 of what it adds, along the part outside by 0.79–1.02, and the data
leak along that outside part is 0.01–0.02 of the noise (SGD; benchmark section "outside").

Hence the optional construction ``Construction(span_steps=S)``: S Adam steps push each canary out
of the probes' WHOLE span (``push_out_of_span``), and the scores remove that whole span
(``probe_span``). On 16 canaries (400 steps: median share inside 0.82 → 0.28) it doubles the
signal at ε = 8, μ̂/μ 0.71 (SGD) / 0.58 (Adam) against 0.34 / 0.28 for the default canaries
(MMSE; standard error ≈ 0.1). On their own (m = 128, 3 seeds) the pushed canaries reach μ̂/μ
0.80 / 0.64 at ε = 3 / 8 against 0.49 / 0.60 for the default construction's first 128: the gain
holds at ε = 3 but mostly vanishes at ε = 8 under Adam, so leaving the span is not the whole
story. It costs 0.06–0.13 s per canary and step on 2 cores (batches of 128 / 16; the projection
onto the span dominates), 6.5 h or more for 1,024 canaries, once; and the goal needs
μ_eff/μ ≥ 0.9 for thousands of canaries. At the default construction's tightness
the audit refutes clipping turned off (ε = 1, 3) but not a halved noise: it complements the
white-box audit, it does not replace it.

**The optimizer's ceiling** (``audits.privacy.readout_ceiling``). Approximation (iii) fails for
Adam in a way no construction or decoder can undo: Adam divides each coordinate by √v̂, and under
DP noise v̂ is the noise's own second moment, so the released Δw is a nonlinear function of the
noise (at step 1, sign(g)). On a noise-only coordinate the final model keeps at most 0.89 of μ
after the recipe's 50 steps (0.94 at 100, 0.97 at 200; plain SGD keeps all of it), and less where
the data's gradient adds to v̂. Each audited run reports that ceiling (``readout_ceiling``).
Even a perfect decoder at that ceiling reaches only 0.52 at ε = 8 with 4,096 canaries, the most
that fit three audited ε in 2 minutes on 2 cores (benchmark sections adam_ceiling, run_cost).

**What it audits**: the whole training pipeline as run — real records through the data path, the
per-sample gradients, clipping, noise, steps, optimizer — from the released model alone.
**What it does not**: models it did not train (the canary run is one run of the configuration,
like the white-box audit's), and it cannot prove (ε, δ)-DP: an ε lower bound above the claim
refutes the claim; one below it does not confirm it.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor

from audits.privacy.claims import BUGS, Claim, claim_for
from audits.privacy.game import BoundRow, bound_rows, choose_num_guesses
from audits.privacy.readout_ceiling import readout_efficiency
from audits.results import AuditSection, Check, Status
from privtangent.data.dataset import ImageData, LabeledData
from privtangent.dp.per_sample import output_gradients, trainable
from privtangent.dp.training import fit_dp
from privtangent.errors import ConfigError, PrivtangentError
from privtangent.features import FeatureCache
from privtangent.io.checkpoint import load_checkpoint, save_checkpoint
from privtangent.io.hashing import sha256_bytes, tensor_hash
from privtangent.paths import cache_dir
from privtangent.train import prepare_model

__all__ = ["DECODERS", "Construction", "InputCanaries", "InputCanaryRun", "TangentSubspace",
           "build_input_canaries", "canary_directions", "canary_gradients", "input_canary_run", "input_canary_scores",
           "last_block_activations", "load_or_make_input_canaries", "make_input_canaries", "mmse_scores",
           "output_contrasts", "probe_span", "projected_scores", "public_subspace", "push_out_of_span",
           "residual_directions", "run_input_canary_audit", "tangent_gradients", "tangent_outputs", "with_canaries"]

SECTION = "input_canary_audit"
DECODERS = ("mmse", "projected", "raw")
DEFAULT_CANARIES = 1024
DEFAULT_RANK = 200  # public tangent directions removed from every canary's score
DEFAULT_PROBES = 1000
CANARY_ID_OFFSET = 10**12  # canary record IDs: far above any data set's IDs
CONSTRUCTION_VERSION = 1  # bump when the construction changes (cache key)


# --------------------------------------------------------------------------------------
# linear functionals of Δw that the outputs reveal
# --------------------------------------------------------------------------------------
def residual_directions(labels: Tensor, num_classes: int) -> Tensor:
    """v_c = e_{y_c} − 𝟙/K: minus the cross-entropy residual ∂ℓ/∂f at f = 0 (uniform softmax)."""
    eye = torch.eye(num_classes)
    return eye[labels.long()] - 1.0 / num_classes


def output_contrasts(outputs: Tensor) -> Tensor:
    """(f_k − f_K)_{k < K} per row, flattened row-major: A·Δw when ``outputs`` = J(X)·Δw and A has
    the rows J(x_p)ᵀ(e_k − e_K) in the same order (``public_subspace``)."""
    return (outputs[:, :-1] - outputs[:, -1:]).reshape(-1)


def _contrast_directions(num_classes: int) -> Tensor:
    """The K − 1 vectors e_k − e_K (rows)."""
    d = torch.zeros(num_classes - 1, num_classes)
    d[:, :-1] = torch.eye(num_classes - 1)
    d[:, -1] = -1.0
    return d


# --------------------------------------------------------------------------------------
# per-sample tangent gradients J(x)ᵀv, differentiable in the input when asked
# --------------------------------------------------------------------------------------
def tangent_gradients(model: Any, features: Tensor, directions: Tensor, *, create_graph: bool = False) -> Tensor:
    """(B, |Δw|): row b is J(x_b)ᵀ v_b for a tangent model with output "jvp" (flattened in the order
    of ``trainable(model)``), from one forward and one backward pass (Σ_t g_t ⊗ x_t per linear site).

    ``features``: the frozen prefix's output for the inputs; ``directions``: (B, K) the v_b.
    ``create_graph``: keep the graph so the result can be differentiated w.r.t. ``features``.
    """
    grads = output_gradients(model, features, directions, output="jvp", create_graph=create_graph)
    return torch.cat([g.flatten(1) for g in grads.values()], 1)


def _prefix(model: Any, images: Tensor) -> Tensor:
    """The frozen prefix's output, differentiable in the images (``TangentViT.prefix`` is not)."""
    base = model.base
    x = base.norm_pre(base.patch_drop(base._pos_embed(base.patch_embed(images))))
    for block in base.blocks[: model.start]:
        x = block(x)
    return x


# --------------------------------------------------------------------------------------
# the public tangent subspace (randomized SVD of the probes' Jacobian rows)
# --------------------------------------------------------------------------------------
@dataclass
class TangentSubspace:
    """Orthonormal rows ``basis`` (R, |Δw|) = ``coef`` (R, n·(K−1)) · A, A the probes' Jacobian rows."""

    basis: Tensor
    coef: Tensor
    singular_values: Tensor
    probe_hash: str

    @property
    def rank(self) -> int:
        return int(self.basis.shape[0])

    def read(self, probe_outputs: Tensor) -> Tensor:
        """⟨Δw, basis_j⟩ for every j, from the model's outputs J(X_p)·Δw on the probes."""
        return self.coef @ output_contrasts(probe_outputs.double()).to(self.coef.dtype)


def _probe_rows(model: Any, features: Tensor, num_classes: int) -> Tensor:
    """A for a chunk of probes: rows J(x_p)ᵀ(e_k − e_K), probe-major."""
    contrasts = _contrast_directions(num_classes)
    k = contrasts.shape[0]
    return tangent_gradients(model, features.repeat_interleave(k, 0), contrasts.repeat(features.shape[0], 1))


def _rows_times(model: Any, probe_features: Tensor, num_classes: int, right: Tensor, chunk: int) -> Tensor:
    """A·right, one chunk of probes at a time."""
    return torch.cat([_probe_rows(model, probe_features[i : i + chunk], num_classes).double() @ right
                      for i in range(0, probe_features.shape[0], chunk)])


def _rows_transposed_times(model: Any, probe_features: Tensor, num_classes: int, left: Tensor,
                           chunk: int) -> Tensor:
    """leftᵀ·A (left has one row per row of A), one chunk of probes at a time."""
    per = num_classes - 1
    out = torch.zeros(left.shape[1], sum(int(p.numel()) for p in trainable(model).values()), dtype=torch.float64)
    for i in range(0, probe_features.shape[0], chunk):
        a = _probe_rows(model, probe_features[i : i + chunk], num_classes).double()
        out += left[i * per : i * per + a.shape[0]].T @ a
    return out


def public_subspace(model: Any, probe_features: Tensor, num_classes: int, *, rank: int = DEFAULT_RANK,
                    oversample: int = 40, power_iterations: int = 1, seed: int = 0, chunk: int = 100
                    ) -> TangentSubspace:
    """Top-``rank`` right singular vectors of the probes' Jacobian rows A by a randomized SVD (Halko,
    Martinsson & Tropp 2011, Alg. 4.4 with ``power_iterations`` subspace iterations, then Alg. 5.1),
    with the coefficients Γ such that basis = Γ·A. A is never held whole: every product with it is
    computed one chunk of probes at a time."""
    n = probe_features.shape[0]
    dim = sum(int(p.numel()) for p in trainable(model).values())
    width = min(rank + oversample, n * (num_classes - 1), dim)
    if rank < 1 or width < rank:
        raise ConfigError(f"rank must be in [1, {min(n * (num_classes - 1), dim)}] for {n} probes, got {rank}")
    omega = torch.randn(dim, width, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    q, _ = torch.linalg.qr(_rows_times(model, probe_features, num_classes, omega, chunk))
    for _ in range(power_iterations):
        z, _ = torch.linalg.qr(_rows_transposed_times(model, probe_features, num_classes, q, chunk).T)
        q, _ = torch.linalg.qr(_rows_times(model, probe_features, num_classes, z, chunk))
    b = _rows_transposed_times(model, probe_features, num_classes, q, chunk)  # QᵀA
    evals, evecs = torch.linalg.eigh(b @ b.T)
    order = torch.argsort(evals, descending=True)[:rank]
    s = evals[order].clamp(min=0).sqrt()
    if not bool((s > 0).all()):
        raise PrivtangentError("the probes' Jacobian has fewer non-zero singular values than the requested rank")
    left = evecs[:, order] / s  # basis = leftᵀ QᵀA
    return TangentSubspace((left.T @ b).float(), left.T @ q.T, s, tensor_hash({"probe_features": probe_features}))


def probe_span(model: Any, probe_features: Tensor, num_classes: int, *, chunk: int = 100,
               rel_tol: float = 1e-9) -> TangentSubspace:
    """The WHOLE span of the probes' Jacobian rows A as a public subspace: with A·Aᵀ = VΛVᵀ,
    coef = Λ^{-1/2}Vᵀ (eigenvalues above ``rel_tol`` × the largest) and basis = coef·A, orthonormal.

    Exact, unlike ``public_subspace``'s randomized top-R: removing it from a canary's direction
    removes every direction a natural image's tangent gradient takes (as far as the probes stand in
    for the training data). Holds A whole: n·(K−1) × |Δw| floats (1,000 probes × 4 contrasts ×
    199k parameters is 3.2 GB on the embedded default)."""
    rows = torch.cat([_probe_rows(model, probe_features[i : i + chunk], num_classes)
                      for i in range(0, probe_features.shape[0], chunk)])
    gram = torch.zeros(rows.shape[0], rows.shape[0], dtype=torch.float64)
    for j in range(0, rows.shape[1], 20000):  # column blocks: never a float64 copy of A
        block = rows[:, j : j + 20000].double()
        gram += block @ block.T
    evals, evecs = torch.linalg.eigh(gram)
    order = torch.argsort(evals, descending=True)
    evals, evecs = evals[order], evecs[:, order]
    kept = evals > rel_tol * evals[0]
    coef = (evecs[:, kept] / evals[kept].sqrt()).T
    return TangentSubspace((coef.float() @ rows), coef, evals[kept].sqrt(), tensor_hash({"probe_features": probe_features}))


# --------------------------------------------------------------------------------------
# the construction
# --------------------------------------------------------------------------------------
def last_block_activations(model: Any, features: Tensor) -> dict[str, Tensor]:
    """The inputs of the last block's linear sites for the CLS row (primal, Δw = 0): the CLS token's
    first norm (q rows of qkv), the attention-weighted token norms per head (v rows), the
    attention output (proj), the second norm (fc1), the hidden activation (fc2) and the final norm
    (head). A timm ``Block`` with ``Attention`` and ``Mlp``, token pooling."""
    base = model.base
    block, attn = base.blocks[-1], base.blocks[-1].attn
    b, n, d = features.shape
    heads = attn.num_heads
    a1 = block.norm1(features)
    qkv = F.linear(a1, attn.qkv.weight, attn.qkv.bias).reshape(b, n, 3, heads, d // heads)
    weights = (torch.einsum("bhd,bnhd->bhn", qkv[:, 0, 0], qkv[:, :, 1]) * attn.scale).softmax(-1)
    mixed = torch.einsum("bhn,bnhd->bhd", weights, qkv[:, :, 2]).reshape(b, d)
    x = features[:, 0] + attn.proj(mixed)
    a2 = block.norm2(x)
    hidden = block.mlp.act(block.mlp.fc1(a2))
    out = base.norm(x + block.mlp.fc2(hidden))
    return {"norm1_cls": a1[:, 0], "value_mix": torch.einsum("bhn,bnd->bhd", weights, a1).reshape(b, heads * d),
            "attn_out": mixed, "norm2": a2, "hidden": hidden, "final_norm": out}


SURROGATE_WEIGHTS = {"norm1_cls": 0.5, "value_mix": 0.5, "attn_out": 1.0, "norm2": 1.0, "hidden": 1.0, "final_norm": 1.0}


def _principal_directions(acts: Mapping[str, Tensor], energy: float) -> dict[str, Tensor]:
    """Per site, the fewest right singular vectors of the probes' activations holding ``energy``."""
    out = {}
    for site, a in acts.items():
        _, s, vh = torch.linalg.svd(a.double(), full_matrices=False)
        share = (s * s).cumsum(0) / (s * s).sum()
        out[site] = vh[: int((share < energy).sum()) + 1].float()
    return out


def _surrogate_loss(acts: Mapping[str, Tensor], principal: Mapping[str, Tensor], same_label: Tensor) -> Tensor:
    """Σ_c [overlap with the probes' principal activations + Σ_{c'} (activation cosine)²], averaged
    over sites with ``SURROGATE_WEIGHTS``; cosines of different labels weigh −¼ (the cosine of
    their residuals e_y − 𝟙/K at K = 5)."""
    total = sum(SURROGATE_WEIGHTS.values())
    overlap, cosine = 0.0, 0.0
    for site, a in acts.items():
        unit = a / a.norm(dim=1, keepdim=True).clamp(min=1e-12)
        w = SURROGATE_WEIGHTS[site] / total
        overlap = overlap + w * (unit @ principal[site].T).pow(2).sum(1)
        cosine = cosine + w * (unit @ unit.T)
    cross = cosine * same_label
    cross = cross - torch.diag(torch.diag(cross))
    return (overlap + cross.pow(2).sum(1)).mean()


def _label_weights(labels: Tensor, num_classes: int) -> Tensor:
    v = residual_directions(labels, num_classes)
    v = v / v.norm(dim=1, keepdim=True)
    return v @ v.T


def _tail_directions(model: Any, images: Tensor, labels: Tensor, num_classes: int, basis: Tensor,
                     create_graph: bool) -> tuple[Tensor, Tensor]:
    """(w, ‖B u‖²): the canaries' unit directions u minus their public-subspace part, and that part's energy."""
    g = tangent_gradients(model, _prefix(model, images), residual_directions(labels, num_classes),
                          create_graph=create_graph)
    u = g / g.norm(dim=1, keepdim=True)
    coords = u @ basis.T
    return u - coords @ basis, coords.pow(2).sum(1)


def make_input_canaries(model: Any, probe_images: Tensor, subspace: TangentSubspace, num_canaries: int,
                        num_classes: int, *, seed: int = 0, surrogate_steps: int = 300, refine_steps: int = 0,
                        kappa: float = 0.7, lr: float = 0.05, refine_lr: float = 0.01, batch: int = 64,
                        energy: float = 0.995, progress: bool = False) -> tuple[Tensor, Tensor]:
    """(images, labels) of ``num_canaries`` input canaries for the tangent ``model`` (Δw = 0).

    Labels uniform over the classes, images initialized N(0, 1) in the normalized pixel space
    (seeded), then optimized with Adam: ``surrogate_steps`` full-batch steps of the activation
    surrogate against the probes' principal activation directions (``energy`` of their squared
    norm per site), then ``refine_steps`` passes of the exact objective of the module docstring
    (κ = μ²/4 of the hardest claim audited), canaries in batches against the others' current tail
    directions. Uses only public things: the model, the probes, the seed.
    """
    if num_canaries < 2:
        raise ConfigError(f"num_canaries must be ≥ 2, got {num_canaries}")
    gen = torch.Generator().manual_seed(seed)
    images = torch.randn(num_canaries, *probe_images.shape[1:], generator=gen)
    labels = torch.randint(0, num_classes, (num_canaries,), generator=gen)
    same = _label_weights(labels, num_classes)
    with torch.no_grad():
        principal = _principal_directions(last_block_activations(model, _prefix(model, probe_images)), energy)
    images.requires_grad_(True)
    opt = torch.optim.Adam([images], lr=lr)
    for step in range(surrogate_steps):
        loss = _surrogate_loss(last_block_activations(model, _prefix(model, images)), principal, same)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if progress and step % 50 == 0:
            print(f"input canaries: surrogate step {step}, loss {loss.item():.4f}", flush=True)
    images = images.detach()
    if refine_steps:
        images = _refine(model, images, labels, num_classes, subspace.basis, steps=refine_steps, kappa=kappa,
                         lr=refine_lr, batch=batch, gen=gen, progress=progress)
    return images, labels


def _refine(model: Any, images: Tensor, labels: Tensor, num_classes: int, basis: Tensor, *, steps: int,
            kappa: float, lr: float, batch: int, gen: torch.Generator, progress: bool) -> Tensor:
    """Passes of the exact objective: each canary's log predicted SNR against the others' tails."""
    m = images.shape[0]
    bank = torch.cat([_tail_directions(model, images[i : i + batch], labels[i : i + batch], num_classes, basis,
                                       create_graph=False)[0] for i in range(0, m, batch)])
    x = images.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    for step in range(steps):
        for idx in torch.randperm(m, generator=gen).split(batch):
            tail, energy = _tail_directions(model, x[idx], labels[idx], num_classes, basis, create_graph=True)
            cos = (tail / tail.norm(dim=1, keepdim=True)) @ bank.T
            cos = cos.index_put((torch.arange(len(idx)), idx), torch.zeros(len(idx)))
            loss = (-0.5 * torch.log((1 - energy).clamp(min=1e-6)) + 0.5 * torch.log1p(kappa * cos.pow(2).sum(1))).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            bank[idx] = tail.detach()
        if progress:
            print(f"input canaries: refinement pass {step + 1}/{steps}", flush=True)
    return x.detach()


def push_out_of_span(model: Any, images: Tensor, labels: Tensor, num_classes: int, basis: Tensor, *, steps: int,
                     lr: float = 0.05, batch: int = 64, every: int = 100,
                     progress: bool = False) -> tuple[Tensor, list[dict[str, float]]]:
    """Adam on each canary image alone against −log(1 − ‖B u_c‖²), B = ``basis`` (orthonormal rows;
    ``probe_span``: the whole span of natural images' tangent gradients). Every data gradient lies
    in the training images' span, and the probes' span stands in for it: the part of u_c outside it
    is what the data neither leak into nor push back on. Returns the images and, every ``every``
    steps and at the end, the quantiles (q10, median, q90) of the share inside the span."""
    parts = [images[i : i + batch].clone().requires_grad_(True) for i in range(0, images.shape[0], batch)]
    optimizers = [torch.optim.Adam([x], lr=lr) for x in parts]
    trace: list[dict[str, float]] = []
    for step in range(steps + 1):
        shares = []
        for x, opt, i in zip(parts, optimizers, range(0, images.shape[0], batch), strict=True):
            _, inside = _tail_directions(model, x, labels[i : i + batch], num_classes, basis, create_graph=step < steps)
            shares.append(inside.detach())
            if step < steps:
                opt.zero_grad()
                (-torch.log((1 - inside).clamp(min=1e-6)).sum()).backward()
                opt.step()
        if step % every == 0 or step == steps:
            q = torch.cat(shares).double()
            trace.append({"step": step, **{k: float(q.quantile(v)) for k, v in (("q10", 0.1), ("median", 0.5), ("q90", 0.9))}})
            if progress:
                print(f"input canaries: out of the span, step {step}/{steps}: share inside {trace[-1]}", flush=True)
    return torch.cat([x.detach() for x in parts]), trace


# --------------------------------------------------------------------------------------
# what the auditor precomputes about its canaries (public)
# --------------------------------------------------------------------------------------
@dataclass
class InputCanaries:
    """The canary records and the public quantities their scores need.

    ``grad_norms`` ‖g_c‖; ``coords`` B u_c (m, R); ``keep`` ‖w_c‖ = √(1 − ‖B u_c‖²);
    ``interference`` M (m, m), M_{cc'} = ⟨ŵ_c, u_c'⟩; ``noise_gram`` Ŵ Ŵᵀ (m, m).
    """

    images: Tensor
    labels: Tensor
    grad_norms: Tensor
    coords: Tensor
    keep: Tensor
    interference: Tensor
    noise_gram: Tensor
    meta: dict = field(default_factory=dict)

    @property
    def num_canaries(self) -> int:
        return int(self.labels.shape[0])

    def tensors(self) -> dict[str, Tensor]:
        return {"images": self.images, "labels": self.labels, "grad_norms": self.grad_norms, "coords": self.coords,
                "keep": self.keep, "interference": self.interference, "noise_gram": self.noise_gram}


def canary_gradients(model: Any, images: Tensor, labels: Tensor, num_classes: int, *, batch: int = 64) -> Tensor:
    """(m, |Δw|) float32: the canaries' own gradients g_c = J(x_c)ᵀv_c at Δw = 0, a batch at a time."""
    with torch.no_grad():
        features = model.prefix(images)
    return torch.cat([tangent_gradients(model, features[i : i + batch],
                                        residual_directions(labels[i : i + batch], num_classes))
                      for i in range(0, len(labels), batch)])  # float32: 1,024 × 200k is 0.8 GB


def canary_directions(model: Any, images: Tensor, labels: Tensor, num_classes: int, subspace: TangentSubspace,
                      *, batch: int = 64, meta: Mapping[str, Any] | None = None) -> InputCanaries:
    """Everything the scores need about the canaries, from the public model at Δw = 0."""
    u = canary_gradients(model, images, labels, num_classes, batch=batch)
    norms = u.double().norm(dim=1)
    u /= norms.float()[:, None]
    coords = (u @ subspace.basis.T).double()
    keep = (1.0 - coords.pow(2).sum(1)).clamp(min=0).sqrt()
    gram = (u @ u.T).double()
    del u
    tail_u = (gram - coords @ coords.T) / keep[:, None]  # ⟨ŵ_c, u_c'⟩
    noise = tail_u / keep[None, :]  # ⟨ŵ_c, ŵ_c'⟩
    return InputCanaries(images, labels, norms.float(), coords.float(), keep.float(), tail_u.float(), noise.float(),
                         dict(meta or {}))


# --------------------------------------------------------------------------------------
# the scores: from outputs only
# --------------------------------------------------------------------------------------
def projected_scores(canary_outputs: Tensor, probe_outputs: Tensor, canaries: InputCanaries,
                     subspace_coef: Tensor) -> tuple[Tensor, Tensor]:
    """(raw, projected) in Δw units: ⟨Δw, u_c⟩ = v_cᵀ f(x_c)/‖g_c‖ and ⟨Δw, ŵ_c⟩ = (raw − B u_c · Γ A Δw)/‖w_c‖."""
    num_classes = canary_outputs.shape[1]
    v = residual_directions(canaries.labels, num_classes).double()
    raw = (canary_outputs.double() * v).sum(1) / canaries.grad_norms.double()
    along = subspace_coef.double() @ output_contrasts(probe_outputs.double())
    return raw, (raw - canaries.coords.double() @ along) / canaries.keep.double()


def _psd_solve(mat: Tensor, rhs: Tensor, rel_tol: float = 1e-10) -> Tensor:
    """mat⁺·rhs for a symmetric positive semi-definite ``mat`` (pseudo-inverse on its range: the
    canaries can outnumber the dimensions their directions span, e.g. in the FC regime)."""
    evals, evecs = torch.linalg.eigh(0.5 * (mat + mat.T))
    keep = evals > rel_tol * float(evals.max())
    return evecs[:, keep] @ ((evecs[:, keep].T @ rhs) / evals[keep].reshape(-1, *([1] * (rhs.dim() - 1))))


def _noise_variance(centred: Tensor, h: Tensor, gram: Tensor) -> float:
    """τ² maximizing the Gaussian likelihood of the centred scores, covariance ¼HHᵀ + τ²·gram.

    On the range of gram = VΛVᵀ (Λ > 0), whitening by Λ^{-1/2}Vᵀ and diagonalizing the whitened ¼HHᵀ
    as QΛ'Qᵀ gives the covariance Λ' + τ², so the log-likelihood is −½ Σ_i [log(λ'_i + τ²) +
    r_i²/(λ'_i + τ²)] (+ const) with r = QᵀΛ^{-1/2}Vᵀ·centred: a 1-D search."""
    evals, evecs = torch.linalg.eigh(0.5 * (gram + gram.T))
    keep = evals > 1e-10 * float(evals.max())
    white = evecs[:, keep].T / evals[keep].sqrt()[:, None]
    inner = white @ (0.25 * h @ h.T) @ white.T
    lam, q = torch.linalg.eigh(0.5 * (inner + inner.T))
    lam = lam.clamp(min=0)
    r2 = (q.T @ (white @ centred)).pow(2)
    scale = float(r2.median()) + 1e-300
    grid = scale * torch.logspace(-4, 4, 161, dtype=lam.dtype)
    loglik = -(torch.log(lam[None, :] + grid[:, None]) + r2[None, :] / (lam[None, :] + grid[:, None])).sum(1)
    return float(grid[int(torch.argmax(loglik))])


def mmse_scores(projected: Tensor, canaries: InputCanaries) -> Tensor:
    """Posterior log-odds (linear-Gaussian) of the linear MMSE multiuser detector (Verdú, *Multiuser
    Detection*, 1998, ch. 6) for s = a·M·b + noise, noise covariance τ²·ŴŴᵀ, b_c ~ Bernoulli(½).

    The signal scale a is estimated from the scores' mean (E s = (a/2)·M𝟙) and τ² by maximum
    likelihood (``_noise_variance``) — from the scores and public matrices, never from the bits.
    Falls back to the projected scores when the mean gives no positive a.
    """
    m_mat, gram = canaries.interference.double(), canaries.noise_gram.double()
    s = projected.double()
    ones = m_mat.sum(1)
    a = 2.0 * float(s.mean()) / float(ones.mean())
    if not a > 0:
        return s
    h = a * m_mat
    centred = s - 0.5 * a * ones
    tau2 = _noise_variance(centred, h, gram)
    solved = _psd_solve(tau2 * gram + 0.25 * h @ h.T, h)  # R⁻¹ H (pseudo-inverse if singular)
    q = 0.25 * (h * solved).sum(0)  # per canary: ¼ h_cᵀ R⁻¹ h_c
    beta = 0.25 * solved.T @ centred  # E[b − ½ | s], linear MMSE
    sinr = q / (1.0 - q).clamp(min=1e-12)
    return 4.0 * sinr * beta / q.clamp(min=1e-12)


def input_canary_scores(canary_outputs: Tensor, probe_outputs: Tensor, canaries: InputCanaries,
                        subspace_coef: Tensor, decoder: str = "mmse") -> np.ndarray:
    """Membership scores (higher = more likely in) from J·Δw on the canaries and on the probes.

    "raw": ⟨Δw, u_c⟩; "projected": ⟨Δw, ŵ_c⟩, the public subspace's part removed; "mmse": the
    projected scores through the linear MMSE detector of the canaries' mutual overlap
    (``mmse_scores``). Only the released model's outputs and public quantities enter.
    """
    if decoder not in DECODERS:
        raise ConfigError(f"decoder must be one of {', '.join(DECODERS)}, got {decoder!r}")
    raw, projected = projected_scores(canary_outputs, probe_outputs, canaries, subspace_coef)
    if decoder == "raw":
        return raw.numpy()
    if decoder == "projected":
        return projected.numpy()
    return mmse_scores(projected, canaries).numpy()


def tangent_outputs(model: Any, images: Tensor, output: str, reference: Any = None,
                    batch: int = 512) -> Tensor:
    """J(x)·Δw of the released ``model`` on ``images``, from its logits alone: the logits themselves
    when it predicts with J·Δw (output "jvp"), else minus the public ``reference`` (the same
    configuration at Δw = 0, whose logits are f_w(x))."""
    if output != "jvp" and reference is None:
        raise ConfigError("a model that predicts with f_w + J·Δw needs the public reference model (Δw = 0)")
    outs = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            chunk = images[i : i + batch]
            logits = model(chunk, output=output)
            outs.append(logits if output == "jvp" else logits - reference(chunk, output=output))
    return torch.cat(outs)


# --------------------------------------------------------------------------------------
# one audited training run
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Game:
    """The one-run game's public shape and secret bits (what the bound rows read)."""

    num_canaries: int
    included: np.ndarray


@dataclass
class InputCanaryRun:
    """Scores of one training run with input canaries, with what is needed to bound them."""

    scores: np.ndarray
    canaries: _Game
    claim: Claim
    bug: str | None
    seconds: float
    details: dict = field(default_factory=dict)
    canary_outputs: Tensor | None = None  # J·Δw on the canaries and the probes: other decoders, post hoc
    probe_outputs: Tensor | None = None


def with_canaries(train: ImageData, canaries: InputCanaries, included: np.ndarray) -> LabeledData:
    """The training set plus the included canaries (IDs ``CANARY_ID_OFFSET`` + canary index)."""
    keep = torch.as_tensor(np.flatnonzero(included), dtype=torch.long)
    ids = CANARY_ID_OFFSET + keep
    if bool(torch.isin(ids, train.ids).any()):
        raise ConfigError(f"{train.name}: sample IDs collide with the canary IDs (≥ {CANARY_ID_OFFSET})")
    images = train.materialize().images  # the training pixels in memory (an image folder is decoded here)
    return LabeledData(torch.cat([images, canaries.images[keep].to(images.dtype)]),
                       torch.cat([train.labels, canaries.labels[keep]]), torch.cat([train.ids, ids]), train.classes,
                       f"{train.name}+{len(keep)} input canaries")


def input_canary_run(base: VisionTransformer, train: ImageData, dp_config: Any, canaries: InputCanaries,
                     subspace_coef: Tensor, probe_images: Tensor, *, seed: int = 0, bug: str | None = None,
                     noise_seed: int | None = None, decoder: str = "mmse", cache: Any = None,
                     threads: int | None = 1) -> InputCanaryRun:
    """ONE training run of ``dp_config`` (``fit_dp``) on ``train`` plus each canary with probability ½
    (bits drawn from ``seed``), scored from the released model's outputs alone.

    ``bug``: a broken-DP control of ``audits.privacy.whitebox.BUGS`` (the run breaks DP, the claim
    does not change). ``noise_seed``: seeds the DP noise (tests); default OS entropy.
    """

    start = time.perf_counter()
    claim, run_config = claim_for(dp_config, len(train), bug)
    run_config = run_config.replace(noise_seed=noise_seed)
    included = np.random.default_rng([int(seed), 31]).random(canaries.num_canaries) < 0.5
    data = with_canaries(train, canaries, included)
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        result = fit_dp(base, data, run_config, cache=cache or FeatureCache(), progress=False)
        output = run_config.resolved_output
        reference = None if output == "jvp" else prepare_model(base, train.num_classes, run_config.train_config())
        model = result.model.eval()
        canary_out = tangent_outputs(model, canaries.images, output, reference)
        probe_out = tangent_outputs(model, probe_images, output, reference)
    finally:
        torch.set_num_threads(before)
    scores = input_canary_scores(canary_out, probe_out, canaries, subspace_coef, decoder)
    details = {"records": len(data), "canaries_included": int(included.sum()), "decoder": decoder,
               "run_noise_multiplier": run_config.noise_multiplier, "run_max_grad_norm": run_config.max_grad_norm,
               "optimizer": run_config.optimizer, "train_seconds": result.metrics["train_seconds"],
               "steps": result.metrics["steps"]}
    return InputCanaryRun(scores, _Game(canaries.num_canaries, included), claim, bug, time.perf_counter() - start,
                          details, canary_out, probe_out)


# --------------------------------------------------------------------------------------
# the construction, cached (it depends on public things only)
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Construction:
    """How the canaries are built; with the model and the probes, it names the cache entry."""

    num_canaries: int = DEFAULT_CANARIES
    rank: int = DEFAULT_RANK
    seed: int = 0
    surrogate_steps: int = 300
    refine_steps: int = 0
    kappa: float = 0.7
    # > 0: that many Adam steps push each canary out of the probes' WHOLE tangent span
    # (``push_out_of_span``), and the scores remove that whole span (``probe_span``) instead of the
    # top ``rank`` directions. Costly: 0.06–0.13 s per canary and step on 2 CPU cores (BENCHMARKS.md).
    span_steps: int = 0

    def __post_init__(self) -> None:
        for name in ("num_canaries", "rank", "seed", "surrogate_steps", "refine_steps", "span_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < (2 if name == "num_canaries" else 0):
                raise ConfigError(f"construction.{name} must be an integer ≥ {2 if name == 'num_canaries' else 0}, "
                                  f"got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        out = {"num_canaries": self.num_canaries, "rank": self.rank, "seed": self.seed,
               "surrogate_steps": self.surrogate_steps, "refine_steps": self.refine_steps, "kappa": self.kappa,
               "version": CONSTRUCTION_VERSION}
        if self.span_steps:  # only when used: the cache keys of the constructions without it stay valid
            out["span_steps"] = self.span_steps
        return out


def _audited_model(base: VisionTransformer, dp_config: Any, num_classes: int) -> Any:

    if not dp_config.tangent:
        raise ConfigError("the input-canary audit needs a tangent model (dp.tangent = true): it reads J(x)·Δw")
    return prepare_model(base, num_classes, dp_config.train_config()).eval()


def build_input_canaries(base: VisionTransformer, dp_config: Any, probe_images: Tensor, num_classes: int,
                         construction: Construction = Construction(), *, progress: bool = False
                         ) -> tuple[InputCanaries, Tensor]:
    """(canaries, subspace coefficients Γ) for the audited configuration, built from scratch."""
    start = time.perf_counter()
    model = _audited_model(base, dp_config, num_classes)
    with torch.no_grad():
        probe_features = model.prefix(probe_images)
    span = probe_span(model, probe_features, num_classes) if construction.span_steps else None
    if span is None or construction.refine_steps:  # the top-rank subspace: the scores', or the refinement's
        subspace = public_subspace(model, probe_features, num_classes, rank=construction.rank, seed=construction.seed)
    else:
        subspace = span  # unused by make_input_canaries without refinement steps
    images, labels = make_input_canaries(model, probe_images, subspace, construction.num_canaries, num_classes,
                                         seed=construction.seed, surrogate_steps=construction.surrogate_steps,
                                         refine_steps=construction.refine_steps, kappa=construction.kappa,
                                         progress=progress)
    if span is not None:  # push out of the whole span, and score against it
        images, _ = push_out_of_span(model, images, labels, num_classes, span.basis,
                                     steps=construction.span_steps, progress=progress)
        subspace = span
    coef = span.coef if span is not None else subspace.coef.float()  # float64 for the span: Λ^{-1/2} spans decades
    canaries = canary_directions(model, images, labels, num_classes, subspace,
                                 meta={**construction.to_dict(), "probes": int(probe_images.shape[0]),
                                       "seconds": time.perf_counter() - start})
    return canaries, coef


def _cache_key(base: VisionTransformer, dp_config: Any, probe_images: Tensor, num_classes: int,
               construction: Construction) -> str:
    model = _audited_model(base, dp_config, num_classes)
    blob = {"anchor": tensor_hash(model.base.state_dict()), "probes": tensor_hash({"probes": probe_images}),
            "output": dp_config.resolved_output, **construction.to_dict()}
    return sha256_bytes(repr(sorted(blob.items())).encode())[:16]


def load_or_make_input_canaries(base: VisionTransformer, dp_config: Any, probe_images: Tensor, num_classes: int,
                                construction: Construction = Construction(), *, directory: str | Path | None = None,
                                progress: bool = False) -> tuple[InputCanaries, Tensor]:
    """``build_input_canaries``, cached as safetensors + manifest under ``directory`` (default
    ``$PRIVTANGENT_CACHE/input_canaries``), keyed by the linearization point, the probes and the
    construction; a cached entry is sha256-verified on load."""

    key = _cache_key(base, dp_config, probe_images, num_classes, construction)
    folder = Path(directory) if directory is not None else cache_dir() / "input_canaries"
    entry = folder / key
    if (entry / "canaries.json").exists():
        tensors, manifest = load_checkpoint(entry, name="canaries")
        canaries = InputCanaries(tensors["images"], tensors["labels"], tensors["grad_norms"], tensors["coords"],
                                 tensors["keep"], tensors["interference"], tensors["noise_gram"],
                                 {**manifest.get("meta", {}), "cached": True})
        return canaries, tensors["subspace_coef"]
    canaries, coef = build_input_canaries(base, dp_config, probe_images, num_classes, construction, progress=progress)
    save_checkpoint(entry, {**canaries.tensors(), "subspace_coef": coef},
                    {"kind": "privtangent input canaries", "key": key, "meta": canaries.meta}, name="canaries")
    canaries.meta["cached"] = False
    return canaries, coef


# --------------------------------------------------------------------------------------
# the audit
# --------------------------------------------------------------------------------------
def input_canary_scope() -> str:
    return ("The input-canary audit inserts crafted training records (image, label), each with probability ½, into "
            "one training run of the audited configuration and reads only the released model's outputs on the "
            "canaries and on public probe images. It tests the whole pipeline as run (data path, per-sample "
            "gradients, clipping, noise, steps, optimizer) against the accountant's claim; a pass does not prove "
            "(ε, δ)-DP, and the canary run is one run of the configuration, not the model released to users.")


def _check(name: str, run: InputCanaryRun, rows: list[BoundRow], bug: str | None) -> Check:
    claim = run.claim
    slug = f"input-canaries-eps{claim.target_epsilon or claim.epsilon:g}" + (f"-{bug}" if bug else "")
    title = f"input-canary audit of {name} at claimed ε = {claim.epsilon:.4g}"
    done = [(row, bound) for row in rows if (bound := row["epsilon_lb"]) is not None]
    if not done:
        return Check(slug, SECTION, title, Status.SKIP, "no bound could be computed")
    failed = any(row["status"] == "FAIL" for row, _ in done)
    worst = max(done, key=lambda row_bound: row_bound[1])[0]
    reason = (f"ε lower bound {worst['epsilon_lb']:.3g} ({worst['method']}) {'exceeds' if failed else '≤'} claimed "
              f"{claim.epsilon:.4g}; tightness {worst['tightness']:.2f} (ideal white-box mechanism "
              f"{worst['ideal_tightness']:.2f}); {worst['num_canaries']} canaries, {worst['num_guesses']} guesses, "
              f"{worst['num_correct']} correct; audit power {worst['audit_power']:.3g}")
    return Check(slug, SECTION, title, Status.FAIL if failed else Status.PASS, reason)


@functools.lru_cache(maxsize=16)
def _ceiling(optimizer: str, steps: int, momentum: float) -> float:
    return readout_efficiency(optimizer, steps, momentum=momentum)


def _readout_ceiling(cfg: Any, steps: int) -> float | None:
    """The most of μ any reading of the final model keeps under this optimizer
    (``readout_ceiling``); None under Poisson sampling, where a canary is not in every step."""
    return _ceiling(cfg.optimizer, steps, float(cfg.momentum)) if cfg.sample_rate == 1.0 else None


def run_input_canary_audit(base: VisionTransformer, train: ImageData, dp_config: Any, *, probe_images: Tensor,
                           epsilons: Sequence[float] | None = None, construction: Construction = Construction(),
                           num_guesses: int | None = None, confidence: float = 0.95, seed: int = 0,
                           bug: str | None = None, decoder: str = "mmse", noise_seed: int | None = None,
                           canaries: tuple[InputCanaries, Tensor] | None = None, cache_directory: str | Path | None = None,
                           ideal_simulations: int = 21, threads: int | None = 1, progress: bool = False,
                           label: str | None = None) -> AuditSection:
    """The input-canary audit of ``dp_config`` from released models only (one training run per ε).

    Args:
        base, train: the base model and the private training set of the audited configuration.
        dp_config: a tangent ``DPConfig``; with ``epsilons`` it is re-targeted at each ε (σ calibrated).
        probe_images: public images of the task's distribution (never the canaries; e.g. a public
            split): the public tangent subspace and the construction's reference activations.
        construction: canary count, subspace rank, seed and optimization steps (cached on disk).
        num_guesses: r, fixed in advance; default ``choose_num_guesses(m, claim)`` per ε.
        bug: None, or a broken-DP control of ``audits.privacy.whitebox.BUGS`` that must FAIL.
        decoder: "mmse" (default), "projected" or "raw" (``input_canary_scores``).
        canaries: prebuilt (canaries, Γ) (tests); default ``load_or_make_input_canaries``.

    Returns:
        the ``input_canary_audit`` section: bound rows per ε (ε_lb, tightness, power), one check per ε.
    """
    if bug is not None and bug not in BUGS:
        raise ConfigError(f"unknown bug {bug!r}; choose one of {', '.join(BUGS)}")
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")
    configs = [dp_config] if epsilons is None else [dp_config.replace(target_epsilon=float(e), noise_multiplier=None)
                                                     for e in epsilons]
    pack = canaries or load_or_make_input_canaries(base, configs[0], probe_images, train.num_classes, construction,
                                                   directory=cache_directory, progress=progress)
    made, coef = pack
    m = made.num_canaries
    if num_guesses is not None and not 1 <= num_guesses <= m:
        raise ConfigError(f"num_guesses must be an integer in [1, {m}], got {num_guesses!r}")
    rows, checks, runs = [], [], []
    name = label or ("DP training" if bug is None else f"DP training ({bug}: injected bug)")
    for i, cfg in enumerate(configs):
        claim, _ = claim_for(cfg, len(train), bug)
        r = int(num_guesses) if num_guesses is not None else choose_num_guesses(m, claim, seed=seed)
        run = input_canary_run(base, train, cfg, made, coef, probe_images, seed=seed + 1000 * i, bug=bug,
                               noise_seed=None if noise_seed is None else noise_seed + i, decoder=decoder,
                               threads=threads)
        these = bound_rows(run, num_guesses=r, confidence=confidence, ideal_simulations=ideal_simulations,
                           seed=seed + 1000 * i)
        for row in these:
            row["model"] = name
            row["method"] = "input canaries, " + row["method"].replace("white-box ", "")
        rows += these
        runs.append({"epsilon_claimed": claim.epsilon, "seconds": run.seconds, **run.details,
                     "readout_ceiling": _readout_ceiling(cfg, int(run.details["steps"]))})
        checks.append(_check(name, run, these, bug))
    body = {
        "scope": input_canary_scope(),
        "method": (f"{m} input canaries (crafted images, random labels), each in the training set with probability ½; "
                   f"one training run per ε; scores from the released model's outputs on the canaries and on "
                   f"{probe_images.shape[0]} public probes (public tangent subspace of rank {coef.shape[0]} removed, "
                   f"decoder {decoder}); guesses: top ⌊r/2⌋ in, bottom r − ⌊r/2⌋ out, r fixed before the run; "
                   f"runs[].readout_ceiling: the largest share of μ any reading of the final model keeps under the "
                   f"run's optimizer (1 for plain SGD; Adam's normalization of noise-dominated coordinates loses "
                   f"the rest)"),
        "construction": made.meta,
        "confidence": confidence,
        "rows": rows,
        "runs": runs,
    }
    return AuditSection(SECTION, body, checks)
