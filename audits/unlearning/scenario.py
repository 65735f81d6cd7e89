"""The unlearning audit's own scenario: a sharded model with canaries planted in one shard, then forgotten.

``data_size`` training samples are split into shards (seeded); ``num_forget`` samples of shard 0
are relabelled with a wrong class (canaries, which a non-private model memorizes); further
samples, relabelled the same way, are in no shard (never seen). The model is trained, composed,
and a forget request for the canaries is served (``privtangent.shards.forget``). The Δw served
before the request is kept in memory only (it saw the forgotten samples; never written to disk).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor

from privtangent.data.dataset import ImageData, LabeledData
from privtangent.errors import ConfigError
from privtangent.models.pretrain import DEFAULT_MODEL
from privtangent.models.vit import build_vit
from privtangent.shards import SerialExecutor, ShardedModel, forget
from privtangent.shards.sharding import from_assignment
from privtangent.train import TrainConfig


@dataclass
class UnlearningScenario:
    """A sharded model that served a forget request, and what the audit needs to know about it.

    ``before_delta`` (the Δw served before the request) is kept in memory only: it is the
    weights that saw the forgotten samples, and it is never written to disk.
    """

    model_dir: Path
    data: LabeledData  # the sharded model's training data (canary labels applied)
    forget_ids: list[int]
    never_seen: LabeledData  # canaries of the same kind, in no shard
    test: ImageData | None
    config: TrainConfig
    before_delta: dict[str, Tensor] | None
    before_sha256: str | None
    forget: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    build_seconds: float = 0.0
    shadow_cache: dict = field(default_factory=dict, repr=False)  # shadow logits, reused by later audits


def _relabel(data: LabeledData, mask: Tensor, generator: torch.Generator) -> LabeledData:
    labels = data.labels.clone()
    k = int(mask.sum())
    if k:
        shift = torch.randint(1, data.num_classes, (k,), generator=generator)
        labels[mask] = (labels[mask] + shift) % data.num_classes
    return LabeledData(data.images, labels, data.ids, list(data.classes), data.name)


def concat(a: LabeledData, b: LabeledData, name: str) -> LabeledData:
    return LabeledData(torch.cat([a.images, b.images]), torch.cat([a.labels, b.labels]), torch.cat([a.ids, b.ids]),
                       list(a.classes), name)


def _shards_with(forget_ids: list[int], rest_ids: list[int], num_shards: int, data_size: int) -> list[list[int]]:
    """Shard 0 = the forgotten canaries + the first of ``rest_ids`` (already in random order) up to an
    equal share; the other shards split the remaining IDs equally."""
    size0 = data_size // num_shards
    head, tail = rest_ids[:size0 - len(forget_ids)], rest_ids[size0 - len(forget_ids):]
    others = [part.tolist() for part in torch.tensor_split(torch.tensor(tail, dtype=torch.long), num_shards - 1)]
    return [sorted(forget_ids + head), *others]


def build_unlearning_scenario(
    base: VisionTransformer,
    train: ImageData,
    *,
    test: ImageData | None = None,
    run_dir: str | Path,
    base_name: str | None = None,
    base_kwargs: dict[str, Any] | None = None,
    num_shards: int = 2,
    data_size: int = 320,
    num_forget: int = 32,
    num_never_seen: int = 64,
    train_config: TrainConfig | None = None,
    mode: str = "remove",
    seed: int = 0,
    feature_dir: str | Path | None = None,
    progress: bool = False,
) -> UnlearningScenario:
    """Build a sharded model with ``num_forget`` canaries in shard 0, then forget them.

    One pool of ``num_forget + num_never_seen`` samples is drawn at random and relabelled with a
    wrong class (canaries); a random ``num_forget`` of them go into shard 0 (to be forgotten), the
    rest into no shard (never seen). Both sets come from the same pool by the same random draw, so
    after an exact removal they are exchangeable for the served model: the membership test's
    null is exact. The other ``data_size − num_forget`` training samples are split at random to
    fill shard 0 and the other shards equally. The model is written to
    ``run_dir/sharded-model`` (``ShardedModel``), composed, and a forget request for the
    canaries is served (``privtangent.shards.forget``, ``mode``).
    """
    start = time.perf_counter()
    for label, value, low in (("number of shards", num_shards, 2), ("data size", data_size, 4),
                              ("number of forgotten samples", num_forget, 2),
                              ("number of never-seen samples", num_never_seen, 4)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{label} must be an integer ≥ {low}, got {value!r}")
    if base_name is None or base_kwargs is None:
        base_name, base_kwargs = DEFAULT_MODEL["name"], dict(DEFAULT_MODEL["kwargs"])
        shapes = {k: tuple(v.shape) for k, v in build_vit(base_name, **base_kwargs).state_dict().items()}
        if shapes != {k: tuple(v.shape) for k, v in base.state_dict().items()}:
            raise ConfigError("the base model is not the embedded default's architecture: give base_name and "
                              "base_kwargs (the timm name and kwargs it was built with), so shard workers can rebuild it")
    if data_size + num_never_seen > len(train):
        raise ConfigError(f"data size {data_size} + never-seen {num_never_seen} exceeds the {len(train)} samples of {train.name}")
    if num_forget > data_size // num_shards:
        raise ConfigError(f"number of forgotten samples ({num_forget}) exceeds shard 0's {data_size // num_shards} samples")
    config = train_config or TrainConfig()
    if not config.tangent:
        raise ConfigError("the unlearning audit composes tangent shards: the training config needs tangent: true")
    generator = torch.Generator().manual_seed(int(seed) + 101)
    order = torch.randperm(len(train), generator=generator)
    pool = num_forget + num_never_seen  # the canary pool: forgotten and never-seen are a random split of it
    canaries = _relabel(train.subset(order[:pool]).materialize(), torch.ones(pool, dtype=torch.bool), generator)
    forget_ids = sorted(canaries.ids[:num_forget].tolist())
    never_seen = canaries.subset(torch.arange(num_forget, pool), f"{train.name} (never-seen canaries)")
    rest = train.subset(order[pool:pool + data_size - num_forget]).materialize()
    data = concat(canaries.subset(torch.arange(num_forget)), rest, f"{train.name} (unlearning audit, {data_size})")
    shard_map = from_assignment(data, _shards_with(forget_ids, rest.ids.tolist(), num_shards, data_size), seed)
    model_dir = Path(run_dir) / "sharded-model"
    if (model_dir / "sharded.json").exists():
        raise ConfigError(f"{model_dir} already holds a sharded model; give an empty run directory")
    feature_dir = str(feature_dir or Path(run_dir) / "features")
    model = ShardedModel.create(model_dir, base, data, config, shard_map=shard_map, base_name=base_name,
                                base_kwargs=base_kwargs, seed=seed,
                                base_info={"purpose": "unlearning audit replica (canaries planted in shard 0)"})
    model.train(executor=SerialExecutor(), data=data, cache_dir=feature_dir, progress=progress)
    model.build()
    before_delta, before_manifest = model.served()
    result = forget(model, forget_ids, mode, data=data, executor=SerialExecutor(), cache_dir=feature_dir)
    return UnlearningScenario(model_dir=model_dir, data=data, forget_ids=forget_ids, never_seen=never_seen, test=test,
                              config=config, before_delta={k: v.clone() for k, v in before_delta.items()},
                              before_sha256=before_manifest["sha256"], forget=result.to_dict(), seed=int(seed),
                              build_seconds=time.perf_counter() - start)


__all__ = ["UnlearningScenario", "build_unlearning_scenario", "concat"]
