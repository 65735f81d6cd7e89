"""Where a command may write: an output directory checked before anything is computed or written.

A bad ``--out`` (an existing file, a directory that already holds a run, a place the user cannot
write to) is bad input: the command exits 2 naming it, before any training, and leaves nothing
behind.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from privtangent.errors import ConfigError


def writable_ancestor(path: Path) -> Path | None:
    """The nearest existing ancestor of ``path`` (or ``path`` itself) if we can create entries in it."""
    for candidate in [path, *path.parents]:
        if candidate.exists():
            return candidate if candidate.is_dir() and os.access(candidate, os.W_OK | os.X_OK) else None
    return None


def check_output_dir(path: str | Path, flag: str = "--out", *, refuse_if_holds: Iterable[str] = ()) -> Path:
    """``path`` as a ``Path`` if a command can create and fill it; ConfigError naming ``flag`` otherwise.

    ``refuse_if_holds``: entries whose presence means the directory already holds an earlier run.
    """
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{flag} {out}: exists and is not a directory")
    held = [name for name in refuse_if_holds if (out / name).exists()]
    if held:
        raise ConfigError(f"{flag} {out}: already holds an earlier run ({', '.join(held)}); choose a new directory "
                          "(or delete this one)")
    if writable_ancestor(out) is None:
        raise ConfigError(f"{flag} {out}: cannot be written (no permission to create or write it)")
    return out


__all__ = ["check_output_dir", "writable_ancestor"]
