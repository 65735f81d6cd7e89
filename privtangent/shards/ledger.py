"""The unlearning ledger: an append-only, hash-chained log of JSON lines.

Every line is one record, written with a single ``write`` on a file opened ``O_APPEND`` and
``fsync``'d before the call returns. A record is the canonical JSON (sorted keys, no
spaces, ASCII) of::

    {"seq": 3,                      # line number, from 0
     "prev": "<sha256 of line 2>",  # the previous line's exact bytes (no newline); 64 zeros for line 0
     "time": "2025-01-01T12:00:00.000000+00:00",   # UTC, when the line was written
     "type": "create" | "begin" | "commit" | "abort",
     ... the record's fields ...,
     "hash": "<sha256 of this record's canonical JSON without 'hash'>"}

Editing, inserting, deleting or reordering any line breaks either its own ``hash`` or the
next line's ``prev``; ``verify`` names the first bad line. A chain cannot, by itself, show
that lines were cut off its *end* or that the whole file was rewritten consistently: for
that, publish the head (the sha256 of the last line, printed after every request) somewhere
outside the model directory and check it later with ``verify(head=...)``. The sharded model
also cross-checks the ledger against its served model (``privtangent.shards.unlearn``).

A line without its final newline can only be a write that a crash interrupted; ``verify``
reports it and ``repair_torn_tail`` (run by recovery) cuts it off: such a record was never
acknowledged to anyone.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from privtangent.errors import PrivtangentError
from privtangent.io.atomic import fsync_dir
from privtangent.io.hashing import sha256_bytes

GENESIS = "0" * 64
RECORD_TYPES = ("create", "begin", "commit", "abort")


class LedgerError(PrivtangentError):
    """The ledger is broken (tampered with, or not a ledger) and cannot be appended to."""


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def record_hash(record: dict[str, Any]) -> str:
    return sha256_bytes(canonical({k: v for k, v in record.items() if k != "hash"}).encode())


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


@dataclass
class LedgerCheck:
    """What ``Ledger.verify`` found: ``ok`` is True when ``problems`` is empty."""

    records: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    head: str = GENESIS  # sha256 of the last complete line (GENESIS when empty)
    torn_tail: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems


class Ledger:
    """An append-only hash-chained JSON-lines file at ``path``."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def exists(self) -> bool:
        return self.path.exists()

    def _read(self) -> tuple[list[bytes], bytes]:
        """Complete lines (without newline) and the incomplete tail (b"" if none)."""
        if not self.path.exists():
            return [], b""
        data = self.path.read_bytes()
        parts = data.split(b"\n")
        return parts[:-1], parts[-1]

    def verify(self, head: str | None = None) -> LedgerCheck:
        """Check every line: JSON, ``seq``, ``prev`` chain, own ``hash``, known ``type``.

        ``head``: a line hash published earlier; it must still be in the chain.
        """
        lines, tail = self._read()
        check = LedgerCheck()
        prev = GENESIS
        for i, line in enumerate(lines):
            where = f"{self.path.name} line {i + 1}"
            try:
                record = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                check.problems.append(f"{where}: not valid JSON ({err}); the ledger was edited or corrupted")
                prev = sha256_bytes(line)
                continue
            if not isinstance(record, dict):
                check.problems.append(f"{where}: not a JSON object")
                prev = sha256_bytes(line)
                continue
            if record.get("seq") != i:
                check.problems.append(f"{where}: seq is {record.get('seq')!r}, expected {i} (a line was removed, inserted or moved)")
            if record.get("prev") != prev:
                check.problems.append(
                    f"{where}: prev does not match the sha256 of line {i} "
                    f"({str(record.get('prev'))[:12]}… vs {prev[:12]}…): line {i} was altered, or lines were removed or reordered"
                    if i else f"{where}: the first line must have prev = 64 zeros"
                )
            if record.get("hash") != record_hash(record):
                check.problems.append(f"{where}: its content does not match its hash (the line was edited)")
            if line != canonical(record).encode():
                check.problems.append(f"{where}: not in canonical form (the line was re-serialized or edited)")
            if record.get("type") not in RECORD_TYPES:
                check.problems.append(f"{where}: unknown record type {record.get('type')!r}")
            check.records.append(record)
            prev = sha256_bytes(line)
        check.head = prev
        if tail:
            check.torn_tail = True
            check.problems.append(
                f"{self.path.name} line {len(lines) + 1}: incomplete (no final newline): a write was interrupted; "
                "`privtangent shards recover` removes it"
            )
        if head is not None and head not in {sha256_bytes(line) for line in lines}:
            check.problems.append(
                f"the published head {head[:12]}… is not in the ledger: lines were removed from its end or it was rewritten"
            )
        return check

    def records(self) -> list[dict[str, Any]]:
        """All records, after checking the chain (raises ``LedgerError`` when broken)."""
        check = self.verify()
        if not check.ok:
            raise LedgerError(f"the ledger {self.path} fails verification: {check.problems[0]}")
        return check.records

    def head(self) -> str:
        lines, _ = self._read()
        return sha256_bytes(lines[-1]) if lines else GENESIS

    def append(self, type: str, **fields: Any) -> dict[str, Any]:
        """Append one record (after verifying the chain) and fsync it; returns the record.

        Callers serialize appends (the sharded model holds a lock while it writes).
        """
        if type not in RECORD_TYPES:
            raise ValueError(f"unknown ledger record type {type!r}")
        check = self.verify()
        if not check.ok:
            raise LedgerError(f"refusing to append to {self.path}: {check.problems[0]}")
        reserved = {"seq", "prev", "time", "type", "hash"} & set(fields)
        if reserved:
            raise ValueError(f"ledger fields {sorted(reserved)} are set by the ledger itself")
        record = {"seq": len(check.records), "prev": check.head, "time": now(), "type": type, **fields}
        record["hash"] = record_hash(record)
        data = canonical(record).encode() + b"\n"
        created = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            fsync_dir(self.path.parent)
        return record

    def repair_torn_tail(self) -> bool:
        """Cut off an incomplete last line (an interrupted write); True if one was cut."""
        lines, tail = self._read()
        if not tail:
            return False
        size = sum(len(line) + 1 for line in lines)
        with open(self.path, "r+b") as handle:
            handle.truncate(size)
            handle.flush()
            os.fsync(handle.fileno())
        return True

