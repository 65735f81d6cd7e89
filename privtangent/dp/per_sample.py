"""Per-sample gradients for DP-SGD, for tangent ("Ours") and non-linear ("Reg") models.

``per_sample_grads(model, loss_fn, x, y)`` returns ``{name: Tensor(B, *param.shape)}``, keyed
by the base model's own parameter names (``model.trainable_parameters()``), the gradient of
sample i's loss ``loss_fn(f(x_i)[None], y_i[None])`` for every i. ``loss_fn`` is a batch-mean
loss (``privtangent.losses``), so a batch of one is the sample's own loss (the convention of
Opacus with ``loss_reduction="mean"``).

``x`` is a batch of **images** by default; with ``features=True`` it is the cached output of
the frozen prefix (``model.prefix(images)``, ``FeatureCache.features``), which is what
training uses: the frozen prefix has no trainable parameter, so both give the same result.

Engines (``method``):

- ``"ghost"`` (``"auto"`` picks it for TangentViT and NonLinearViT): the linear-site engine.
  Every trained tensor enters the forward pass through an op that is *linear in it*:
  ``F.linear(x, W, b)`` (per-sample gradient Σ_t g_t ⊗ x_t, and Σ_t g_t for b),
  ``F.layer_norm`` (Σ_t g_t ⊙ x̂_t, Σ_t g_t), ``x ⊙ γ`` (LayerScale), an added or broadcast
  Δ (Σ_t g_t), where g is the gradient w.r.t. the op's output. One forward pass records the
  sites (a ``TorchFunctionMode``; the model code is untouched) and one backward pass of the
  per-sample residuals r_i = ∂ℓ_i/∂f_i gives every g. From (x, g) come the per-sample squared
  norms without forming per-sample gradients (ghost norms: Σ_{t,s} (g_t·g_s)(x_t·x_s) when
  T² ≤ d_in·d_out, ‖g‖²‖x‖² when T = 1) and the clipped sum Σ_i c_i Σ_t g_{i,t} ⊗ x_{i,t}
  (one reweighted matmul per site, the cost of an ordinary weight gradient).

  For a **tangent** model this is the linearity shortcut: f = f₀ + J·Δw, g_i = J_iᵀ r_i,
  and every Δ site's other operand is a *primal* activation that does not depend on Δw, so
  the site's value itself is the tap (no extra memory) and the whole step costs one
  tangent forward and one backward. For the last block of a token-pooled ViT the tangent
  forward computes queries and the MLP for the CLS row only, so most sites have T = 1.
  For a **non-linear** model the same formulas hold layer by layer (the Opacus/ghost-clipping
  identity); gradients still flow through the site into its input.
  A trained tensor used any other way raises ``GhostUnsupported``; ``"auto"`` then falls
  back to ``"vmap"``.
- ``"vmap"``: ``torch.func.vmap(grad(...))`` over ``functional_call``, in chunks of
  ``chunk_size`` samples to bound memory; works for any model whose samples are independent.
- ``"loop"``: one backward pass per sample; the slow reference used by tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

from privtangent.errors import ConfigError, PrivtangentError

if TYPE_CHECKING:
    from typing_extensions import TypeIs  # typing.TypeIs from Python 3.13

LossFn = Callable[[Tensor, Tensor], Tensor]
METHODS = ("auto", "ghost", "vmap", "loop")
DEFAULT_CHUNK = 32


class GhostUnsupported(PrivtangentError, NotImplementedError):
    """The forward pass uses a trained tensor in a way the linear-site engine does not know."""


# ---------------------------------------------------------------------------------------
# model plumbing
# ---------------------------------------------------------------------------------------
class FineTuneLike(Protocol):
    """What the engines use of a TangentViT / NonLinearViT (``privtangent.finetune``)."""

    def prefix(self, x: Tensor) -> Tensor: ...

    def forward_features(self, features: Tensor, output: str = "full") -> Tensor: ...

    def trainable_parameters(self) -> dict[str, Tensor]: ...


def trainable(model: nn.Module) -> dict[str, Tensor]:
    """Base-model parameter name → live tensor (``trainable_parameters()`` when the model has it)."""
    trainable_parameters = getattr(model, "trainable_parameters", None)
    if trainable_parameters is not None:
        return dict(trainable_parameters())
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def is_tangent(model: nn.Module) -> bool:
    return getattr(model, "kind", None) == "tangent"


class FeatureForward(nn.Module):
    """``forward(features) = model.forward_features(features, output)``: an ``nn.Module`` view
    of a fine-tuning model on cached prefix features (for ``functional_call`` and Opacus)."""

    def __init__(self, model: FineTuneLike, output: str = "full") -> None:
        super().__init__()
        self.model = model  # registered as a submodule: a TangentViT / NonLinearViT is an nn.Module
        self.output = output

    def forward(self, features: Tensor) -> Tensor:
        return self.model.forward_features(features, output=self.output)


def _finetune_like(model: object) -> TypeIs[FineTuneLike]:
    """A TangentViT / NonLinearViT: ``prefix`` + ``forward_features(features, output)``."""
    return hasattr(model, "prefix") and hasattr(model, "forward_features") and hasattr(model, "trainable_parameters")


def _as_inputs(model: nn.Module, x: Tensor, features: bool) -> tuple[nn.Module, Tensor]:
    """(module whose forward maps the inputs to logits, inputs)."""
    if _finetune_like(model):
        return model, (x if features else model.prefix(x))
    if features:
        raise ConfigError(f"features=True needs a model with forward_features/prefix, got {type(model).__name__}")
    return model, x


def _module_paths(module: nn.Module, params: dict[str, Tensor]) -> dict[str, str]:
    """Base name → attribute path inside ``module`` (for ``functional_call``)."""
    by_id = {id(p): path for path, p in module.named_parameters(remove_duplicate=False)}
    missing = [n for n, p in params.items() if id(p) not in by_id]
    if missing:
        raise PrivtangentError(f"trainable tensors {missing[:3]} are not parameters of the model")
    return {n: by_id[id(p)] for n, p in params.items()}


def check_output(model: nn.Module, output: str) -> str:
    if output not in ("full", "jvp"):
        raise ConfigError(f"output must be 'full' or 'jvp', got {output!r}")
    if output == "jvp" and not is_tangent(model):
        raise ConfigError("output='jvp' needs a tangent model")
    return output


def sample_residuals(loss_fn: LossFn, logits: Tensor, y: Tensor) -> Tensor:
    """r_i = ∂ℓ_i/∂f_i with ℓ_i = loss_fn(f_i[None], y_i[None]): (B, K)."""
    if len(y) == 0:
        return torch.zeros_like(logits)
    logits = logits.detach()
    one = lambda f, t: loss_fn(f.unsqueeze(0), t.unsqueeze(0))  # noqa: E731
    try:
        return vmap(grad(one))(logits, y)
    except RuntimeError:  # a loss that vmap cannot batch: one K-vector at a time (cheap)
        return torch.stack([grad(one)(logits[i], y[i]) for i in range(len(y))])


# ---------------------------------------------------------------------------------------
# engines that materialize per-sample gradients
# ---------------------------------------------------------------------------------------
@contextmanager
def math_attention(module: nn.Module) -> Iterator[None]:
    """timm attention without the fused kernel while inside (vmap has no batching rule for
    the fused CPU kernel and would fall back to a slow per-sample loop); restored after."""
    changed = [m for m in module.modules() if getattr(m, "fused_attn", False) is True]
    for m in changed:
        setattr(m, "fused_attn", False)  # an attribute of timm's attention classes, not of nn.Module
    try:
        yield
    finally:
        for m in changed:
            setattr(m, "fused_attn", True)


def _vmap_grads(module: nn.Module, params: dict[str, Tensor], loss_fn: LossFn, inputs: Tensor, y: Tensor,
                output: str, chunk_size: int) -> dict[str, Tensor]:
    wrapped = FeatureForward(module, output) if _finetune_like(module) else module
    paths = _module_paths(wrapped, params)
    detached = {paths[n]: p.detach() for n, p in params.items()}

    def one(p: dict[str, Tensor], xi: Tensor, yi: Tensor) -> Tensor:
        logits = functional_call(wrapped, p, (xi.unsqueeze(0),))
        return loss_fn(logits, yi.unsqueeze(0))

    per_chunk = vmap(grad(one), in_dims=(None, 0, 0))
    out: dict[str, list[Tensor]] = {n: [] for n in params}
    with math_attention(wrapped):
        for i in range(0, len(y), chunk_size):
            g = per_chunk(detached, inputs[i : i + chunk_size], y[i : i + chunk_size])
            for n in params:
                out[n].append(g[paths[n]])
    return {n: torch.cat(v) if v else params[n].new_zeros((0, *params[n].shape)) for n, v in out.items()}


def _loop_grads(module: nn.Module, params: dict[str, Tensor], loss_fn: LossFn, inputs: Tensor, y: Tensor,
                output: str) -> dict[str, Tensor]:
    names, tensors = list(params), list(params.values())
    rows: dict[str, list[Tensor]] = {n: [] for n in names}
    for i in range(len(y)):
        xi = inputs[i : i + 1]
        logits = module.forward_features(xi, output=output) if _finetune_like(module) else module(xi)
        gs = torch.autograd.grad(loss_fn(logits, y[i : i + 1]), tensors, allow_unused=True)
        for n, t, g in zip(names, tensors, gs):
            rows[n].append(torch.zeros_like(t) if g is None else g)
    return {n: torch.stack(v) if v else params[n].new_zeros((0, *params[n].shape)) for n, v in rows.items()}


# ---------------------------------------------------------------------------------------
# the linear-site ("ghost") engine: per-sample norms and clipped sums without per-sample grads
# ---------------------------------------------------------------------------------------
@dataclass
class _Site:
    kind: str  # "linear" (F.linear(x, Δ)), "bias" (Δ broadcast and added), "scale" (x ⊙ Δ)
    name: str  # base parameter name
    index: tuple | None  # region of the parameter (None: all of it)
    shape: torch.Size  # shape of that region
    tap: Tensor  # leaf whose gradient is g, the gradient w.r.t. the site's output
    x: Tensor | None = None  # the other operand (detached): linear input or multiplier
    g: Tensor | None = None

    @property
    def operand(self) -> Tensor:
        """x, which every "linear" and "scale" site records."""
        assert self.x is not None, f"a {self.kind!r} site has no other operand"
        return self.x

    @property
    def out_grad(self) -> Tensor:
        """g, which the backward pass of ``site_gradients`` sets (``SiteGradients`` keeps only those sites)."""
        assert self.g is not None, f"the site of {self.name!r} has no gradient"
        return self.g


_ADD = {"add", "__add__", "__radd__"}
_MUL = {"mul", "__mul__", "__rmul__"}


def _normalize_index(index) -> tuple:
    return index if isinstance(index, tuple) else (index,)


def _sum_to(t: Tensor, shape: torch.Size) -> Tensor:
    """Per-sample sum of a (B, ...) tensor down to (B, *shape), undoing broadcasting."""
    batch, rest, target = t.shape[0], t.shape[1:], tuple(shape)
    while len(target) > len(rest) and target and target[0] == 1:
        target = target[1:]
    if len(target) > len(rest):
        raise GhostUnsupported(f"cannot reduce a gradient of shape {tuple(t.shape)} to {tuple(shape)}")
    padded = (1,) * (len(rest) - len(target)) + target
    dims = [i + 1 for i, (s, p) in enumerate(zip(rest, padded)) if p == 1 and s != 1]
    if dims:
        t = t.sum(dim=dims, keepdim=True)
    return t.reshape(batch, *shape)


class _SiteRecorder(TorchFunctionMode):
    """Intercepts every torch call that touches a trained tensor and records it as a linear site.

    A site's output is computed with the trained tensor *detached* (gradients still flow into
    the other operands, which matters for a non-linear model) and passed through a "tap":
    a leaf whose gradient is g. For a tangent model the other operand is a primal activation
    without gradient, and the site's value itself becomes the tap (no extra memory).
    """

    def __init__(self, params: dict[str, Tensor], batch: int, keep_graph: bool = False) -> None:
        super().__init__()
        self.batch = batch
        self.keep_graph = keep_graph  # keep every site's operands in the graph (gradients w.r.t. the input)
        # id → (base name, region index or None, tensor kept alive so ids stay unique)
        self.tracked: dict[int, tuple[str, tuple | None, Tensor]] = {id(p): (n, None, p) for n, p in params.items()}
        self.sites: list[_Site] = []

    def _hit(self, t) -> tuple[str, tuple | None, Tensor] | None:
        return self.tracked.get(id(t)) if isinstance(t, Tensor) else None

    def _unsupported(self, what: str, name: str) -> GhostUnsupported:
        return GhostUnsupported(f"the linear-site engine cannot handle {what} on {name!r}; use method='vmap'")

    def _operand(self, t, name: str, what: str) -> Tensor:
        if self._hit(t) is not None:
            raise self._unsupported(f"{what} of two trained tensors", name)
        if not isinstance(t, Tensor) or t.dim() == 0 or t.shape[0] != self.batch:
            raise self._unsupported(f"{what} whose other operand has no batch dimension", name)
        return t

    def _tap(self, value: Tensor) -> tuple[Tensor, Tensor]:
        """(output, tap) for a site value computed with the trained tensor detached."""
        if value.shape[0] != self.batch:
            raise GhostUnsupported(f"a site output of shape {tuple(value.shape)} has no batch dimension")
        if value.requires_grad or self.keep_graph:  # the other operand carries gradient (non-linear model)
            zero = torch.zeros_like(value).requires_grad_()
            return value + zero, zero
        tap = value.detach().requires_grad_()
        return tap, tap

    def _bias_tap(self, value: Tensor, out_shape: torch.Size, name: str, index) -> Tensor:
        """A (B, 1.., *Δ.shape) leaf broadcasting Δ over the batch: its grad is already Σ_t g_t."""
        if len(out_shape) == 0 or out_shape[0] != self.batch:
            raise self._unsupported(f"a broadcast to shape {tuple(out_shape)} (no leading batch dim)", name)
        padded = (1,) * (len(out_shape) - value.dim()) + tuple(value.shape)
        if len(padded) > len(out_shape) or padded[0] != 1:
            raise self._unsupported("a broadcast over the batch dimension", name)
        tap = value.detach().reshape(padded).expand((self.batch, *padded[1:])).requires_grad_()
        self.sites.append(_Site("bias", name, index, value.shape, tap))
        return tap

    def _add_site(self, kind: str, hit, tap: Tensor, x: Tensor | None = None) -> None:
        name, index, tensor = hit
        keep = x if self.keep_graph or x is None else x.detach()
        self.sites.append(_Site(kind, name, index, tensor.shape, tap, keep))

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        hits = [h for h in map(self._hit, tree_leaves((args, kwargs))) if h is not None]
        if not hits:
            return func(*args, **kwargs)
        op = getattr(func, "__name__", str(func))
        name = hits[0][0]
        if op == "__getitem__" and self._hit(args[0]) is not None and len(hits) == 1:
            if hits[0][1] is not None:
                raise self._unsupported("a slice of a slice", name)
            with torch.no_grad():
                out = func(*args, **kwargs)
            self.tracked[id(out)] = (name, _normalize_index(args[1]), out)
            return out
        if op == "linear":
            return self._linear(args, kwargs, name)
        if op == "layer_norm":
            return self._layer_norm(args, kwargs, name)
        if len(hits) > 1:
            raise self._unsupported(f"{op} of two trained tensors", name)
        if op in _ADD and len(args) == 2 and kwargs.get("alpha", 1) == 1:
            delta, other = (args[0], args[1]) if self._hit(args[0]) is not None else (args[1], args[0])
            other_shape = other.shape if isinstance(other, Tensor) else ()
            return other + self._bias_tap(delta, torch.broadcast_shapes(delta.shape, other_shape), name, hits[0][1])
        if op in _MUL and len(args) == 2:
            delta, other = (args[0], args[1]) if self._hit(args[0]) is not None else (args[1], args[0])
            other = self._operand(other, name, op)
            out, tap = self._tap(other * delta.detach())
            self._add_site("scale", hits[0], tap, other)
            return out
        if op in ("expand", "expand_as") and self._hit(args[0]) is not None:
            with torch.no_grad():
                shape = func(*args, **kwargs).shape
            return self._bias_tap(args[0], shape, name, hits[0][1]).expand(shape)
        # anything else is allowed only if it returns no tensor (shape, dtype, size(), ...)
        with torch.no_grad():
            out = func(*args, **kwargs)
        if any(isinstance(t, Tensor) for t in tree_leaves(out)):
            raise self._unsupported(f"torch op {op!r}", name)
        return out

    def _linear(self, args, kwargs, name: str):
        """F.linear(x, W, b) with W and/or b trained: sites Σ_t g_t ⊗ x_t and Σ_t g_t."""
        x = args[0] if args else kwargs["input"]
        weight = args[1] if len(args) > 1 else kwargs["weight"]
        bias = args[2] if len(args) > 2 else kwargs.get("bias")
        wh, bh = self._hit(weight), self._hit(bias)
        x = self._operand(x, name, "F.linear")
        value = torch.nn.functional.linear(x, weight.detach() if wh else weight,
                                           None if bias is None else (bias.detach() if bh else bias))
        out, tap = self._tap(value)
        if wh:
            self._add_site("linear", wh, tap, x)
        if bh:
            self._add_site("bias", bh, tap)
        return out

    def _layer_norm(self, args, kwargs, name: str):
        """F.layer_norm(x, shape, γ, β, eps): sites Σ_t g_t ⊙ x̂_t (γ) and Σ_t g_t (β)."""
        names = ("input", "normalized_shape", "weight", "bias", "eps")
        bound = dict(zip(names, args)) | kwargs
        x, shape = bound["input"], bound["normalized_shape"]
        weight, bias, eps = bound.get("weight"), bound.get("bias"), bound.get("eps", 1e-5)
        wh, bh = self._hit(weight), self._hit(bias)
        x = self._operand(x, name, "F.layer_norm")
        value = torch.nn.functional.layer_norm(x, shape, weight.detach() if wh else weight,
                                               None if bias is None else (bias.detach() if bh else bias), eps)
        out, tap = self._tap(value)
        if wh:
            with torch.no_grad():
                xhat = torch.nn.functional.layer_norm(x, shape, None, None, eps)
            self._add_site("scale", wh, tap, xhat)
        if bh:
            self._add_site("bias", bh, tap)
        return out


class SiteGradients:
    """Per-sample gradient information of one batch, from the linear-site engine.

    ``norms()``: per-sample L2 norms over all trained tensors (B,), never forming per-sample
    gradients; ``weighted_sum(c)``: Σ_i c_i g_i per tensor (the clipped sum when c holds the
    clipping factors); ``per_sample()``: the materialized (B, ...) gradients (tests, small models).
    """

    def __init__(self, params: dict[str, Tensor], sites: list[_Site], batch: int) -> None:
        self.params, self.batch = params, batch
        self.sites = [s for s in sites if s.g is not None]
        self._grams: dict[tuple, Tensor] = {}
        self._by_param: dict[str, list[_Site]] = {}
        for s in self.sites:
            self._by_param.setdefault(s.name, []).append(s)

    @staticmethod
    def _scaled(s: _Site, weight: Tensor | None) -> Tensor:
        g = s.out_grad
        return g if weight is None else g * weight.to(g.dtype).view(-1, *([1] * (g.dim() - 1)))

    def _contribution(self, s: _Site, weight: Tensor | None = None) -> Tensor:
        """The site's per-sample gradient (B, *region shape), optionally scaled per sample."""
        g = self._scaled(s, weight)
        if s.kind == "linear":
            x = s.operand
            g3, x3 = g.reshape(g.shape[0], -1, g.shape[-1]), x.reshape(x.shape[0], -1, x.shape[-1])
            return torch.einsum("bto,bti->boi", g3, x3)
        if s.kind == "bias":
            return _sum_to(g, s.shape)
        return _sum_to(g * s.operand, s.shape)

    def _gram(self, t: Tensor) -> Tensor:
        """t tᵀ per sample (B, T, T); inputs shared by several sites (k and v see the same x) once."""
        key = (t.data_ptr(), tuple(t.shape), tuple(t.stride()), t.dtype)
        if key not in self._grams:
            self._grams[key] = t @ t.transpose(1, 2)
        return self._grams[key]

    def _site_sq_norm(self, s: _Site) -> Tensor:
        if s.kind == "linear":
            g, x = s.out_grad, s.operand
            b = g.shape[0]
            g, x = g.reshape(b, -1, g.shape[-1]), x.reshape(b, -1, x.shape[-1])
            tokens, d_out, d_in = g.shape[1], g.shape[2], x.shape[2]
            if tokens == 1:
                return g.pow(2).sum((1, 2)) * x.pow(2).sum((1, 2))
            if tokens * tokens <= d_out * d_in:  # ghost norm: Σ_{t,s} (g_t·g_s)(x_t·x_s)
                return (self._gram(g) * self._gram(x)).sum((1, 2))
        return self._contribution(s).flatten(1).pow(2).sum(1)

    @staticmethod
    def _disjoint(sites: list[_Site]) -> bool:
        """True when one parameter's sites touch disjoint row ranges (their squared norms add)."""
        if len(sites) == 1:
            return True
        ranges = []
        for s in sites:
            if s.index is None or len(s.index) != 1 or not isinstance(s.index[0], slice) or s.index[0].step not in (None, 1):
                return False
            start, stop, _ = s.index[0].indices(10**18)
            ranges.append((start, stop))
        ranges.sort()
        return all(a_stop <= b_start for (_, a_stop), (b_start, _) in zip(ranges, ranges[1:]))

    def squared_norms(self) -> Tensor:
        total = torch.zeros(self.batch, dtype=next(iter(self.params.values())).dtype)
        for name, sites in self._by_param.items():
            if self._disjoint(sites):
                for s in sites:
                    total = total + self._site_sq_norm(s)
            else:
                total = total + self._materialize(name).flatten(1).pow(2).sum(1)
        return total

    def norms(self) -> Tensor:
        try:
            return self.squared_norms().sqrt()
        finally:
            self._grams.clear()

    def _materialize(self, name: str, weight: Tensor | None = None) -> Tensor:
        p = self.params[name]
        out = p.new_zeros((self.batch, *p.shape))
        for s in self._by_param.get(name, []):
            out[(slice(None),) + (s.index or ())] += self._contribution(s, weight)
        return out

    def per_sample(self) -> dict[str, Tensor]:
        return {n: self._materialize(n) for n in self.params}

    def weighted_sum(self, weight: Tensor) -> dict[str, Tensor]:
        """Σ_i weight_i · g_i per tensor: one matmul per site, the cost of a weight gradient."""
        out = {n: torch.zeros_like(p) for n, p in self.params.items()}
        for s in self.sites:
            g = self._scaled(s, weight)
            if s.kind == "linear":
                value = g.reshape(-1, g.shape[-1]).transpose(0, 1) @ s.operand.reshape(-1, s.operand.shape[-1])
            elif s.kind == "bias":
                value = _sum_to(g, s.shape).sum(0)
            else:
                value = _sum_to(g * s.operand, s.shape).sum(0)
            if s.index:
                out[s.name][s.index] += value
            else:
                out[s.name] += value
        return out


def site_gradients(model: nn.Module, loss_fn: LossFn, inputs: Tensor, y: Tensor,
                   output: str = "full") -> tuple[SiteGradients, Tensor]:
    """One forward and one backward pass with the linear-site engine; returns (SiteGradients, logits).

    ``inputs`` are cached prefix features for a TangentViT / NonLinearViT, else ``model``'s
    own input. Raises ``GhostUnsupported`` when a trained tensor is used in a way the engine
    does not know (then use ``method="vmap"``).

    Exactness needs what every ViT here satisfies: samples do not interact in the forward
    pass (no batch norm), and every trained tensor enters through one op that is linear in
    it (Linear, LayerNorm affine, LayerScale, an added bias, a broadcast token) — its
    per-sample gradient is then Σ_t g_t ⊗ x_t (or Σ_t g_t, Σ_t g_t ⊙ x_t) by the chain rule.
    """
    params = trainable(model)
    batch = inputs.shape[0]
    recorder = _SiteRecorder(params, batch)
    forward = (lambda: model.forward_features(inputs, output=output)) if _finetune_like(model) else (lambda: model(inputs))
    with recorder:
        logits = forward()
    sites = recorder.sites
    residuals = sample_residuals(loss_fn, logits, y)
    taps = list({id(s.tap): s.tap for s in sites}.values())
    if taps and logits.requires_grad and batch:
        grads = torch.autograd.grad(logits, taps, grad_outputs=residuals, allow_unused=True)
        by_tap = {id(t): g for t, g in zip(taps, grads)}
        for s in sites:
            s.g = by_tap[id(s.tap)]
    return SiteGradients(params, sites, batch), logits.detach()


def output_gradients(model: nn.Module, inputs: Tensor, directions: Tensor, *, output: str = "jvp",
                     create_graph: bool = False) -> dict[str, Tensor]:
    """Per-sample gradients of the outputs along given directions: ``{name: Tensor(B, *shape)}``
    whose row b is ∂⟨v_b, f(x_b)⟩/∂Δw — for a tangent model with ``output="jvp"``, J(x_b)ᵀ v_b.

    One forward and one backward pass of the linear-site engine (``site_gradients`` with the
    residuals replaced by ``directions``, shape (B, K)). ``create_graph=True`` keeps the result
    differentiable with respect to ``inputs`` (the site operands stay in the graph), e.g. to
    optimize inputs whose gradient points a chosen way.
    """
    params = trainable(model)
    recorder = _SiteRecorder(params, inputs.shape[0], keep_graph=create_graph)
    forward = (lambda: model.forward_features(inputs, output=output)) if _finetune_like(model) else (lambda: model(inputs))
    with recorder:
        values = forward()
    taps = list({id(s.tap): s.tap for s in recorder.sites}.values())
    grads = torch.autograd.grad(values, taps, grad_outputs=directions.to(values.dtype), create_graph=create_graph,
                                allow_unused=True)
    by_tap = {id(t): g for t, g in zip(taps, grads)}
    for s in recorder.sites:
        s.g = by_tap[id(s.tap)]
    per = SiteGradients(params, recorder.sites, inputs.shape[0]).per_sample()
    return per if create_graph else {n: g.detach() for n, g in per.items()}


# ---------------------------------------------------------------------------------------
# the public contract
# ---------------------------------------------------------------------------------------
def resolve_method(model: nn.Module, method: str) -> str:
    """"auto" → "ghost" for a TangentViT / NonLinearViT (ViTs: samples never interact), else "vmap"."""
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if method == "auto":
        return "ghost" if _finetune_like(model) else "vmap"
    return method


def per_sample_grads(model: nn.Module, loss_fn: LossFn, x: Tensor, y: Tensor, *, features: bool = False,
                     output: str = "full", method: str = "auto", chunk_size: int = DEFAULT_CHUNK) -> dict[str, Tensor]:
    """Per-sample gradients ``{base parameter name: Tensor(B, *shape)}``.

    Args:
        model: a ``TangentViT``, a ``NonLinearViT`` (same parameter names) or any ``nn.Module``
            (then its parameters with ``requires_grad``, and ``model(x)`` is the forward).
        loss_fn: batch-mean loss ``(logits, y) -> scalar``; sample i's loss is
            ``loss_fn(logits[i:i+1], y[i:i+1])``.
        x: images (default) or, with ``features=True``, cached prefix features (B, tokens, D)
            of a TangentViT / NonLinearViT (``model.prefix(images)``).
        y: labels (B,).
        output: "full" (f_w + J·Δw) or "jvp" (J·Δw alone; tangent models only).
        method: "auto" ("ghost" for TangentViT / NonLinearViT, else "vmap"), "ghost", "vmap", "loop".
            "auto" falls back to "vmap" when the ghost engine meets an op it does not know.
        chunk_size: samples per ``vmap`` call (memory bound of the vmap engine).
    """
    output = check_output(model, output)
    module, inputs = _as_inputs(model, x, features)
    params = trainable(model)
    chosen = resolve_method(model, method)
    if chosen == "ghost":
        try:
            grads, _ = site_gradients(module, loss_fn, inputs, y, output)
            return grads.per_sample()
        except GhostUnsupported:
            if method != "auto":
                raise
            chosen = "vmap"
    if chosen == "vmap":
        return _vmap_grads(module, params, loss_fn, inputs, y, output, chunk_size)
    return _loop_grads(module, params, loss_fn, inputs, y, output)


__all__ = ["FeatureForward", "GhostUnsupported", "METHODS", "SiteGradients", "output_gradients", "per_sample_grads",
           "resolve_method", "sample_residuals", "site_gradients", "trainable"]
