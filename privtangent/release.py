"""Using a trained model directory — the released artifact — again: load it, verify it, find its data.

A model directory (``privtangent train``, with or without ``--epsilon``) holds ``model.json``,
``model.safetensors`` (Δw keyed by the base model's parameter names), the linearization point
when it cannot be rebuilt, and ``model_card.md``. ``load_model`` rebuilds the tangent (or
non-linear) model from the base model the manifest names and the stored Δw, refusing anything
whose sha256 differs from the manifest: the Δw file, the linearization point, and the base
model's weights (a base checkpoint edited by one byte is refused).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from timm.models.vision_transformer import VisionTransformer

from privtangent.config.schema import DataSpec, ModelSpec
from privtangent.data.dataset import ImageData
from privtangent.errors import CheckpointError
from privtangent.finetune import FineTuneModel
from privtangent.inputs import load_base, load_data
from privtangent.io.hashing import tensor_hash
from privtangent.train.run import RUN_FORMAT, load_run

MANIFEST = "model.json"


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """``model.json`` of a model directory (not yet verified against its tensors)."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise CheckpointError(f"{directory} is not a privtangent model directory (no {MANIFEST}); "
                              "train one with `privtangent train ... --out DIR`")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path} is corrupt: {err}") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != RUN_FORMAT:
        raise CheckpointError(f"{path}: not a privtangent model manifest")
    return manifest


def base_spec(manifest: dict[str, Any]) -> ModelSpec:
    """The ``model:`` section that rebuilds the base model a manifest names."""
    base = manifest["base"]
    if base.get("embedded_default"):
        return ModelSpec()
    return ModelSpec(base["name"], dict(base.get("kwargs") or {}), base.get("checkpoint"))


def verified_base(manifest: dict[str, Any], base: VisionTransformer | None = None, *,
                  progress: bool = False) -> VisionTransformer:
    """The base model of ``manifest`` (rebuilt, or ``base``), refused unless its weights hash to the recorded sha256."""
    if base is None:
        base, _ = load_base(base_spec(manifest), progress=progress)
    actual, recorded = tensor_hash(base.state_dict()), manifest["base"].get("sha256")
    if actual != recorded:
        raise CheckpointError(f"the base model's weights (sha256 {actual[:12]}…) are not the ones this model was "
                              f"trained on ({str(recorded)[:12]}…): refusing to rebuild it on another base "
                              f"(checkpoint {manifest['base'].get('checkpoint')})")
    return base


def load_model(directory: str | Path, base: VisionTransformer | None = None, *,
               progress: bool = False) -> FineTuneModel:
    """The trained model of ``directory``, in eval mode, every file verified against the manifest."""
    manifest = read_manifest(directory)
    model, _ = load_run(directory, verified_base(manifest, base, progress=progress))
    return model.eval()


def data_spec(manifest: dict[str, Any]) -> DataSpec:
    """The ``data:`` section that reloads the data a model was trained and tested on."""
    record = manifest["data"]["train"]
    if "train_folder" in record:
        return DataSpec(train=record["train_folder"], test=record["test_folder"], train_limit=record.get("limit"),
                        test_limit=record.get("test_limit"), mean=record.get("mean"), std=record.get("std"))
    return DataSpec(task=record["task"], train_limit=record.get("limit"), test_limit=record.get("test_limit"))


def training_data(manifest: dict[str, Any], base: VisionTransformer) -> tuple[ImageData, ImageData]:
    """(train, test) exactly as the run drew them (same subsets, same seed), checked by content hash."""
    train, test, _ = load_data(data_spec(manifest), base, seed=int(manifest["seed"]))
    recorded = manifest["data"]["train"].get("content_sha256")
    if recorded is not None and train.content_hash() != recorded:
        raise CheckpointError(f"the training data found ({train.name}) is not the data this model was trained on "
                              f"(content sha256 {train.content_hash()[:12]}… vs {recorded[:12]}…)")
    return train, test


def artifact_sha256(manifest: dict[str, Any]) -> str:
    """sha256 of ``model.safetensors`` as recorded (``load_model`` checks the file against it)."""
    return str(manifest["sha256"])


__all__ = ["MANIFEST", "artifact_sha256", "base_spec", "data_spec", "load_model", "read_manifest", "training_data",
           "verified_base"]
