"""Finished runs on disk, so that an interrupted comparison continues where it stopped.

A run is identified by its *spec*: every input that determines its result (base model
weights, data content, the full ``DPConfig``, the noise seed). The spec's sha256 names a JSON
file ``<key>.json`` holding the spec and the run's result, written atomically when the run
finishes. A rerun looks the spec up first and skips the run if its file is there; a changed
input changes the key, so a stale result is never reused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from privtangent.io.atomic import atomic_write_json
from privtangent.io.hashing import sha256_bytes


def spec_key(spec: dict[str, Any]) -> str:
    """sha256 (first 24 hex digits) of the spec's canonical JSON."""
    return sha256_bytes(json.dumps(spec, sort_keys=True, default=str).encode())[:24]


class RunStore:
    """Results of finished runs keyed by their spec; ``directory=None`` keeps nothing;
    ``reuse=False`` writes results but never reads them (run everything again)."""

    def __init__(self, directory: str | Path | None, reuse: bool = True) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.reuse = reuse
        self.hits = 0

    def get(self, spec: dict[str, Any]) -> dict[str, Any] | None:
        """The stored result of ``spec``, or None when it has not finished (or cannot be read)."""
        if self.directory is None or not self.reuse:
            return None
        path = self.directory / f"{spec_key(spec)}.json"
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if record.get("spec") != json.loads(json.dumps(spec, sort_keys=True, default=str)):
            return None  # a hash collision or a hand-edited file: run again
        self.hits += 1
        return record["result"]

    def put(self, spec: dict[str, Any], result: dict[str, Any]) -> None:
        if self.directory is not None:
            atomic_write_json(self.directory / f"{spec_key(spec)}.json", {"spec": spec, "result": result})


__all__ = ["RunStore", "spec_key"]
