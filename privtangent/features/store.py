"""Prefix features on disk: one safetensors file per data set, written chunk by chunk, read by rows.

A feature file is a standard safetensors file (``safetensors.safe_open`` / ``load_file`` read it):

- ``ids``: int64 (N,), the sample ID of every row (so a forget request can find and purge rows);
- ``features``: float32 or float16 (N, tokens, D), the prefix output of every row;
- metadata (strings): ``format``, ``key``, ``start``, ``data``, ``content_sha256``, ``purged_rows``.

The layout follows the safetensors specification: an 8-byte little-endian header length, the
JSON header, then the tensors' bytes in offset order (``ids`` first, then ``features``).
``FeatureFileWriter`` writes the header once the first chunk gives the row shape, then each
chunk as it is computed, under a temporary name; ``commit()`` fsyncs and renames it into place,
so a crash leaves only a temporary file, which readers never open.

``DiskFeatures`` reads rows with ``os.preadv`` into a fresh tensor (consecutive rows in one
call): a batch costs its own bytes of memory, and the file's pages stay in the OS page cache
instead of the process's resident memory (a memory map would count every page touched in an
epoch towards the process's RSS).
"""

from __future__ import annotations

import json
import os
import struct
import uuid
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

FORMAT = "privtangent-prefix-features/1"
SUFFIX = ".safetensors"
DTYPES = {torch.float32: "F32", torch.float16: "F16"}
TORCH_DTYPES = {code: dtype for dtype, code in DTYPES.items()}
NUMPY_DTYPES = {torch.float32: np.float32, torch.float16: np.float16}
_HEADER_LIMIT = 100_000_000  # safetensors' own bound on the JSON header


class FeatureFileError(OSError):
    """A feature file is truncated, malformed or not a privtangent feature file (a cache miss, not a user error)."""


@dataclass(frozen=True)
class FeatureFileHeader:
    """Where a feature file keeps its rows."""

    path: Path
    rows: int
    row_shape: tuple[int, ...]  # (tokens, D)
    dtype: torch.dtype  # stored dtype
    ids_offset: int  # absolute byte offset of the ids
    features_offset: int  # absolute byte offset of row 0
    metadata: dict[str, str]

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.row_shape)) * torch.empty(0, dtype=self.dtype).element_size()


def _header_bytes(rows: int, row_shape: tuple[int, ...], dtype: torch.dtype, metadata: dict[str, str]) -> bytes:
    ids_bytes = 8 * rows
    feature_bytes = rows * int(np.prod(row_shape)) * torch.empty(0, dtype=dtype).element_size()
    header = {"__metadata__": {"format": FORMAT, **metadata},
              "ids": {"dtype": "I64", "shape": [rows], "data_offsets": [0, ids_bytes]},
              "features": {"dtype": DTYPES[dtype], "shape": [rows, *row_shape],
                           "data_offsets": [ids_bytes, ids_bytes + feature_bytes]}}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # tensors start 8-byte aligned, as safetensors writes them
    return struct.pack("<Q", len(text)) + text


def read_header(path: str | Path) -> FeatureFileHeader:
    """Parse and check a feature file's header; ``FeatureFileError`` if it is not a complete feature file."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            (length,) = struct.unpack("<Q", handle.read(8))
            if not 0 < length <= min(_HEADER_LIMIT, size - 8):
                raise FeatureFileError(f"{path}: bad safetensors header length")
            header = json.loads(handle.read(length))
    except (OSError, struct.error, ValueError) as exc:
        raise FeatureFileError(f"{path}: unreadable feature file ({exc})") from None
    try:
        metadata = dict(header["__metadata__"])
        ids, feats = header["ids"], header["features"]
        rows = int(ids["shape"][0])
        dtype = TORCH_DTYPES[feats["dtype"]]
        shape = tuple(int(s) for s in feats["shape"])
        ok = (metadata.get("format") == FORMAT and ids["dtype"] == "I64" and shape[0] == rows
              and ids["data_offsets"] == [0, 8 * rows] and feats["data_offsets"][0] == 8 * rows)
    except (KeyError, TypeError, IndexError, ValueError) as exc:
        raise FeatureFileError(f"{path}: not a privtangent feature file ({exc})") from None
    if not ok:
        raise FeatureFileError(f"{path}: not a privtangent feature file ({FORMAT})")
    found = FeatureFileHeader(path, rows, shape[1:], dtype, 8 + length, 8 + length + 8 * rows, metadata)
    if feats["data_offsets"][1] != 8 * rows + rows * found.row_bytes or size != found.features_offset + rows * found.row_bytes:
        raise FeatureFileError(f"{path}: truncated feature file ({size} bytes)")
    return found


def _pread_into(fd: int, buffer: memoryview, offset: int) -> None:
    done = 0
    while done < len(buffer):
        got = os.preadv(fd, [buffer[done:]], offset + done)
        if got == 0:
            raise FeatureFileError(f"feature file shorter than its header says (offset {offset + done})")
        done += got


def read_ids(header: FeatureFileHeader) -> Tensor:
    """The sample IDs of a feature file's rows (int64)."""
    ids = np.empty(header.rows, dtype="<i8")
    fd = os.open(header.path, os.O_RDONLY)
    try:
        _pread_into(fd, ids.data.cast("B"), header.ids_offset)
    finally:
        os.close(fd)
    return torch.from_numpy(ids.astype(np.int64, copy=False))


class FeatureFileWriter:
    """Writes one feature file row chunk by row chunk; only ``commit()`` makes it visible.

    Use as a context manager: leaving the block without ``commit()`` (an exception, a crash)
    removes the temporary file, and a reader never trusts one that is left behind.
    """

    def __init__(self, path: str | Path, ids: Tensor, dtype: torch.dtype, metadata: dict[str, Any]) -> None:
        if dtype not in DTYPES:
            raise ValueError(f"feature files store float32 or float16, not {dtype}")
        self.path, self.dtype = Path(path), dtype
        self.ids = ids.to(torch.int64).contiguous()
        self.metadata = {k: str(v) for k, v in metadata.items()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        self._handle = open(self.tmp, "wb")
        self.rows_written = 0
        self.row_shape: tuple[int, ...] | None = None

    def __enter__(self) -> FeatureFileWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.abort()

    def append(self, rows: Tensor) -> None:
        """Append the next rows (B, tokens, D), converted to the file's dtype."""
        if self.row_shape is None:
            self.row_shape = tuple(rows.shape[1:])
            self._handle.write(_header_bytes(len(self.ids), self.row_shape, self.dtype, self.metadata))
            self._handle.write(self.ids.numpy().astype("<i8", copy=False).tobytes())
        if tuple(rows.shape[1:]) != self.row_shape:
            raise ValueError(f"rows of shape {tuple(rows.shape[1:])} appended to a file of rows {self.row_shape}")
        if self.rows_written + len(rows) > len(self.ids):
            raise ValueError(f"{self.path}: more rows than the {len(self.ids)} announced")
        self._handle.write(rows.detach().to("cpu", self.dtype).contiguous().numpy().data)
        self.rows_written += len(rows)

    def commit(self) -> Path:
        """fsync, rename into place, fsync the folder: the file is now complete and visible."""
        if self.row_shape is None or self.rows_written != len(self.ids):
            raise ValueError(f"{self.path}: {self.rows_written} rows written of {len(self.ids)}")
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        os.replace(self.tmp, self.path)
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return self.path

    def abort(self) -> None:
        if not self._handle.closed:
            self._handle.close()
        if self.tmp.exists():
            self.tmp.unlink()


def _positions(index: Any, length: int) -> np.ndarray:
    """Row positions (int64) from an int, a slice, a list, a NumPy array or a tensor (integer or boolean)."""
    if isinstance(index, slice):
        return np.arange(length, dtype=np.int64)[index]
    if isinstance(index, Tensor):
        index = index.detach().cpu().numpy()
    positions = np.asarray(index)
    if positions.dtype == np.bool_:
        if positions.shape != (length,):
            raise IndexError(f"boolean index of shape {positions.shape} for {length} rows")
        return np.flatnonzero(positions)
    positions = positions.astype(np.int64, copy=False).reshape(-1)
    if positions.size and (positions.min() < -length or positions.max() >= length):
        raise IndexError(f"row index out of range for {length} rows")
    return np.where(positions < 0, positions + length, positions)


class DiskFeatures:
    """The prefix features of one data set (or of a row view of it), read from disk by rows.

    Supports what training reads: ``len()``, ``.shape``, and ``features[index]`` for an index
    tensor, a boolean mask, a slice or an int, which reads only those rows and returns float32
    (float16 files are widened). ``.ids`` are the sample IDs of its rows.
    """

    def __init__(self, path: str | Path, rows: np.ndarray | None = None,
                 header: FeatureFileHeader | None = None) -> None:
        self.header = header or read_header(path)
        self.path = self.header.path
        self._rows = rows  # file row of each of this view's rows (None: all, in order)
        self._fd = os.open(self.path, os.O_RDONLY)
        self._closer = weakref.finalize(self, os.close, self._fd)
        self._ids: Tensor | None = None

    def __getstate__(self) -> dict[str, Any]:
        """Pickled as (file, rows): another process on the same machine reopens the file."""
        return {"path": self.path, "rows": self._rows}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], state["rows"])  # type: ignore[misc]

    def __len__(self) -> int:
        return self.header.rows if self._rows is None else len(self._rows)

    def __repr__(self) -> str:
        return f"DiskFeatures({self.path.name}, shape={tuple(self.shape)}, stored {self.header.dtype})"

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self), *self.header.row_shape))

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    @property
    def nbytes(self) -> int:
        """Bytes of all rows as float32 (what ``to_tensor()`` would hold)."""
        return len(self) * int(np.prod(self.header.row_shape)) * 4

    @property
    def ids(self) -> Tensor:
        if self._ids is None:
            all_ids = read_ids(self.header)
            self._ids = all_ids if self._rows is None else all_ids[torch.from_numpy(self._rows)]
        return self._ids

    def take(self, positions: np.ndarray) -> DiskFeatures:
        """A view of some of these rows (nothing is read)."""
        file_rows = positions if self._rows is None else self._rows[positions]
        return DiskFeatures(self.path, np.asarray(file_rows, dtype=np.int64), self.header)

    def __getitem__(self, index: Any) -> Tensor:
        if isinstance(index, (int, np.integer)):
            return self[[int(index)]][0]
        positions = _positions(index, len(self))
        return self.read_rows(positions if self._rows is None else self._rows[positions])

    def read_rows(self, file_rows: np.ndarray) -> Tensor:
        """Rows ``file_rows`` of the file in that order (B, tokens, D), float32."""
        header = self.header
        order = np.argsort(file_rows, kind="stable")
        ordered = file_rows[order]
        out = torch.empty((len(ordered), *header.row_shape), dtype=header.dtype)
        if len(ordered):
            raw = out.numpy().reshape(len(ordered), -1).view(np.uint8)
            run_starts = np.flatnonzero(np.diff(ordered, prepend=ordered[0] - 2) != 1)
            run_ends = np.append(run_starts[1:], len(ordered))
            for first, stop in zip(run_starts.tolist(), run_ends.tolist()):
                offset = header.features_offset + int(ordered[first]) * header.row_bytes
                _pread_into(self._fd, raw[first:stop].data.cast("B"), offset)
        if not np.array_equal(order, np.arange(len(order))):
            out = out[torch.from_numpy(np.argsort(order, kind="stable"))]
        return out.float() if header.dtype != torch.float32 else out

    def to_tensor(self, chunk_rows: int = 4096) -> Tensor:
        """Every row in memory (float32), read chunk by chunk into one preallocated tensor."""
        out = torch.empty(tuple(self.shape), dtype=torch.float32)
        for start in range(0, len(self), chunk_rows):
            out[start : start + chunk_rows] = self[slice(start, start + chunk_rows)]
        return out

    def close(self) -> None:
        self._closer()
