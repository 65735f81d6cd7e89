"""Shadow (reference) models for membership-inference audits, trained cheaply and cached.

An audit looks at a fixed **audit population** of N samples. Each of M **replicas** is a model
trained by the audited procedure on a random subset of the population: every sample is in it
independently with probability ½ (seeded; ``membership_masks``). The same procedure trains all
of them — ``privtangent.train.fit`` for a ``TrainConfig``, ``privtangent.dp.training.fit_dp``
for a ``DPConfig`` — so a replica is exactly what the procedure would release. LiRA then
attacks each replica with the others as its shadow models (leave-one-out), which is how
Carlini et al. (2022) evaluate it.

Why shadows are cheap here:

- **One prefix pass for all of them.** The frozen prefix of the base model is computed once for
  the whole population (``PopulationFeatureCache``); every replica's training subset is served
  as rows of that tensor instead of running the prefix again (a subset of the population has
  another content hash, so a plain ``FeatureCache`` would miss).
- **Signals computed once.** Each replica's logits on the whole population (and on optional
  extra samples, e.g. the RMIA population z) are stored with the membership masks in one
  safetensors file under ``RUN_DIR/shadows/`` (never pickle); a later run with the same
  procedure, population, base model and seeds loads them instead of training.

Randomness: the membership masks come from ``seed``; every replica uses the procedure's own
training seed (head initialization, data order), because an auditor may know it and DP must
hold against one who does; DP replicas get a per-replica ``noise_seed`` derived from ``seed``
(audit replicas are never released, and seeded noise makes the audit reproducible; the
mechanism's distribution is the same). ``seed_noise=False`` keeps the procedure's own noise
source instead.
"""

from __future__ import annotations

import functools
import inspect
import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import torch
from safetensors.torch import load_file, save
from torch import Tensor, nn
from tqdm.auto import tqdm

from privtangent.data.dataset import LabeledData
from privtangent.errors import ConfigError
from privtangent.features import FeatureCache
from privtangent.io.atomic import atomic_write_bytes, atomic_write_json
from privtangent.io.hashing import sha256_bytes, tensor_hash
from privtangent.train import TrainConfig, fit, predict_logits, prepare_model

__all__ = [
    "FORMAT",
    "Population",
    "PopulationFeatureCache",
    "Procedure",
    "ShadowSet",
    "TrainedReplica",
    "describe_procedure",
    "limit_threads",
    "torch_threads",
    "is_dp",
    "make_population",
    "membership_masks",
    "procedure_output",
    "resolve_procedure",
    "time_shadow_training",
    "train_replica",
    "train_shadows",
]

FORMAT = "privtangent-shadows/1"

try:  # the DP trainer is optional for non-private audits
    from privtangent.dp.training import DPConfig
except ImportError:  # pragma: no cover - the DP package is part of privtangent
    DPConfig = None  # type: ignore[assignment,misc]

Procedure = Union[TrainConfig, "DPConfig"]


# --------------------------------------------------------------------------------------
# threads
# --------------------------------------------------------------------------------------
@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run with ``torch.set_num_threads(threads)`` (None: leave it), restoring it afterwards.

    Measured on a loaded 2-core machine: the same audit took 10 s with one thread and 306 s
    with two (intra-op threads spin against each other and other processes). The audits'
    models are small, so one thread is the default of every ``run_*_audit``.
    """
    if threads is None:
        yield
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"threads must be an integer ≥ 1 or None, got {threads!r}")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def limit_threads(fn: Callable) -> Callable:
    """Add a keyword argument ``threads`` (default 1; None leaves torch's setting) to ``fn``."""

    @functools.wraps(fn)
    def wrapper(*args, threads: int | None = 1, **kwargs):
        with torch_threads(threads):
            return fn(*args, **kwargs)

    sig = inspect.signature(fn)
    extra = inspect.Parameter("threads", inspect.Parameter.KEYWORD_ONLY, default=1, annotation="int | None")
    wrapper.__signature__ = sig.replace(parameters=[*sig.parameters.values(), extra])
    return wrapper


# --------------------------------------------------------------------------------------
# the audit population
# --------------------------------------------------------------------------------------
@dataclass
class Population:
    """The audited samples: ``data`` (canary labels applied), which are canaries, true labels."""

    data: LabeledData
    is_canary: Tensor  # bool (N,)
    true_labels: Tensor  # int64 (N,), the labels before the canaries' were changed
    seed: int

    def __len__(self) -> int:
        return len(self.data)

    @property
    def num_canaries(self) -> int:
        return int(self.is_canary.sum())

    def describe(self) -> dict[str, Any]:
        return {"name": self.data.name, "size": len(self.data), "num_canaries": self.num_canaries,
                "canaries": "population samples whose label was replaced by a uniformly drawn wrong class "
                            "(a model that memorizes them predicts the wrong class)",
                "seed": self.seed, "content_sha256": self.data.content_hash()}


def make_population(data: LabeledData, size: int, num_canaries: int = 0, seed: int = 0,
                    name: str | None = None) -> Population:
    """``size`` samples of ``data`` drawn without replacement (seeded), the first
    ``num_canaries`` of them (in that random order) relabelled with a wrong class.

    Mislabelled samples are the standard black-box canaries: a model that is not private
    memorizes them, and whether it did is visible in its output.
    """
    for label, value in (("population size", size), ("number of canaries", num_canaries)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{label} must be an integer, got {value!r}")
    if size < 8:
        raise ConfigError(f"population size must be at least 8, got {size}")
    if size > len(data):
        raise ConfigError(f"population size {size} exceeds the {len(data)} samples of {data.name}")
    if not 0 <= num_canaries <= size:
        raise ConfigError(f"number of canaries must lie in [0, population size {size}], got {num_canaries}")
    if data.num_classes < 2 and num_canaries:
        raise ConfigError(f"{data.name}: canaries need at least 2 classes")
    generator = torch.Generator().manual_seed(int(seed))
    index = torch.randperm(len(data), generator=generator)[:size]
    chosen = data.subset(index)
    is_canary = torch.zeros(size, dtype=torch.bool)
    is_canary[:num_canaries] = True
    labels = chosen.labels.clone()
    if num_canaries:
        shift = torch.randint(1, data.num_classes, (num_canaries,), generator=generator)
        labels[is_canary] = (labels[is_canary] + shift) % data.num_classes
    pop = LabeledData(chosen.images, labels, chosen.ids, list(chosen.classes),
                      name or f"{data.name} audit population ({size}, {num_canaries} canaries)")
    return Population(pop, is_canary, chosen.labels.clone(), int(seed))


def membership_masks(num_models: int, size: int, seed: int = 0) -> Tensor:
    """(M, N) bool: sample n is in replica m's training set, independently with probability ½.

    Every row has at least one member and one non-member (redrawn otherwise; with N ≥ 8 this
    almost never happens).
    """
    if isinstance(num_models, bool) or not isinstance(num_models, int) or num_models < 1:
        raise ConfigError(f"number of models must be an integer ≥ 1, got {num_models!r}")
    generator = torch.Generator().manual_seed(int(seed) * 7919 + 17)
    rows = []
    while len(rows) < num_models:
        row = torch.rand(size, generator=generator) < 0.5
        if 0 < int(row.sum()) < size:
            rows.append(row)
    return torch.stack(rows)


# --------------------------------------------------------------------------------------
# the shared prefix features
# --------------------------------------------------------------------------------------
class PopulationFeatureCache(FeatureCache):
    """A ``FeatureCache`` that serves any row-subset of known data sets from their features.

    ``universes`` are the data sets whose subsets will be asked for (the audit population,
    an RMIA reference set, a test split). Asked for ``data`` whose IDs all belong to one
    universe and whose images are that universe's rows, it returns those rows of the
    universe's features (computed once, by ``inner``); anything else goes to ``inner``.
    ``subset_hits`` counts the prefix passes saved.
    """

    def __init__(self, universes: Sequence[LabeledData], inner: FeatureCache | None = None) -> None:
        inner = inner if inner is not None else FeatureCache()
        super().__init__(inner.directory, inner.batch_size)
        self.inner = inner
        self.universes = list(universes)
        self._positions = [{int(i): k for k, i in enumerate(u.ids.tolist())} for u in self.universes]
        self.subset_hits = 0

    def _rows(self, data: LabeledData) -> tuple[int, Tensor] | None:
        ids = data.ids.tolist()
        for u, (universe, position) in enumerate(zip(self.universes, self._positions)):
            if ids and all(int(i) in position for i in ids):
                rows = torch.tensor([position[int(i)] for i in ids], dtype=torch.long)
                if torch.equal(universe.images[rows], data.images):
                    return u, rows
        return None

    def features(self, model: nn.Module, start: int, data: LabeledData, progress: bool = False) -> Tensor:
        found = self._rows(data) if len(data) else None
        if found is None:
            return self.inner.features(model, start, data, progress=progress)
        u, rows = found
        full = self.inner.features(model, start, self.universes[u], progress=progress)
        if len(rows) == len(self.universes[u]) and torch.equal(rows, torch.arange(len(rows))):
            return full
        self.subset_hits += 1
        return full[rows]


def _shared_cache(universes: Sequence[LabeledData], cache: FeatureCache | None) -> PopulationFeatureCache:
    """A PopulationFeatureCache over ``universes`` that shares ``cache``'s computed features."""
    if isinstance(cache, PopulationFeatureCache):
        return PopulationFeatureCache(universes, cache.inner)
    return PopulationFeatureCache(universes, cache)


# --------------------------------------------------------------------------------------
# procedures
# --------------------------------------------------------------------------------------
def is_dp(procedure: Any) -> bool:
    return DPConfig is not None and isinstance(procedure, DPConfig)


def _check_procedure(procedure: Any) -> None:
    if not (isinstance(procedure, TrainConfig) or is_dp(procedure)):
        raise ConfigError(f"a training procedure is a TrainConfig or a DPConfig, got {type(procedure).__name__}")


def procedure_output(procedure: Procedure) -> str:
    """The output the procedure's model predicts with ("full" or "jvp")."""
    return procedure.resolved_output if is_dp(procedure) else procedure.output


def resolve_procedure(procedure: Procedure, dataset_size: int) -> Procedure:
    """A DPConfig with ``target_epsilon`` gets its σ calibrated once (``noise_multiplier`` set),
    so that M replicas do not calibrate M times; anything else is returned as is."""
    _check_procedure(procedure)
    if is_dp(procedure) and procedure.noise_multiplier is None:
        from privtangent.dp.training import resolve_noise

        sigma, _ = resolve_noise(procedure, dataset_size)
        return procedure.replace(target_epsilon=None, noise_multiplier=float(sigma))
    return procedure


def describe_procedure(procedure: Procedure) -> dict[str, Any]:
    """JSON-ready description: kind, method and every field of the config."""
    _check_procedure(procedure)
    if is_dp(procedure):
        kind = "DP tangent" if procedure.tangent else "DP non-linear"
        return {"kind": kind, "trainer": "privtangent.dp.training.fit_dp", "config": procedure.to_dict()}
    return {"kind": "non-private", "method": procedure.method, "trainer": "privtangent.train.fit",
            "config": procedure.to_dict()}


@dataclass
class TrainedReplica:
    model: nn.Module
    seconds: float
    metrics: dict[str, Any]
    manifest: dict[str, Any] | None = None


def train_replica(base: nn.Module, data: LabeledData, procedure: Procedure, cache: FeatureCache,
                  noise_seed: int | None = None) -> TrainedReplica:
    """Train one model on ``data`` with the procedure's own trainer (``fit`` or ``fit_dp``)."""
    _check_procedure(procedure)
    start = time.perf_counter()
    if is_dp(procedure):
        from privtangent.dp.training import fit_dp

        config = procedure if noise_seed is None else procedure.replace(noise_seed=int(noise_seed))
        result = fit_dp(base, data, config, cache=cache, progress=False)
        return TrainedReplica(result.model, time.perf_counter() - start, dict(result.metrics), result.manifest)
    result = fit(base, data, procedure, cache=cache, progress=False)
    return TrainedReplica(result.model, time.perf_counter() - start, dict(result.metrics))


# --------------------------------------------------------------------------------------
# shadow sets
# --------------------------------------------------------------------------------------
@dataclass
class ShadowSet:
    """M replicas of one procedure on one population: their logits and training sets.

    ``logits`` (M, N, K) float32 on the population, ``member`` (M, N) bool, ``extra_logits``
    (M, Z, K) on the extra samples (or None), ``seconds`` the training time of each replica
    (of the run that trained them; loading from the cache is not training), ``cached`` True
    when loaded from disk.
    """

    logits: Tensor
    member: Tensor
    labels: Tensor
    ids: Tensor
    extra_logits: Tensor | None
    seconds: list[float]
    procedure: dict[str, Any]
    key: str
    cached: bool = False
    path: str | None = None
    manifests: list[dict[str, Any]] = field(default_factory=list)

    @property
    def num_models(self) -> int:
        return int(self.logits.shape[0])

    def numpy(self) -> tuple[Any, Any, Any]:
        """(logits float64 (M, N, K), member bool (M, N), labels int64 (N,)) as NumPy arrays."""
        return (self.logits.double().numpy(), self.member.numpy().astype(bool), self.labels.numpy())


def _cache_key(base: nn.Module, population: LabeledData, procedure: Procedure, member: Tensor,
               extra: LabeledData | None, noise_seeds: list[int | None]) -> str:
    blob = json.dumps({
        "format": FORMAT,
        "base": tensor_hash({k: v for k, v in base.state_dict().items()}),
        "population": population.content_hash(),
        "procedure": describe_procedure(procedure),
        "member": tensor_hash(member.to(torch.uint8)),
        "extra": extra.content_hash() if extra is not None else None,
        "noise_seeds": noise_seeds,
        "torch": torch.__version__,
    }, sort_keys=True, default=str)
    return sha256_bytes(blob.encode())[:24]


def _load(path: Path, key: str) -> ShadowSet | None:
    meta_path = path.with_suffix(".json")
    if not (path.exists() and meta_path.exists()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != FORMAT or meta.get("key") != key or meta.get("sha256") != sha256_bytes(path.read_bytes()):
            return None
        t = load_file(str(path))
    except (OSError, ValueError, json.JSONDecodeError):
        return None  # a damaged cache entry is retrained, not trusted
    return ShadowSet(logits=t["logits"], member=t["member"].bool(), labels=t["labels"], ids=t["ids"],
                     extra_logits=t.get("extra_logits"), seconds=[float(s) for s in t["seconds"].tolist()],
                     procedure=meta["procedure"], key=key, cached=True, path=str(path),
                     manifests=meta.get("manifests", []))


def _store(path: Path, shadows: ShadowSet) -> None:
    tensors = {"logits": shadows.logits.contiguous(), "member": shadows.member.to(torch.uint8).contiguous(),
               "labels": shadows.labels.contiguous(), "ids": shadows.ids.contiguous(),
               "seconds": torch.tensor(shadows.seconds, dtype=torch.float64)}
    if shadows.extra_logits is not None:
        tensors["extra_logits"] = shadows.extra_logits.contiguous()
    blob = save(tensors)
    atomic_write_bytes(path, blob)
    atomic_write_json(path.with_suffix(".json"), {
        "format": FORMAT, "key": shadows.key, "sha256": sha256_bytes(blob), "procedure": shadows.procedure,
        "num_models": shadows.num_models, "seconds": shadows.seconds, "manifests": shadows.manifests,
    })


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str, allow_nan=True))


def train_shadows(base: nn.Module, population: LabeledData | Population, procedure: Procedure, *,
                  num_models: int = 4, seed: int = 0, member: Tensor | None = None,
                  cache: FeatureCache | None = None, run_dir: str | Path | None = None,
                  extra: LabeledData | None = None, seed_noise: bool = True, progress: bool = False,
                  desc: str | None = None) -> ShadowSet:
    """Train ``num_models`` replicas of ``procedure`` on random halves of ``population``.

    Args:
        base: the base ViT (timm), shared by every replica.
        population: the audit population (a ``Population`` or plain ``LabeledData``).
        procedure: a ``TrainConfig`` (``fit``) or a ``DPConfig`` (``fit_dp``; its σ is
            calibrated once for the expected subset size when it names a target ε).
        num_models: M, the number of replicas.
        seed: seeds the membership masks (and the DP replicas' noise, see ``seed_noise``).
        member: (M, N) bool masks to use instead of drawing them.
        cache: the feature cache (wrapped so that subsets share the population's features).
        run_dir: where ``shadows/<key>.safetensors`` (+ ``.json``) are read and written.
        extra: samples in no replica's training set whose logits are also recorded (RMIA's z).
        seed_noise: give DP replica i the noise seed derived from (seed, i).

    Returns:
        a ``ShadowSet``; loaded from ``run_dir`` when an identical one is stored there.
    """
    data = population.data if isinstance(population, Population) else population
    _check_procedure(procedure)
    n = len(data)
    if member is None:
        member = membership_masks(num_models, n, seed)
    member = member.bool()
    if member.ndim != 2 or member.shape[1] != n:
        raise ConfigError(f"membership masks must have shape (M, {n}), got {tuple(member.shape)}")
    m = int(member.shape[0])
    resolved = resolve_procedure(procedure, max(1, int(round(n / 2))))
    noise_seeds: list[int | None] = [
        (int(seed) * 1_000_003 + 7 * i + 1) if (is_dp(resolved) and seed_noise) else None for i in range(m)
    ]
    key = _cache_key(base, data, resolved, member, extra, noise_seeds)
    path = Path(run_dir) / "shadows" / f"{key}.safetensors" if run_dir is not None else None
    if path is not None:
        loaded = _load(path, key)
        if loaded is not None:
            return loaded
    universes = [data] + ([extra] if extra is not None else [])
    shared = _shared_cache(universes, cache)
    output = procedure_output(resolved)
    logits, extra_logits, seconds, manifests = [], [], [], []
    for i in tqdm(range(m), desc=desc or "training shadow models", disable=not progress, unit="model"):
        subset = data.subset(member[i], f"{data.name} replica {i}")
        replica = train_replica(base, subset, resolved, shared, noise_seeds[i])
        model = replica.model
        logits.append(predict_logits(model, shared.features(model.base, model.start, data), output).float())
        if extra is not None:
            extra_logits.append(predict_logits(model, shared.features(model.base, model.start, extra), output).float())
        seconds.append(replica.seconds)
        if replica.manifest is not None:
            manifests.append(_jsonable({k: replica.manifest.get(k) for k in (
                "epsilon", "epsilon_rdp", "delta", "noise_multiplier", "max_grad_norm", "sample_rate", "steps",
                "accountant", "dataset_size", "noise_seeded")}))
    shadows = ShadowSet(logits=torch.stack(logits), member=member.clone(), labels=data.labels.clone(),
                        ids=data.ids.clone(), extra_logits=torch.stack(extra_logits) if extra is not None else None,
                        seconds=seconds, procedure=_jsonable(describe_procedure(resolved)), key=key,
                        cached=False, path=str(path) if path else None, manifests=manifests)
    if path is not None:
        _store(path, shadows)
    return shadows


# --------------------------------------------------------------------------------------
# what caching buys: one tangent shadow vs one non-linear shadow
# --------------------------------------------------------------------------------------
def time_shadow_training(base: nn.Module, population: LabeledData | Population, config: TrainConfig | None = None,
                         *, seed: int = 0, cache: FeatureCache | None = None, repeats: int = 1) -> dict[str, Any]:
    """Seconds to train one tangent shadow model vs one non-linear shadow model.

    Both train the same parameters (``config.blocks`` last blocks, ``config.regime``) on the
    same random half of the population, for the same epochs and batch size, each with its
    method's recipe (lr, loss): TAFT with the shared prefix features; NLFT once with the same
    shared features and once with a fresh cache (the prefix run on its own subset, as a
    shadow model trained from images would). The best of ``repeats`` runs is reported
    (timings on a shared machine are noisy; the minimum is the least disturbed), and the
    time of the one prefix pass over the whole population that all shadows share.
    """
    data = population.data if isinstance(population, Population) else population
    config = config or TrainConfig()
    half = data.subset(membership_masks(1, len(data), seed)[0], f"{data.name} half")
    shared = _shared_cache([data], cache)
    tangent = TrainConfig.recipe(tangent=True, regime=config.regime, blocks=config.blocks, epochs=config.epochs,
                                 batch_size=config.batch_size, seed=config.seed, reset=config.reset)
    nonlinear = TrainConfig.recipe(tangent=False, regime=config.regime, blocks=config.blocks, epochs=config.epochs,
                                   batch_size=config.batch_size, seed=config.seed, reset=config.reset)
    probe = prepare_model(base, data.num_classes, tangent)
    start = time.perf_counter()
    FeatureCache().features(probe.base, probe.start, data)  # what the shared cache computes once
    features_seconds = time.perf_counter() - start
    shared.features(probe.base, probe.start, data)  # warm the shared cache (not timed)

    def best(cfg: TrainConfig, fresh: bool) -> float:
        times = []
        for _ in range(max(1, repeats)):
            c = FeatureCache() if fresh else shared
            t = time.perf_counter()
            fit(base, half, cfg, cache=c, progress=False)
            times.append(time.perf_counter() - t)
        return min(times)

    out = {
        "tangent_seconds": best(tangent, False),
        "nonlinear_seconds": best(nonlinear, False),
        "nonlinear_uncached_seconds": best(nonlinear, True),
        "population_features_seconds": features_seconds,
        "train_samples": len(half),
        "tangent_method": tangent.method,
        "nonlinear_method": nonlinear.method,
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "torch_threads": torch.get_num_threads(),
    }
    out["tangent_over_nonlinear"] = out["tangent_seconds"] / max(out["nonlinear_seconds"], 1e-12)
    return out
