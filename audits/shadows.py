"""Shadow (reference) models for membership-inference audits: replicas of a procedure, trained and cached.

Each of M replicas is trained by the audited procedure on a random half of the audit population
(``audits.population``) — ``privtangent.train.fit`` for a ``TrainConfig``,
``privtangent.dp.training.fit_dp`` for a ``DPConfig`` — so a replica is exactly what the
procedure would release. LiRA then attacks each replica with the others as its shadow models
(leave-one-out), which is how Carlini et al. (2022) evaluate it.

Why shadows are cheap here: the frozen prefix is computed once for the whole population
(``PopulationFeatureCache``), and each replica's logits on the population (and on optional
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

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

import torch
from safetensors.torch import load_file, save
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor, nn

from audits.population import Population, membership_masks, shared_cache
from privtangent.data.dataset import ImageData, LabeledData
from privtangent.dp.config import DPConfig
from privtangent.dp.training import fit_dp, resolve_noise
from privtangent.errors import ConfigError
from privtangent.features import FeatureCache
from privtangent.finetune import FineTuneModel
from privtangent.io.atomic import atomic_write_bytes, atomic_write_json
from privtangent.io.hashing import sha256_bytes, tensor_hash
from privtangent.progress import Progress
from privtangent.train import TrainConfig, fit, predict_logits, prepare_model

FORMAT = "privtangent-shadows/1"
Procedure = TrainConfig | DPConfig


def is_dp(procedure: object) -> TypeGuard[DPConfig]:
    return isinstance(procedure, DPConfig)


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
    model: FineTuneModel
    seconds: float
    metrics: dict[str, Any]
    manifest: dict[str, Any] | None = None


def train_replica(base: VisionTransformer, data: LabeledData, procedure: Procedure, cache: FeatureCache,
                  noise_seed: int | None = None) -> TrainedReplica:
    """Train one model on ``data`` with the procedure's own trainer (``fit`` or ``fit_dp``)."""
    _check_procedure(procedure)
    start = time.perf_counter()
    if isinstance(procedure, DPConfig):
        config = procedure if noise_seed is None else procedure.replace(noise_seed=int(noise_seed))
        dp_result = fit_dp(base, data, config, cache=cache, progress=False)
        return TrainedReplica(dp_result.model, time.perf_counter() - start, dict(dp_result.metrics), dp_result.manifest)
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
               extra: ImageData | None, noise_seeds: list[int | None]) -> str:
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


def train_shadows(base: VisionTransformer, population: LabeledData | Population, procedure: Procedure, *,
                  num_models: int = 4, seed: int = 0, member: Tensor | None = None,
                  cache: FeatureCache | None = None, run_dir: str | Path | None = None,
                  extra: ImageData | None = None, seed_noise: bool = True, progress: bool = False,
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
    shared = shared_cache(universes, cache)
    output = procedure_output(resolved)
    logits, extra_logits, seconds, manifests = [], [], [], []
    bar = Progress(m, desc or "training shadow models", unit="model", enabled=progress)
    for i in range(m):
        subset = data.subset(member[i], f"{data.name} replica {i}")
        replica = train_replica(base, subset, resolved, shared, noise_seeds[i])
        model = replica.model
        logits.append(predict_logits(model, shared.features(model.base, model.start, data), output).float())
        if extra is not None:
            extra_logits.append(predict_logits(model, shared.features(model.base, model.start, extra), output).float())
        seconds.append(replica.seconds)
        bar.update()
        if replica.manifest is not None:
            manifests.append(_jsonable({k: replica.manifest.get(k) for k in (
                "epsilon", "epsilon_rdp", "delta", "noise_multiplier", "max_grad_norm", "sample_rate", "steps",
                "accountant", "dataset_size", "noise_seeded")}))
    bar.close()
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
def time_shadow_training(base: VisionTransformer, population: LabeledData | Population, config: TrainConfig | None = None,
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
    shared = shared_cache([data], cache)
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

    out: dict[str, Any] = {
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


__all__ = ["FORMAT", "Procedure", "ShadowSet", "TrainedReplica", "describe_procedure", "is_dp", "procedure_output",
           "resolve_procedure", "time_shadow_training", "train_replica", "train_shadows"]
