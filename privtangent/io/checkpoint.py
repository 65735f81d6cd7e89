"""Checkpoints: tensors in safetensors plus a JSON manifest, written atomically, verified on load.

A checkpoint directory holds ``<name>.json`` (the manifest) and the tensor file it names,
``<name>-<sha12>.safetensors``. The tensor file is written first under its content hash,
then the manifest is replaced atomically; only then is the previous tensor file removed.
A crash at any point leaves a manifest that names a complete file with a matching sha256,
so a reader sees the old checkpoint or the new one, never a mix.

A released model (``fixed_name=True``) uses the fixed name ``<name>.safetensors`` that users and
other tools expect. The tensor file is still written atomically before the manifest; a crash
between the two leaves a manifest whose sha256 does not match the file, which every reader
refuses (never a silent mix).
"""

from __future__ import annotations

import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy
import safetensors
import timm
import torch
from safetensors.torch import load_file, save

from privtangent.errors import CheckpointError
from privtangent.io.atomic import atomic_write_bytes, atomic_write_json
from privtangent.io.hashing import sha256_bytes, sha256_file

FORMAT = "privtangent-checkpoint/1"


def library_versions() -> dict[str, str]:
    return {"python": platform.python_version(), "torch": torch.__version__, "timm": timm.__version__,
            "numpy": numpy.__version__, "safetensors": safetensors.__version__}


def save_checkpoint(directory: str | Path, tensors: dict[str, torch.Tensor], manifest: dict[str, Any],
                    name: str = "model", fixed_name: bool = False) -> Path:
    """Write ``tensors`` and ``manifest`` atomically; returns the manifest's path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    blob = save({k: v.detach().contiguous().cpu() for k, v in tensors.items()})
    digest = sha256_bytes(blob)
    weights = directory / (f"{name}.safetensors" if fixed_name else f"{name}-{digest[:12]}.safetensors")
    atomic_write_bytes(weights, blob)
    manifest_path = directory / f"{name}.json"
    previous = _read_manifest(manifest_path) if manifest_path.exists() else None
    full = {**manifest, "format": FORMAT, "weights": weights.name, "sha256": digest,
            "saved_at": datetime.now(timezone.utc).isoformat(), "versions": library_versions()}
    atomic_write_json(manifest_path, full)
    if previous and previous.get("weights") not in (None, weights.name):
        stale = directory / previous["weights"]
        if stale.exists():
            stale.unlink()
    return manifest_path


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: unreadable manifest ({err})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a privtangent checkpoint manifest")
    return manifest


def load_checkpoint(directory: str | Path, name: str = "model") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint, refusing it unless the tensor file's sha256 matches the manifest."""
    directory = Path(directory)
    manifest_path = directory / f"{name}.json"
    if not manifest_path.exists():
        raise CheckpointError(f"no checkpoint in {directory} (missing {manifest_path.name})")
    manifest = _read_manifest(manifest_path)
    weights = directory / os.path.basename(str(manifest.get("weights", "")))
    if not weights.is_file():
        raise CheckpointError(f"{directory}: the manifest names {weights.name}, which is missing")
    actual = sha256_file(weights)
    if actual != manifest.get("sha256"):
        raise CheckpointError(
            f"{weights} is corrupt or was modified: sha256 {actual[:12]}… does not match the manifest's "
            f"{str(manifest.get('sha256'))[:12]}…; refusing to load it"
        )
    return load_file(str(weights)), manifest
