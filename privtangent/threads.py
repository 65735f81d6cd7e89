"""How many torch threads privtangent uses, and running code with a given number.

The models audited on CPU here are small: on a loaded 2-core machine one intra-op thread was
measured ~10× faster than two for them (the same audit: 10 s with one thread, 306 s with two,
the threads spinning in OpenMP barriers against each other and other processes). So every
long-running command defaults to one thread; ``PRIVTANGENT_THREADS`` (or ``--threads``)
overrides it, e.g. for ViT-L/16 on a many-core machine.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from privtangent.errors import ConfigError

THREADS_ENV = "PRIVTANGENT_THREADS"


def default_threads() -> int:
    """``PRIVTANGENT_THREADS`` if set (an integer ≥ 1), else 1."""
    value = os.environ.get(THREADS_ENV, "1")
    try:
        threads = int(value)
    except ValueError:
        raise ConfigError(f"{THREADS_ENV}: must be an integer ≥ 1, got {value!r}") from None
    return check_threads(threads)


def check_threads(threads: Any) -> int:
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"threads must be an integer ≥ 1, got {threads!r}")
    return threads


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run with ``torch.set_num_threads(threads)`` (None: leave it), restoring it afterwards."""
    if threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(check_threads(threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


__all__ = ["THREADS_ENV", "check_threads", "default_threads", "torch_threads"]
