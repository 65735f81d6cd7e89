"""Purging what was derived from forgotten samples, everywhere a sharded model put it.

Dropping a shard's weights is not enough: the frozen prefix's output of every training sample
is cached per sample (``privtangent.features``), and other per-sample files (cached signals,
predictions) may sit in the model's directory. A forget request therefore also purges, for the
forgotten IDs:

- every feature-cache folder the model ever trained from (recorded in ``feature_dirs.json`` when
  its shards are trained) and the shared cache ``$PRIVTANGENT_CACHE/features``: each file holding
  a forgotten row is rewritten without it, or deleted when nothing else is left;
- inside the model directory, any other safetensors file with an ``ids`` tensor holding a
  forgotten ID (a cache: it is deleted, and recomputed by whoever needs it) and any CSV with an
  ``id`` column (its forgotten rows are removed).

``purge_derived`` returns what it changed (the ledger's commit records it); ``derived_holding``
finds what still holds a forgotten ID (``verify`` reports it).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
from safetensors import safe_open

from privtangent.features import FeatureCache
from privtangent.io.atomic import atomic_write_json, atomic_write_text
from privtangent.paths import feature_cache_dir

FEATURE_DIRS = "feature_dirs.json"


def recorded_feature_dirs(model_dir: Path) -> list[Path]:
    """The feature-cache folders a model's shards were trained from, and the shared cache."""
    path = model_dir / FEATURE_DIRS
    recorded = json.loads(path.read_text()) if path.exists() else []
    folders = [Path(p) for p in recorded] + [feature_cache_dir()]
    return list(dict.fromkeys(f.resolve() for f in folders))


def record_feature_dir(model_dir: Path, folder: str | Path) -> None:
    """Remember that ``folder`` holds features of this model's training samples."""
    path = model_dir / FEATURE_DIRS
    recorded = json.loads(path.read_text()) if path.exists() else []
    folder = str(Path(folder).resolve())
    if folder not in recorded:
        atomic_write_json(path, recorded + [folder])


def _ids_in_safetensors(path: Path) -> torch.Tensor | None:
    try:
        with safe_open(str(path), framework="pt") as handle:
            return handle.get_tensor("ids") if "ids" in handle.keys() else None
    except Exception:  # noqa: BLE001 - not a safetensors file we can read: not a per-sample cache
        return None


def _csv_rows_without(path: Path, forgotten: set[int]) -> tuple[str, int] | None:
    """The CSV without the rows of forgotten IDs (None: no ``id`` column), and how many went."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        return None
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows or "id" not in rows[0]:
        return None
    kept = [r for r in rows if not (r["id"].strip().lstrip("-").isdigit() and int(r["id"]) in forgotten)]
    if len(kept) == len(rows):
        return text, 0
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(kept)
    return out.getvalue(), len(rows) - len(kept)


def _model_dir_files(model_dir: Path, feature_dirs: list[Path]) -> Iterable[Path]:
    for path in sorted(model_dir.rglob("*")):
        if path.is_file() and not any(path.resolve().is_relative_to(d) for d in feature_dirs):
            yield path


def _model_dir_holding(model_dir: Path, feature_dirs: list[Path], forgotten: set[int],
                       wanted: torch.Tensor) -> Iterator[tuple[Path, tuple[str, int] | None]]:
    """Files of the model directory holding a forgotten ID (``wanted``: the same IDs as a tensor):
    (path, None) for a per-sample safetensors cache, (path, (CSV text without those rows, rows
    removed)) for a table."""
    for path in _model_dir_files(model_dir, feature_dirs):
        if path.suffix == ".safetensors":
            ids_held = _ids_in_safetensors(path)
            if ids_held is not None and torch.isin(ids_held, wanted).any():
                yield path, None
        elif path.suffix == ".csv":
            result = _csv_rows_without(path, forgotten)
            if result is not None and result[1]:
                yield path, result


def purge_derived(model_dir: Path, ids: Iterable[int]) -> list[dict[str, object]]:
    """Remove every derived per-sample artifact of ``ids``; one record per file changed."""
    forgotten = {int(i) for i in ids}
    if not forgotten:
        return []
    wanted = torch.tensor(sorted(forgotten), dtype=torch.int64)
    feature_dirs = recorded_feature_dirs(model_dir)
    changed: list[dict[str, object]] = []
    for folder in feature_dirs:
        if folder.is_dir():
            changed += [{"path": str(p), "what": "feature cache", "action": "purged rows"}
                        for p in FeatureCache(folder).purge_ids(wanted)]
    for path, table in list(_model_dir_holding(model_dir, feature_dirs, forgotten, wanted)):
        if table is None:  # a cache: deleted, recomputed by whoever needs it
            path.unlink()
            changed.append({"path": str(path), "what": "per-sample cache", "action": "deleted"})
        else:
            atomic_write_text(path, table[0])
            changed.append({"path": str(path), "what": "per-sample table", "action": f"removed {table[1]} rows"})
    return changed


def derived_holding(model_dir: Path, ids: Iterable[int]) -> list[str]:
    """Files that still hold something derived from ``ids`` (empty after a correct purge)."""
    forgotten = {int(i) for i in ids}
    if not forgotten:
        return []
    wanted = torch.tensor(sorted(forgotten), dtype=torch.int64)
    feature_dirs = recorded_feature_dirs(model_dir)
    found = [str(p) for d in feature_dirs if d.is_dir() for p in FeatureCache(d).files_holding(wanted)]
    return found + [str(p) for p, _ in _model_dir_holding(model_dir, feature_dirs, forgotten, wanted)]


__all__ = ["FEATURE_DIRS", "derived_holding", "purge_derived", "record_feature_dir", "recorded_feature_dirs"]
