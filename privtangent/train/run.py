"""Checkpointed, resumable training runs: one directory per run.

A run directory holds

- ``model.json`` + ``model-<sha12>.safetensors``: the trained parameters (Δw for TAFT, the
  fine-tuned parameters for NLFT / FC) keyed by the base model's parameter names, and the
  run's manifest: base model hash, ``TrainConfig``, data (name, IDs hash, content hash),
  seed, metrics, library versions, the linearization point's hash;
- ``anchor.json`` + ``anchor-<sha12>.safetensors``: the linearization point (the linearized
  blocks after ``reset``, the fresh CLS token, the fresh head) when ``reset`` or
  ``linearize_cls`` is set (otherwise it is the base model plus a seeded head, and only its
  hash is kept);
- ``state.json`` + ``state-<sha12>.safetensors``: everything needed to continue the run
  (trainable parameters, optimizer and scheduler state, the data-order generator, the
  history, the epoch), rewritten atomically after every epoch;
- ``metrics.json``: ``test_accuracy`` (a fraction), ``train_seconds`` and the rest.

``train_run(..., resume=True)`` continues a killed run from its last completed epoch to
the bit-identical result of an uninterrupted run (same thread count). Every file is
verified against its sha256 when read; a corrupt or tampered file raises
``CheckpointError``. All tensors go through safetensors and all structure through JSON:
nothing is ever unpickled.
"""

from __future__ import annotations

import json
import math
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor

from privtangent.data.dataset import ImageData
from privtangent.errors import CheckpointError, ConfigError
from privtangent.features import FeatureCache
from privtangent.finetune import FineTuneModel
from privtangent.io.atomic import atomic_write_json, atomic_write_text
from privtangent.io.checkpoint import library_versions, load_checkpoint, save_checkpoint
from privtangent.io.hashing import tensor_hash
from privtangent.model_card import model_card
from privtangent.tangent.vit import TangentViT
from privtangent.threads import torch_threads
from privtangent.train.config import TrainConfig
from privtangent.train.trainer import EpochHook, TrainResult, fit, prepare_model

RUN_FORMAT = "privtangent-train-run/1"
STATE_FORMAT = "privtangent-train-state/1"
RUN_FILES = ("model.json", "state.json", "anchor.json", "metrics.json")


@dataclass
class RunResult:
    directory: Path
    model: FineTuneModel | None
    metrics: dict
    manifest: dict
    resumed_from: int  # the epoch the run continued from (0: a fresh run)


# -- JSON + tensors: (de)serializing optimizer and scheduler state without pickle ---------------

def pack(obj: Any, tensors: dict[str, Tensor], prefix: str) -> Any:
    """A JSON-able skeleton of ``obj``; its tensors go into ``tensors`` under ``prefix``."""
    if isinstance(obj, Tensor):
        key = f"{prefix}"
        tensors[key] = obj.detach().clone().contiguous().cpu()
        return {"__tensor__": key}
    if isinstance(obj, Counter):
        return {"__counter__": [[pack(k, tensors, f"{prefix}.k{i}"), v] for i, (k, v) in enumerate(obj.items())]}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj) and not any(k.startswith("__") and k.endswith("__") for k in obj):
            return {k: pack(v, tensors, f"{prefix}.{k}") for k, v in obj.items()}
        return {"__items__": [[k, pack(v, tensors, f"{prefix}.{i}")] for i, (k, v) in enumerate(obj.items())]}
    if isinstance(obj, tuple):
        return {"__tuple__": [pack(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [pack(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]
    if isinstance(obj, float) and not math.isfinite(obj):
        return {"__float__": repr(obj)}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise CheckpointError(f"cannot store a {type(obj).__name__} in a training state ({prefix})")


def unpack(obj: Any, tensors: dict[str, Tensor]) -> Any:
    """The inverse of ``pack``."""
    if isinstance(obj, list):
        return [unpack(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        key = obj["__tensor__"]
        if key not in tensors:
            raise CheckpointError(f"training state is incomplete: tensor {key!r} is missing")
        return tensors[key]
    if "__counter__" in obj:
        return Counter({unpack(k, tensors): v for k, v in obj["__counter__"]})
    if "__items__" in obj:
        return {k: unpack(v, tensors) for k, v in obj["__items__"]}
    if "__tuple__" in obj:
        return tuple(unpack(v, tensors) for v in obj["__tuple__"])
    if "__float__" in obj:
        return float(obj["__float__"])
    return {k: unpack(v, tensors) for k, v in obj.items()}


# -- what a run is: its fingerprint -------------------------------------------------------------

def anchor_state(model: FineTuneModel) -> dict[str, Tensor]:
    """The linearization point of a fine-tuning model (its linearized part before training).

    For a ``TangentViT`` this is ``anchor_state_dict()``; for a ``NonLinearViT`` the same
    modules' weights (call it before training) and its fresh CLS token as ``cls_anchor``.
    """
    if isinstance(model, TangentViT):
        return model.anchor_state_dict()
    depth = len(model.base.blocks)
    prefixes = tuple(f"{p}." for p in [f"blocks.{i}" for i in range(model.start, depth)] + ["norm", "fc_norm", "head"])
    state = {k: v.detach().clone() for k, v in model.base.state_dict().items() if k.startswith(prefixes)}
    if model.cls_token is not None:
        state["cls_anchor"] = model.cls_token.detach().clone()
    return state


def load_anchor(model: FineTuneModel, anchor: dict[str, Tensor]) -> None:
    """Put a stored linearization point into a freshly prepared model."""
    own = model.base.state_dict()
    with torch.no_grad():
        for name, value in anchor.items():
            target: Tensor | None
            if name == "cls_anchor":  # a TangentViT has its buffer only when it linearizes the CLS token
                target = getattr(model, "cls_anchor", None) if isinstance(model, TangentViT) else model.cls_token
            else:
                target = own.get(name)
            if target is None or tuple(target.shape) != tuple(value.shape):
                raise CheckpointError(f"the stored linearization point does not fit the model ({name!r})")
            target.copy_(value)


def data_record(data: ImageData, **extra: Any) -> dict[str, Any]:
    return {"name": data.name, "num_samples": len(data), "num_classes": data.num_classes,
            "classes": list(data.classes), "ids_sha256": data.ids_hash(),
            "content_sha256": data.content_hash(), **extra}


def has_run(directory: str | Path) -> bool:
    directory = Path(directory)
    return any((directory / name).exists() for name in RUN_FILES)


# -- the run ------------------------------------------------------------------------------------

def train_run(base: VisionTransformer, train: ImageData, config: TrainConfig, out: str | Path, *,
              test: ImageData | None = None, base_record: dict[str, Any] | None = None,
              data_extra: dict[str, Any] | None = None, cache: FeatureCache | None = None,
              progress: bool = True, resume: bool = False, threads: int | None = None,
              on_epoch_end: EpochHook | None = None) -> RunResult:
    """Train ``config`` on ``train`` into the run directory ``out`` (see the module docstring).

    ``base_record`` describes the base model for the manifest (timm name, kwargs, the
    checkpoint it came from); its hash is added here. ``resume`` continues the run found in
    ``out`` (a fresh run when there is none); without it, a directory that already holds a
    run is refused. ``on_epoch_end`` is called after each epoch's state is saved.
    ``threads`` fixes torch's thread count for the run (it is recorded: a resumed run is
    bit-identical only with the same count).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a directory")
    if has_run(out) and not resume:
        raise ConfigError(f"--out {out}: already holds a training run; pass --resume to continue it, "
                          "or choose another directory")
    with torch_threads(threads):
        base_sha = tensor_hash(base.state_dict())
        model = prepare_model(base, train.num_classes, config)  # validates blocks / regime against the model
        anchor = anchor_state(model)
        fingerprint: dict[str, Any] = {
            "config": config.to_dict(),
            "base_sha256": base_sha,
            "train_sha256": train.content_hash(),
            "test_sha256": test.content_hash() if test is not None else None,
            "anchor_sha256": tensor_hash(anchor),
        }
        state, resumed_from = None, 0
        if resume and (out / "state.json").exists():
            state = read_state(out, fingerprint)
            resumed_from = int(state["epoch"])
            if state.get("threads") not in (None, torch.get_num_threads()):
                print(f"privtangent: warning: resuming with {torch.get_num_threads()} threads, the run used "
                      f"{state['threads']}: the result may differ from an uninterrupted run in the last bits",
                      file=sys.stderr)
        elif resume and (out / "model.json").exists():
            raise CheckpointError(f"{out}: has a model but no resumable state (state.json); it cannot be resumed")

        def save_epoch(epoch, model_, optimizer, scheduler, generator, history) -> None:
            write_state(out, epoch, model_, optimizer, scheduler, generator, history, fingerprint)
            if on_epoch_end is not None:
                on_epoch_end(epoch, model_, optimizer, scheduler, generator, history)

        result: TrainResult = fit(base, train, config, test=test, cache=cache, progress=progress,
                                  on_epoch_end=save_epoch, state=state, model=model)
        result.metrics = finite_json(result.metrics)

    manifest = run_manifest(result.model, config, base_record, base_sha, train, test, data_extra,
                            fingerprint["anchor_sha256"], result.metrics)
    manifest.update({"history": result.history, "threads": torch.get_num_threads() if threads is None else threads,
                     "resumed_from_epoch": resumed_from,
                     "privacy": {"private": False, "note": "trained without differential privacy"}})
    metrics = {**result.metrics, "method": config.method, "epochs": config.epochs, "seed": config.seed,
               "train_data": train.name, "num_train": len(train),
               "num_test": len(test) if test is not None else 0}
    manifest = save_model_dir(out, result.model, manifest, anchor, metrics)
    return RunResult(out, result.model, metrics, manifest, resumed_from)


def run_manifest(model: FineTuneModel, config: TrainConfig, base_record: dict[str, Any] | None, base_sha: str,
                 train: ImageData, test: ImageData | None, data_extra: dict[str, Any] | None,
                 anchor_sha256: str, metrics: dict[str, Any]) -> dict[str, Any]:
    """What ``model.json`` says of any trained model: the base, the config, the data, the anchor."""
    stored = bool(config.reset or config.linearize_cls)
    return {
        "kind": RUN_FORMAT,
        "method": config.method,
        "model_kind": model.kind,
        "config": config.to_dict(),
        "seed": config.seed,
        "base": {**(base_record or {}), "sha256": base_sha},
        "data": {"train": data_record(train, **(data_extra or {})),
                 "test": data_record(test) if test is not None else None},
        "anchor": {"sha256": anchor_sha256, "stored": stored, "file": "anchor.json" if stored else None},
        "metrics": metrics,
        "versions": library_versions(),
    }


def save_model_dir(out: Path, model: FineTuneModel, manifest: dict[str, Any], anchor: dict[str, Tensor],
                   metrics: dict[str, Any]) -> dict[str, Any]:
    """The model directory: ``anchor.safetensors`` (the linearization point, when it cannot be
    rebuilt from the base and seeds), ``model.safetensors`` (the trained parameters keyed by the
    base's names) with ``model.json``, ``model_card.md`` and ``metrics.json``; each atomic."""
    if manifest["anchor"]["stored"]:
        save_checkpoint(out, anchor, {"kind": "privtangent-linearization-point",
                                      "sha256_tensors": manifest["anchor"]["sha256"]}, name="anchor", fixed_name=True)
    path = save_checkpoint(out, model.trainable_state_dict(), manifest, name="model", fixed_name=True)
    saved = json.loads(path.read_text())
    atomic_write_text(out / "model_card.md", model_card(saved, saved["sha256"]))
    atomic_write_json(out / "metrics.json", metrics)
    return saved  # the manifest as written: with the weights file's name and sha256


def finite_json(obj: Any) -> Any:
    """NaN / ±inf → None, so metrics are strict JSON (a class absent from a small test set)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [finite_json(v) for v in obj]
    return obj


def write_state(out: Path, epoch: int, model: FineTuneModel, optimizer, scheduler, generator: torch.Generator,
                history: list[dict], fingerprint: dict) -> Path:
    """Save everything ``fit(state=...)`` needs to continue after ``epoch`` (atomically)."""
    tensors: dict[str, Tensor] = {}
    for name, value in model.trainable_state_dict().items():
        tensors[f"trainable/{name}"] = value
    tensors["generator"] = generator.get_state()
    manifest = {
        "kind": STATE_FORMAT,
        "epoch": epoch,
        "optimizer": pack(optimizer.state_dict(), tensors, "optimizer"),
        "scheduler": pack(scheduler.state_dict(), tensors, "scheduler"),
        "history": history,
        "fingerprint": fingerprint,
        "threads": torch.get_num_threads(),
    }
    return save_checkpoint(out, tensors, manifest, name="state")


def read_state(out: str | Path, fingerprint: dict | None = None) -> dict:
    """The resumable state of the run in ``out`` (verified); with ``fingerprint``, refuse a
    state that belongs to another run (another config, base model or data)."""
    tensors, manifest = load_checkpoint(out, name="state")
    if manifest.get("kind") != STATE_FORMAT:
        raise CheckpointError(f"{out}/state.json: not a privtangent training state")
    if fingerprint is not None:
        stored = manifest.get("fingerprint", {})
        for key, value in fingerprint.items():
            if stored.get(key) != value:
                what = {"config": "the training configuration", "base_sha256": "the base model",
                        "train_sha256": "the training data", "test_sha256": "the test data",
                        "anchor_sha256": "the linearization point"}.get(key, key)
                detail = ""
                if key == "config":
                    diff = sorted(k for k in set(value) | set(stored.get(key) or {})
                                  if value.get(k) != (stored.get(key) or {}).get(k))
                    detail = f" (differs in: {', '.join(diff)})"
                raise CheckpointError(f"cannot resume {out}: {what} differs from the run's{detail}; "
                                      "use the same settings, or another --out for a new run")
    trainable = {k.split("/", 1)[1]: v for k, v in tensors.items() if k.startswith("trainable/")}
    if "generator" not in tensors:
        raise CheckpointError(f"{out}/state.json: the data-order generator state is missing")
    return {"epoch": int(manifest["epoch"]), "trainable": trainable,
            "optimizer": unpack(manifest["optimizer"], tensors), "scheduler": unpack(manifest["scheduler"], tensors),
            "generator": tensors["generator"], "history": manifest["history"], "threads": manifest.get("threads")}


def load_run(directory: str | Path, base: VisionTransformer) -> tuple[FineTuneModel, dict]:
    """The trained model of a finished run, rebuilt on ``base`` and verified; (model, manifest).

    Refuses a run whose base model hash, linearization point or weights do not match.
    """
    directory = Path(directory)
    trainable, manifest = load_checkpoint(directory, name="model")
    if manifest.get("kind") != RUN_FORMAT:
        raise CheckpointError(f"{directory}/model.json: not a privtangent training run")
    base_sha = tensor_hash(base.state_dict())
    if manifest["base"]["sha256"] != base_sha:
        raise CheckpointError(f"{directory}: trained on another base model (sha256 {manifest['base']['sha256'][:12]}…, "
                              f"this one is {base_sha[:12]}…)")
    config = TrainConfig.from_dict(manifest["config"], section="config")
    model = prepare_model(base, int(manifest["data"]["train"]["num_classes"]), config)
    if manifest["anchor"].get("stored"):
        anchor, _ = load_checkpoint(directory, name="anchor")
        if tensor_hash(anchor) != manifest["anchor"]["sha256"]:
            raise CheckpointError(f"{directory}: the stored linearization point does not match the manifest's hash")
        load_anchor(model, anchor)
    elif tensor_hash(anchor_state(model)) != manifest["anchor"]["sha256"]:
        raise CheckpointError(f"{directory}: the rebuilt linearization point does not match the run's "
                              "(another torch version's initialization?)")
    model.load_trainable(trainable)
    return model, manifest

