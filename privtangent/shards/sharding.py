"""Shard maps and sharded model directories: split, train each shard, compose, serve.

A **shard map** splits a data set's sample IDs into N disjoint shards: a seeded uniform
permutation (without replacement) cut into N parts whose sizes differ by at most one.
It is saved as JSON with the raw IDs of each shard (the sample IDs are the data set's own
stable integer IDs, not the samples) and per-shard hashes of the IDs and of the content.

A **sharded model directory**::

    DIR/sharded.json                 what was built: base, data, TrainConfig, N, seeds (never changes)
    DIR/shard_map.json               the shard map
    DIR/base.json, base-<h>.safetensors      the base model (timm names), so DIR is self-contained
    DIR/shards/shard-0007.json, shard-0007-<h>.safetensors       Δw of shard 7 (keyed by base names)
    DIR/shards/shard-0007-r0003.json, ...    shard 7 retrained by forget request 3
    DIR/model.json, model-<h>.safetensors    the served composed Δw; its manifest's "state" says
                                             which shard checkpoints it is composed of and what was forgotten
    DIR/ledger.jsonl                 the hash-chained ledger (privtangent.shards.ledger)
    DIR/pending.json                 only while a forget request is being applied

All shards share one linearization point: the same base, the same fresh head and (with
``reset``) the same re-initialized blocks, because they are trained with the same
``TrainConfig`` (same seed); only their data differ. That is what makes the average of
their Δw equal the ensemble of their outputs.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_bytes
from safetensors.torch import load_file, save_file
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor, nn

from privtangent.data import load_image_folder, load_task
from privtangent.data.dataset import LabeledData
from privtangent.errors import CheckpointError, ConfigError, DataError, PrivtangentError
from privtangent.features import FeatureCache, Features
from privtangent.finetune import FineTuneModel
from privtangent.io.atomic import atomic_write_bytes, atomic_write_json
from privtangent.io.checkpoint import FORMAT, load_checkpoint, save_checkpoint
from privtangent.io.hashing import sha256_bytes, sha256_file, tensor_hash
from privtangent.models.vit import build_vit
from privtangent.paths import feature_cache_dir
from privtangent.shards.compose import compose
from privtangent.shards.executors import BaseSpec, SerialExecutor, ShardJob, ShardOutput, ids_hash
from privtangent.shards.ledger import Ledger
from privtangent.shards.purge import record_feature_dir
from privtangent.train.config import TrainConfig
from privtangent.train.evaluate import evaluate
from privtangent.train.trainer import prepare_model

MAP_FORMAT = "privtangent-shard-map/1"
SPEC_FORMAT = "privtangent-sharded/1"


class UnknownIDsError(PrivtangentError):
    """Sample IDs that are not in the shard map."""


# --------------------------------------------------------------------------------------
# shard maps
# --------------------------------------------------------------------------------------
@dataclass
class ShardMap:
    """Disjoint shards of a data set's sample IDs (each list sorted ascending)."""

    seed: int
    data_sha256: str  # content hash of the whole data set that was split
    shards: list[list[int]]
    ids_sha256: list[str]  # per shard: sha256 of its sorted IDs
    content_sha256: list[str]  # per shard: LabeledData.content_hash() of its samples

    @property
    def num_shards(self) -> int:
        return len(self.shards)

    @property
    def sizes(self) -> list[int]:
        return [len(s) for s in self.shards]

    def index(self) -> dict[int, int]:
        """Sample ID → shard."""
        return {i: k for k, ids in enumerate(self.shards) for i in ids}

    def locate(self, ids: Iterable[int]) -> dict[int, int]:
        """Shard of each ID; raises ``UnknownIDsError`` naming the IDs not in any shard."""
        where = self.index()
        ids = list(ids)
        unknown = [i for i in ids if i not in where]
        if unknown:
            shown = ", ".join(str(i) for i in unknown[:10]) + (" …" if len(unknown) > 10 else "")
            raise UnknownIDsError(
                f"{len(unknown)} of {len(ids)} sample IDs are not in this model's training data: {shown} "
                f"(known IDs are listed per shard in shard_map.json)"
            )
        return {i: where[i] for i in ids}

    def to_dict(self) -> dict[str, Any]:
        return {"format": MAP_FORMAT, "seed": self.seed, "data_sha256": self.data_sha256,
                "num_shards": self.num_shards, "sizes": self.sizes,
                "shards": [{"shard": k, "size": len(ids), "ids_sha256": self.ids_sha256[k],
                            "content_sha256": self.content_sha256[k], "ids": ids}
                           for k, ids in enumerate(self.shards)]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ShardMap":
        if not isinstance(d, dict) or d.get("format") != MAP_FORMAT:
            raise CheckpointError("not a privtangent shard map")
        shards = [[int(i) for i in s["ids"]] for s in d["shards"]]
        out = cls(int(d["seed"]), str(d["data_sha256"]), shards,
                  [s["ids_sha256"] for s in d["shards"]], [s["content_sha256"] for s in d["shards"]])
        for k, ids in enumerate(shards):
            if ids_hash(ids) != out.ids_sha256[k]:
                raise CheckpointError(f"shard map: shard {k}'s IDs do not match its recorded hash (edited?)")
        return out

    def save(self, path: str | os.PathLike) -> Path:
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ShardMap":
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
            raise CheckpointError(f"{path}: unreadable shard map ({err})") from None

    def without(self, ids: Iterable[int], data: LabeledData) -> "ShardMap":
        """The same assignment with ``ids`` left out (a model trained without them from the start)."""
        drop = {int(i) for i in ids}
        kept = data.select_ids(sorted(drop), keep=False)
        return from_assignment(kept, [[i for i in s if i not in drop] for s in self.shards], self.seed)


def from_assignment(data: LabeledData, shards: list[list[int]], seed: int) -> ShardMap:
    """A shard map for an explicit assignment of ``data``'s IDs (disjoint, covering it)."""
    shards = [sorted(int(i) for i in s) for s in shards]
    flat = [i for s in shards for i in s]
    if len(flat) != len(set(flat)):
        raise DataError("shards must be disjoint")
    if sorted(flat) != sorted(data.ids.tolist()):
        raise DataError("the shards must cover exactly the data set's IDs")
    if any(not s for s in shards):
        raise DataError("every shard needs at least one sample")
    return ShardMap(seed, data.content_hash(), shards, [ids_hash(s) for s in shards],
                    [shard_data(data, s).content_hash() for s in shards])


def make_shard_map(data: LabeledData, num_shards: int, seed: int = 0) -> ShardMap:
    """Split ``data`` into ``num_shards`` disjoint shards, uniformly at random (seeded)."""
    if isinstance(num_shards, bool) or not isinstance(num_shards, int) or num_shards < 1:
        raise ConfigError(f"the number of shards must be an integer ≥ 1, got {num_shards!r}")
    if num_shards > len(data):
        raise ConfigError(f"cannot split {len(data)} samples into {num_shards} non-empty shards")
    generator = torch.Generator().manual_seed(seed)
    ids = torch.sort(data.ids).values
    order = ids[torch.randperm(len(ids), generator=generator)]
    return from_assignment(data, [part.tolist() for part in torch.tensor_split(order, num_shards)], seed)


def shard_data(data: LabeledData, ids: Iterable[int], name: str | None = None) -> LabeledData:
    """The samples of ``data`` whose IDs are in ``ids`` (in ``data``'s order)."""
    ids = list(ids)
    out = data.select_ids(ids) if ids else data.subset(torch.zeros(len(data), dtype=torch.bool))
    out.name = name or data.name
    return out


# --------------------------------------------------------------------------------------
# the frozen prefix's features, shared by every shard
# --------------------------------------------------------------------------------------


def prime_feature_cache(cache_dir: str | os.PathLike, base: nn.Module, start: int, data: LabeledData,
                        subsets: Iterable[LabeledData], progress: bool = False,
                        parents: Iterable[LabeledData | None] | None = None) -> int:
    """Store each subset's prefix features under its key in ``FeatureCache(cache_dir)``.

    Rows are sliced from ``parents[i]``'s cached features when that file exists (a retrained
    shard reads only its own shard's features), else from ``data``'s, computed at most once.
    Workers then find their shard's features without running the frozen prefix again.
    Returns how many subset files were written.
    """


    directory = Path(cache_dir)
    cache = FeatureCache(directory)
    written = 0
    full: tuple[Features, dict[int, int]] | None = None
    subsets = list(subsets)
    parents = list(parents) if parents is not None else [None] * len(subsets)
    for subset, parent in zip(subsets, parents):
        path = directory / f"{cache.key(base, start, subset)}.safetensors"
        if path.exists():
            continue
        source: tuple[Features, dict[int, int]] | None = None
        if parent is not None:
            parent_path = directory / f"{cache.key(base, start, parent)}.safetensors"
            if parent_path.exists():
                source = (load_file(str(parent_path))["features"], {int(i): k for k, i in enumerate(parent.ids.tolist())})
        if source is None:
            if full is None:
                full = (cache.features(base, start, data, progress=progress),
                        {int(i): k for k, i in enumerate(data.ids.tolist())})
            source = full
        feats, position = source
        rows = torch.tensor([position[int(i)] for i in subset.ids.tolist()], dtype=torch.long)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({"features": feats[rows].contiguous()}, str(tmp))
        atomic_write_bytes(path, tmp.read_bytes())
        tmp.unlink()
        written += 1
    return written


def base_spec_for(base: nn.Module, name: str, kwargs: dict[str, Any]) -> tuple[BaseSpec, dict[str, Tensor]]:
    """How workers rebuild ``base`` (timm ``name`` + ``kwargs``), and its state."""
    state = {k: v.detach().contiguous().cpu() for k, v in base.state_dict().items()}
    return BaseSpec(name, dict(kwargs), tensor_hash(state)), state


def train_shards(base: VisionTransformer, data: LabeledData, shard_map: ShardMap, config: TrainConfig, *,
                 base_name: str, base_kwargs: dict[str, Any], shards: Iterable[int] | None = None,
                 exclude: Iterable[int] = (), executor=None, cache_dir: str | os.PathLike | None = None,
                 threads: int = 1, version: int = 0) -> list[ShardOutput]:
    """Train one model per shard in memory (no model directory), tangent or not.

    Used by the baselines (non-linear shards for Model Soup and SISA) and the benchmarks;
    ``ShardedModel`` does the same and writes checkpoints. Results are sorted by shard.
    """
    spec, state = base_spec_for(base, base_name, base_kwargs)
    drop = {int(i) for i in exclude}
    cache = str(cache_dir or feature_cache_dir())
    wanted = range(shard_map.num_shards) if shards is None else shards
    jobs = [ShardJob(k, version, shard_data(data, [i for i in shard_map.shards[k] if i not in drop], f"{data.name}#shard{k}"),
                     config, spec, cache, threads) for k in wanted]
    prime_feature_cache(cache, base, len(base.blocks) - config.blocks, data, [j.data for j in jobs])
    return sorted((executor or SerialExecutor()).run(jobs, state), key=lambda o: o.shard)


# --------------------------------------------------------------------------------------
# data references: how to reload the training data later (forget --mode retrain)
# --------------------------------------------------------------------------------------
def task_ref(task: str, split: str = "train", limit: int | None = None) -> dict[str, Any]:
    return {"task": task, "split": split, "limit": limit}


def load_ref(ref: dict[str, Any] | None, expected_sha256: str | None = None) -> LabeledData:
    """Reload a data set from its reference, checking that its content did not change."""
    if not ref or ("task" not in ref and "folder" not in ref):
        raise DataError(
            "this sharded model was built from in-memory data: pass the training data explicitly "
            "(Python API: data=...)"
        )
    if "task" in ref:

        data = load_task(ref["task"], ref.get("split", "train"), limit=ref.get("limit"))
    else:

        data = load_image_folder(ref["folder"], ref["img_size"], ref["in_chans"])
        data = data.limit(ref.get("limit"))
    if expected_sha256 is not None and data.content_hash() != expected_sha256:
        raise DataError(
            f"the data at {ref} changed since the model was built (content sha256 {data.content_hash()[:12]}… "
            f"vs {expected_sha256[:12]}…); retraining needs the original data"
        )
    return data


# --------------------------------------------------------------------------------------
# the sharded model directory
# --------------------------------------------------------------------------------------
def checkpoint_name(shard: int, version: int) -> str:
    return f"shard-{shard:04d}" if version == 0 else f"shard-{shard:04d}-r{version:04d}"


class ShardedModel:
    """A sharded tangent model on disk (see the module docstring for the layout)."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        spec_path = self.directory / "sharded.json"
        if not spec_path.is_file():
            raise PrivtangentError(f"{self.directory} is not a sharded model directory (no sharded.json)")
        try:
            self.spec = json.loads(spec_path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise CheckpointError(f"{spec_path}: unreadable ({err})") from None
        if self.spec.get("format") != SPEC_FORMAT:
            raise CheckpointError(f"{spec_path}: not a privtangent sharded model")
        self.shard_map = ShardMap.load(self.directory / "shard_map.json")
        self.config = TrainConfig.from_dict(self.spec["config"], section="sharded.json config")
        self.ledger = Ledger(self.directory / "ledger.jsonl")
        self._base_state: dict[str, Tensor] | None = None

    # -- creation --------------------------------------------------------------------------
    @classmethod
    def create(cls, directory: str | os.PathLike, base: VisionTransformer, data: LabeledData, config: TrainConfig,
               num_shards: int | None = None, *, base_name: str, base_kwargs: dict[str, Any], seed: int = 0,
               data_ref: dict[str, Any] | None = None, test_ref: dict[str, Any] | None = None,
               shard_map: ShardMap | None = None, threads: int = 1, base_info: dict[str, Any] | None = None,
               ) -> "ShardedModel":
        """Write the spec, the shard map and the base model of a new sharded model.

        ``shard_map`` gives an explicit assignment (else ``make_shard_map(data, num_shards, seed)``).
        ``data_ref``/``test_ref`` say how to reload the data (``task_ref``); without
        ``data_ref``, forget --mode retrain needs the data passed in.
        """
        directory = Path(directory)
        if (directory / "sharded.json").exists():
            raise PrivtangentError(f"{directory} already holds a sharded model")
        if not config.tangent:
            raise ConfigError("a sharded model composes tangent models: config.tangent must be true "
                              "(non-linear shards are the Model Soup / SISA baselines in privtangent.shards.baselines)")
        if shard_map is None:
            if num_shards is None:
                raise ConfigError("give num_shards or a shard_map")
            shard_map = make_shard_map(data, num_shards, seed)
        elif shard_map.data_sha256 != data.content_hash():
            raise DataError("the shard map was made for other data")
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ConfigError(f"threads must be an integer ≥ 1, got {threads!r}")
        state = {k: v.detach().contiguous().cpu() for k, v in base.state_dict().items()}
        directory.mkdir(parents=True, exist_ok=True)
        save_checkpoint(directory, state, {"timm_name": base_name, "timm_kwargs": base_kwargs,
                                           "tensor_sha256": tensor_hash(state), "info": base_info or {}}, name="base")
        shard_map.save(directory / "shard_map.json")
        spec = {
            "format": SPEC_FORMAT,
            "num_shards": shard_map.num_shards,
            "split_seed": shard_map.seed,
            "config": config.to_dict(),
            "threads": threads,
            "data": {"ref": data_ref, "name": data.name, "content_sha256": data.content_hash(),
                     "num_samples": len(data), "classes": list(data.classes)},
            "test": test_ref,
            "base": {"timm_name": base_name, "timm_kwargs": base_kwargs, "tensor_sha256": tensor_hash(state)},
            "start_block": len(base.blocks) - config.blocks,
        }
        atomic_write_json(directory / "sharded.json", spec)  # written last: its presence means "created"
        return cls(directory)

    # -- pieces ----------------------------------------------------------------------------
    @property
    def num_shards(self) -> int:
        return self.shard_map.num_shards

    @property
    def num_classes(self) -> int:
        return len(self.spec["data"]["classes"])

    @property
    def base_spec(self) -> BaseSpec:
        b = self.spec["base"]
        return BaseSpec(b["timm_name"], b["timm_kwargs"], b["tensor_sha256"])

    def base_state(self) -> dict[str, Tensor]:
        if self._base_state is None:
            state, _ = load_checkpoint(self.directory, name="base")
            if tensor_hash(state) != self.spec["base"]["tensor_sha256"]:
                raise CheckpointError(f"{self.directory}: the base model does not match sharded.json")
            self._base_state = state
        return self._base_state

    def load_base(self) -> VisionTransformer:
        model = build_vit(self.spec["base"]["timm_name"], **self.spec["base"]["timm_kwargs"])
        model.load_state_dict(self.base_state())
        return model.eval()

    def load_data(self, data: LabeledData | None = None) -> LabeledData:
        """The training data (reloaded from its reference unless given), checked by hash."""
        expected = self.spec["data"]["content_sha256"]
        if data is not None:
            if data.content_hash() != expected:
                raise DataError("the data given is not the data this sharded model was trained on (content hash differs)")
            return data
        return load_ref(self.spec["data"]["ref"], expected)

    def load_test(self) -> LabeledData | None:
        ref = self.spec.get("test")
        return load_ref(ref) if ref else None

    @property
    def shards_dir(self) -> Path:
        return self.directory / "shards"

    def shard_checkpoint_exists(self, shard: int, version: int = 0) -> bool:
        return (self.shards_dir / f"{checkpoint_name(shard, version)}.json").exists()

    def load_shard(self, name: str) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """A shard checkpoint (``io.checkpoint`` format), refused unless its sha256 matches.

        Reads the tensor file once (hash and parse the same bytes).
        """


        path = self.shards_dir / f"{name}.json"
        try:
            manifest = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise CheckpointError(f"shard checkpoint {name}: unreadable manifest ({err})") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise CheckpointError(f"{path}: not a privtangent checkpoint manifest")
        weights = self.shards_dir / os.path.basename(str(manifest.get("weights", "")))
        try:
            blob = weights.read_bytes()
        except OSError:
            raise CheckpointError(f"shard checkpoint {name}: its tensor file {weights.name} is missing") from None
        if sha256_bytes(blob) != manifest.get("sha256"):
            raise CheckpointError(f"{weights} is corrupt or was modified (sha256 does not match its manifest); refusing it")
        return load_bytes(blob), manifest

    def has_served(self) -> bool:
        return (self.directory / "model.json").exists()

    def served(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """The served composed Δw and its manifest (``manifest["state"]``)."""
        if not self.has_served():
            raise PrivtangentError(f"{self.directory} has no composed model yet: train every shard, then compose")
        return load_checkpoint(self.directory, name="model")

    def served_manifest(self) -> dict[str, Any]:
        path = self.directory / "model.json"
        if not path.exists():
            raise PrivtangentError(f"{self.directory} has no composed model yet: train every shard, then compose")
        return json.loads(path.read_text())

    def tangent_model(self, delta: dict[str, Tensor] | None = None) -> FineTuneModel:
        """The served tangent model (or one with ``delta`` as its Δw)."""

        model = prepare_model(self.load_base(), self.num_classes, self.config)
        model.load_trainable(delta if delta is not None else self.served()[0])
        return model.eval()

    # -- training --------------------------------------------------------------------------
    def jobs(self, shards: Iterable[int], data: LabeledData, version: int, exclude: Iterable[int] = (),
             cache_dir: str | os.PathLike | None = None) -> list[ShardJob]:
        """One job per shard: its samples minus ``exclude``."""
        drop = {int(i) for i in exclude}
        cache = str(cache_dir or feature_cache_dir())
        record_feature_dir(self.directory, cache)  # a forget request purges this cache's rows too
        out = []
        for k in shards:
            ids = [i for i in self.shard_map.shards[k] if i not in drop]
            out.append(ShardJob(k, version, shard_data(data, ids, f"{data.name}#shard{k}"), self.config,
                                self.base_spec, cache, self.spec["threads"]))
        return out

    def run_jobs(self, jobs: list[ShardJob], data: LabeledData, executor=None,
                 on_result: Callable[[ShardOutput], None] | None = None, progress: bool = False) -> list[ShardOutput]:
        """Prime the feature cache, run the jobs, write each shard checkpoint as it arrives."""
        if not jobs:
            return []
        if jobs[0].cache_dir:
            parents = [shard_data(data, self.shard_map.shards[j.shard]) if j.version else None for j in jobs]
            prime_feature_cache(jobs[0].cache_dir, self.load_base(), self.spec["start_block"], data,
                                [j.data for j in jobs], progress=progress, parents=parents)
        executor = executor or SerialExecutor()
        outputs = []
        for out in executor.run(jobs, self.base_state()):
            self.write_shard(out)
            outputs.append(out)
            if on_result is not None:
                on_result(out)
        return sorted(outputs, key=lambda o: o.shard)

    def write_shard(self, out: ShardOutput) -> Path:
        manifest = {"shard": out.shard, "version": out.version, "num_samples": out.num_samples,
                    "trained_ids_sha256": out.ids_sha256, "data_sha256": out.data_sha256,
                    "config_sha256": self.config_hash(), "metrics": out.metrics,
                    "train_seconds": out.seconds, "worker": out.worker}
        return save_checkpoint(self.shards_dir, out.trainable, manifest, name=checkpoint_name(out.shard, out.version))

    def config_hash(self) -> str:
        return sha256_bytes(json.dumps(self.config.to_dict(), sort_keys=True).encode())

    def train(self, shards: Iterable[int] | None = None, executor=None, data: LabeledData | None = None,
              cache_dir: str | os.PathLike | None = None, skip_done: bool = True,
              on_result: Callable[[ShardOutput], None] | None = None, progress: bool = False) -> list[ShardOutput]:
        """Train shards (all, or those given) on their samples; skips finished ones.

        Refused once a composed model is served: after that, shards change only through
        forget requests (which the ledger records).
        """
        wanted = list(range(self.num_shards)) if shards is None else sorted({int(k) for k in shards})
        bad = [k for k in wanted if not 0 <= k < self.num_shards]
        if bad:
            raise ConfigError(f"shard {bad[0]} does not exist: this model has shards 0..{self.num_shards - 1}")
        if self.ledger.exists() and self.ledger.records():
            raise PrivtangentError(
                f"{self.directory} already serves a composed model; shards change only through `privtangent forget`"
            )
        if skip_done:
            wanted = [k for k in wanted if not self.shard_checkpoint_exists(k)]
        if not wanted:
            return []
        data = self.load_data(data)
        return self.run_jobs(self.jobs(wanted, data, 0, cache_dir=cache_dir), data, executor, on_result, progress)

    def missing_shards(self) -> list[int]:
        return [k for k in range(self.num_shards) if not self.shard_checkpoint_exists(k)]

    # -- composition -----------------------------------------------------------------------
    def compose_state(self, state: dict[str, Any]) -> dict[str, Tensor]:
        """Compose the active shards named by a served state (their checkpoints, their weights)."""
        deltas, weights = [], []
        for entry, weight in zip(state["shards"], state["weights"]):
            if entry["status"] != "active":
                continue
            tensors, manifest = self.load_shard(entry["checkpoint"])
            if manifest.get("config_sha256") != self.config_hash():
                raise CheckpointError(f"shard checkpoint {entry['checkpoint']} was trained with another configuration")
            deltas.append(tensors)
            weights.append(weight)
        if not deltas:
            raise PrivtangentError("no active shard left to compose")
        return compose(deltas, weights)

    def build(self) -> dict[str, Any]:
        """Compose every shard into the served model and open the ledger (idempotent)."""
        missing = self.missing_shards()
        if missing:
            raise PrivtangentError(
                f"{len(missing)} of {self.num_shards} shards are not trained yet "
                f"({', '.join(map(str, missing[:10]))}{' …' if len(missing) > 10 else ''}): "
                "run `privtangent shards train` for them first"
            )
        if self.ledger.exists() and self.ledger.records():
            return self.served_manifest()
        entries = []
        for k in range(self.num_shards):
            name = checkpoint_name(k, 0)
            _, manifest = self.load_shard(name)
            entries.append({"shard": k, "status": "active", "checkpoint": name, "version": 0,
                            "sha256": manifest["sha256"], "num_samples": manifest["num_samples"],
                            "trained_ids_sha256": manifest["trained_ids_sha256"]})
        state = {"request": 0, "ledger": None, "shards": entries,
                 "weights": [1.0 / self.num_shards] * self.num_shards, "requests": []}
        composed = self.compose_state(state)
        save_checkpoint(self.directory, composed, {"kind": "composed-tangent-delta", "state": state}, name="model")
        manifest = self.served_manifest()
        self.ledger.append(
            "create", after=manifest["sha256"], num_shards=self.num_shards,
            shard_map_sha256=sha256_file(self.directory / "shard_map.json"),
            spec_sha256=sha256_file(self.directory / "sharded.json"),
            base_sha256=self.spec["base"]["tensor_sha256"], data_sha256=self.spec["data"]["content_sha256"],
            shards=[{"shard": e["shard"], "sha256": e["sha256"], "trained_ids_sha256": e["trained_ids_sha256"],
                     "num_samples": e["num_samples"]} for e in entries],
        )
        return manifest

    def evaluate(self, test: LabeledData | None = None, cache_dir: str | os.PathLike | None = None) -> dict[str, Any]:
        """Accuracy of the served model on ``test`` (default: the recorded test split)."""

        test = test or self.load_test()
        if test is None:
            raise DataError("no test data: give one (this model records no test split)")
        model = self.tangent_model()
        feats = FeatureCache(Path(cache_dir or feature_cache_dir())).features(model.base, model.start, test)
        report = evaluate(model, feats, test.labels, test.num_classes)
        return {"test_accuracy": report["accuracy"], "num_test": len(test)}


def copy_model(source: str | os.PathLike, target: str | os.PathLike) -> ShardedModel:
    """A copy of a sharded model directory (e.g. to try a forget request)."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".lock", "*.tmp"))
    return ShardedModel(target)
