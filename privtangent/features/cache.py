"""Per-sample cache of the frozen prefix's output, bounded in memory, backed by disk.

The frozen prefix of a tangent model (and of non-linear fine-tuning of the same last
blocks) is a fixed function, so its output is computed once per data set and reused by
every epoch, every shard, every shadow model. The key is the prefix's weights, the start
block and the data's content hash (plus the stored dtype when it is not float32).

Where the features live:

- a data set whose features fit the memory budget (``memory_bytes``, counted as float32) is
  returned as one tensor and kept in an in-memory LRU of whole feature sets;
- a larger one is returned as ``DiskFeatures``: ``features[index]`` reads those rows from its
  file, so a Poisson batch or an epoch never loads the whole set;
- with a ``directory``, every feature set is also written there (one safetensors file per set,
  chunk by chunk while the prefix runs, renamed into place only when complete) and survives
  across processes; without one, sets over the budget go to a private temporary folder that is
  deleted with the cache.

Each file stores the sample IDs of its rows: ``stored_sets()`` lists which file holds which IDs,
and ``purge_ids(ids)`` deletes every cached row of those samples (for forget requests).
A row view of a data set (``subset`` / ``select_ids`` / ``limit``) is served from the larger
set's features when they are cached, also after a purge removed other rows from them.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from privtangent.data.dataset import ImageData
from privtangent.features.prefix import prefix_state, run_prefix
from privtangent.features.store import (
    DTYPES,
    SUFFIX,
    DiskFeatures,
    FeatureFileError,
    FeatureFileHeader,
    FeatureFileWriter,
    read_header,
    read_ids,
)
from privtangent.io.hashing import sha256_bytes, tensor_hash
from privtangent.progress import Progress

DEFAULT_MEMORY_BYTES = 2 << 30  # 2 GiB of float32 features held in memory at most
COPY_CHUNK_BYTES = 64 << 20  # rows copied per read when a purge rewrites a file
_CACHE_FILE = re.compile(r"^[0-9a-f]{32}\.safetensors$")
_TEMP_FILE = re.compile(r"^\.[0-9a-f]{32}\.safetensors\.(\d+)\.[0-9a-f]+\.tmp$")

Features = Tensor | DiskFeatures


@dataclass(frozen=True)
class StoredFeatureSet:
    """One feature file of a cache: which data it was computed for and which sample IDs it holds."""

    path: Path
    key: str
    data: str  # the data set's name when it was cached
    content_sha256: str
    start: int
    dtype: torch.dtype
    ids: Tensor
    purged_rows: int  # rows removed by purge_ids since it was written


@dataclass
class _Resident:
    features: Tensor  # float32 (N, tokens, D)
    ids: Tensor

    @property
    def nbytes(self) -> int:
        return self.features.numel() * self.features.element_size()


def positions_of(all_ids: Tensor, wanted: Tensor) -> np.ndarray | None:
    """Row of each ``wanted`` ID in ``all_ids`` (IDs unique), or None if one is missing."""
    if len(all_ids) == 0:
        return None if len(wanted) else np.empty(0, dtype=np.int64)
    order = torch.argsort(all_ids)
    where = torch.searchsorted(all_ids[order], wanted).clamp_max(len(all_ids) - 1)
    rows = order[where]
    if not torch.equal(all_ids[rows], wanted):
        return None
    return rows.numpy().astype(np.int64, copy=False)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_dead_temporaries(folder: Path, key: str | None = None) -> list[Path]:
    """Delete temporary feature files (of ``key``, or of any key) whose writing process has died."""
    removed = []
    for path in sorted(folder.glob(f".{key or '*'}{SUFFIX}.*.tmp")):
        temp = _TEMP_FILE.match(path.name)
        if temp is not None and not _pid_alive(int(temp.group(1))):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


class FeatureCache:
    """Cache of prefix features keyed by (prefix weights, start block, data content).

    Args:
        directory: where feature files persist across processes (None: memory, plus a temporary
            folder for sets over the memory budget).
        batch_size: images per prefix forward pass.
        memory_bytes: budget of the in-memory LRU of whole feature sets (float32 bytes).
        dtype: stored dtype, ``torch.float32`` (exact) or ``torch.float16`` (half the disk and I/O;
            reads are widened back to float32).
        num_workers: decoding worker processes for data sets that stream from files.
        spill_directory: parent of the temporary folder used when ``directory`` is None.
    """

    def __init__(self, directory: str | Path | None = None, batch_size: int = 256, *,
                 memory_bytes: int = DEFAULT_MEMORY_BYTES, dtype: torch.dtype = torch.float32,
                 num_workers: int = 0, spill_directory: str | Path | None = None) -> None:
        if dtype not in DTYPES:
            raise ValueError(f"FeatureCache stores float32 or float16, not {dtype}")
        self.directory = Path(directory) if directory else None
        self.batch_size, self.memory_bytes, self.dtype = batch_size, int(memory_bytes), dtype
        self.num_workers = num_workers
        self.spill_directory = Path(spill_directory) if spill_directory else None
        self._spill: Path | None = None
        self._memory: OrderedDict[str, _Resident] = OrderedDict()
        self.hits = 0
        self.misses = 0

    # -- keys -----------------------------------------------------------------------------
    def key(self, model: nn.Module, start: int, data: ImageData) -> str:
        return self._key(tensor_hash(prefix_state(model, start)), start, data.content_hash())

    def _key(self, weights: str, start: int, content: str) -> str:
        dtype = "" if self.dtype == torch.float32 else f"|{DTYPES[self.dtype]}"
        return sha256_bytes(f"{weights}|{start}|{content}{dtype}".encode())[:32]

    # -- the one public lookup ------------------------------------------------------------
    def features(self, model: nn.Module, start: int, data: ImageData, progress: bool = False) -> Features:
        """Prefix output for every sample of ``data`` (N, tokens, D), computed at most once.

        A tensor when the set fits ``memory_bytes``, else ``DiskFeatures`` (``len``, ``.shape``,
        ``features[index]`` → float32 tensor of those rows).
        """
        weights = tensor_hash(prefix_state(model, start))
        key = self._key(weights, start, data.content_hash())
        found = self._lookup(key, data.ids)
        if found is None:
            source = data.source_hash()
            if source is not None:
                found = self._lookup_rows(self._key(weights, start, source), key, data.ids)
        if found is not None:
            self.hits += 1
            return found
        self.misses += 1
        return self._compute(model, start, data, key, progress)

    # -- memory ---------------------------------------------------------------------------
    @property
    def memory_bytes_used(self) -> int:
        return sum(entry.nbytes for entry in self._memory.values())

    def resident_keys(self) -> list[str]:
        """Keys of the feature sets held in memory, least recently used first."""
        return list(self._memory)

    def _remember(self, key: str, features: Tensor, ids: Tensor) -> None:
        entry = _Resident(features, ids)
        if entry.nbytes > self.memory_bytes:
            return
        self._memory.pop(key, None)
        while self._memory and self.memory_bytes_used + entry.nbytes > self.memory_bytes:
            self._memory.popitem(last=False)
        self._memory[key] = entry

    def _hold(self, key: str, disk: DiskFeatures) -> Features:
        """A disk feature set: loaded into memory if it fits the budget, else served from disk."""
        if disk.nbytes > self.memory_bytes:
            return disk
        features = disk.to_tensor()
        self._remember(key, features, disk.ids)
        disk.close()
        return features

    # -- lookups --------------------------------------------------------------------------
    def _folders(self) -> list[Path]:
        return [folder for folder in (self.directory, self._spill) if folder is not None and folder.is_dir()]

    def _file(self, key: str) -> tuple[FeatureFileHeader, Tensor] | None:
        """The complete, readable file for ``key`` and its IDs (None if there is none)."""
        for folder in self._folders():
            path = folder / f"{key}{SUFFIX}"
            if not path.exists():
                continue
            try:
                header = read_header(path)
                return header, read_ids(header)
            except FeatureFileError:
                continue  # half-written by an older version or damaged: recomputed and replaced
        return None

    def _lookup(self, key: str, ids: Tensor) -> Features | None:
        entry = self._memory.get(key)
        if entry is not None and torch.equal(entry.ids, ids):
            self._memory.move_to_end(key)
            return entry.features
        found = self._file(key)
        if found is None or not torch.equal(found[1], ids):
            return None  # absent, or purged of some of these rows since: recompute
        return self._hold(key, DiskFeatures(found[0].path, header=found[0]))

    def _lookup_rows(self, source_key: str, key: str, ids: Tensor) -> Features | None:
        """The rows ``ids`` of a cached larger data set (``source_key``), if it holds them all."""
        entry = self._memory.get(source_key)
        if entry is not None:
            rows = positions_of(entry.ids, ids)
            if rows is not None:
                features = entry.features[torch.from_numpy(rows)]
                self._remember(key, features, ids.clone())
                return features
        found = self._file(source_key)
        if found is None:
            return None
        rows = positions_of(found[1], ids)
        if rows is None:
            return None
        return self._hold(key, DiskFeatures(found[0].path, header=found[0]).take(rows))

    # -- computing ------------------------------------------------------------------------
    def _spill_folder(self) -> Path:
        if self._spill is None:
            if self.spill_directory is not None:
                self.spill_directory.mkdir(parents=True, exist_ok=True)
            self._spill = Path(tempfile.mkdtemp(prefix="privtangent-features-", dir=self.spill_directory))
            weakref.finalize(self, shutil.rmtree, self._spill, True)
        return self._spill

    def _compute(self, model: nn.Module, start: int, data: ImageData, key: str, progress: bool) -> Features:
        """Run the prefix batch by batch; each batch goes to memory and/or straight into the file."""
        n = len(data)
        if n == 0:
            return torch.empty(0)
        memory: Tensor | None = None
        writer: FeatureFileWriter | None = None
        was_training = model.training
        device = next(model.parameters()).device  # the prefix runs where the model is; features live on the CPU
        model.eval()
        try:
            with Progress(math.ceil(n / self.batch_size), f"caching features of {data.name}", unit="batch",
                          enabled=progress) as bar:
                for images, rows in data.iter_images(self.batch_size, self.num_workers):
                    batch = run_prefix(model, start, images.to(device)).cpu()
                    if self.dtype != torch.float32:
                        batch = batch.to(self.dtype)  # what the file holds, and so what every read returns
                    if memory is None and writer is None:  # first batch: now the row size is known
                        fits = n * batch[0].numel() * 4 <= self.memory_bytes
                        memory = torch.empty((n, *batch.shape[1:]), dtype=torch.float32) if fits else None
                        folder = self.directory or (None if fits else self._spill_folder())
                        if folder is not None:
                            remove_dead_temporaries(folder, key)
                            writer = FeatureFileWriter(folder / f"{key}{SUFFIX}", data.ids, self.dtype, {
                                "key": key, "start": start, "data": data.name,
                                "content_sha256": data.content_hash(), "purged_rows": 0})
                    if memory is not None:
                        memory[rows] = batch.float()
                    if writer is not None:
                        writer.append(batch)
                    bar.update(1)
            path = writer.commit() if writer is not None else None
        finally:
            model.train(was_training)
            if writer is not None:
                writer.abort()  # no-op after a commit
        if memory is not None:
            self._remember(key, memory, data.ids.clone())
            return memory
        assert path is not None
        return DiskFeatures(path)

    # -- which files hold which samples; forgetting them ---------------------------------
    def stored_sets(self) -> list[StoredFeatureSet]:
        """Every complete feature file of this cache, with the sample IDs of its rows."""
        found = []
        for folder in self._folders():
            for path in sorted(folder.iterdir()):
                if not _CACHE_FILE.match(path.name):
                    continue
                try:
                    header = read_header(path)
                    ids = read_ids(header)
                except FeatureFileError:
                    continue
                meta = header.metadata
                found.append(StoredFeatureSet(path, meta.get("key", path.stem), meta.get("data", ""),
                                              meta.get("content_sha256", ""), int(meta.get("start", -1)),
                                              header.dtype, ids, int(meta.get("purged_rows", 0))))
        return found

    def files_holding(self, ids: Tensor | list[int]) -> dict[Path, Tensor]:
        """For each feature file holding any of ``ids``: those IDs."""
        wanted = torch.as_tensor(ids, dtype=torch.int64)
        held = {}
        for stored in self.stored_sets():
            mask = torch.isin(stored.ids, wanted)
            if mask.any():
                held[stored.path] = stored.ids[mask]
        return held

    def purge_ids(self, ids: Tensor | list[int]) -> list[Path]:
        """Delete every cached row of the samples ``ids``; returns the files rewritten or deleted.

        Memory: feature sets holding any of them are dropped. Disk: each file holding some of
        them is rewritten without those rows (atomically; ``purged_rows`` in its metadata counts
        them), or deleted when nothing else is left. Files whose rows cannot be attributed (a
        damaged cache file, a temporary file of a crashed writer) are deleted too. A
        ``DiskFeatures`` handed out before keeps reading the old file until it is released.
        """
        wanted = torch.as_tensor(ids, dtype=torch.int64)
        for key in [k for k, entry in self._memory.items() if torch.isin(entry.ids, wanted).any()]:
            del self._memory[key]
        changed = []
        for folder in self._folders():
            changed += remove_dead_temporaries(folder)
            changed += [path for path in sorted(folder.iterdir())
                        if _CACHE_FILE.match(path.name) and self._purge_file(path, wanted)]
        return changed

    @staticmethod
    def _purge_file(path: Path, wanted: Tensor) -> bool:
        try:
            header = read_header(path)
            ids = read_ids(header)
        except FeatureFileError:
            path.unlink(missing_ok=True)
            return True
        drop = torch.isin(ids, wanted)
        if not drop.any():
            return False
        if drop.all():
            path.unlink()
            return True
        keep = np.flatnonzero((~drop).numpy())
        metadata = dict(header.metadata)
        metadata["purged_rows"] = str(int(metadata.get("purged_rows", 0)) + int(drop.sum()))
        source = DiskFeatures(path, header=header)
        chunk = max(1, COPY_CHUNK_BYTES // header.row_bytes)
        with FeatureFileWriter(path, ids[torch.from_numpy(keep)], header.dtype, metadata) as writer:
            for first in range(0, len(keep), chunk):
                writer.append(source.read_rows(keep[first : first + chunk]).to(header.dtype))
            writer.commit()
        source.close()
        return True
