"""Which device privtangent computes on: ``--device`` (default: CUDA when available, else CPU).

The command line resolves the flag once and runs the command inside ``on_device(device)``; the
code that creates models and moves batches (training, DP training, evaluation, the prefix
feature cache, the audits' replicas) asks ``current_device()``. Features and checkpoints stay on
the CPU (and on disk); each batch is moved to the device when it is used. The DP mechanism's
generator lives on the device too, so the noise is drawn where it is added.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from privtangent.errors import ConfigError

_DEVICE: contextvars.ContextVar[torch.device] = contextvars.ContextVar("privtangent_device",
                                                                      default=torch.device("cpu"))


def resolve_device(name: str | None) -> torch.device:
    """``auto`` / None → ``cuda`` when available, else ``cpu``; an unavailable device is refused."""
    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device: {name!r} is not a device (cpu, cuda, cuda:1, ...)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    return device


def current_device() -> torch.device:
    return _DEVICE.get()


@contextmanager
def on_device(device: torch.device | str | None) -> Iterator[torch.device]:
    """Run the enclosed code on ``device`` (resolved as ``resolve_device`` does)."""
    resolved = device if isinstance(device, torch.device) else resolve_device(device)
    token = _DEVICE.set(resolved)
    try:
        yield resolved
    finally:
        _DEVICE.reset(token)


__all__ = ["current_device", "on_device", "resolve_device"]
