"""Where privtangent keeps what it caches between runs (``$PRIVTANGENT_CACHE``).

- ``base/``: the embedded default base models (rebuilt deterministically when missing);
- ``features/``: the per-sample cache of frozen-prefix outputs (``privtangent.features``).
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "PRIVTANGENT_CACHE"


def cache_dir() -> Path:
    """``$PRIVTANGENT_CACHE``, default ``~/.cache/privtangent``."""
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "privtangent"))


def base_model_dir() -> Path:
    return cache_dir() / "base"


def feature_cache_dir() -> Path:
    return cache_dir() / "features"


__all__ = ["CACHE_ENV", "base_model_dir", "cache_dir", "feature_cache_dir"]
