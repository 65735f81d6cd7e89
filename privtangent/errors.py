"""What can go wrong, and the exit status each outcome gives every ``privtangent`` command.

- ``PrivtangentError`` (and subclasses): the user gave bad input; the message names the
  input (file, field or flag) and, where possible, the fix. Exit status 2, nothing written.
- A check of an audit failed: exit status 1. Only a failed check ever exits 1.
- Anything else (a bug, a crash in a library): an internal error, exit status 3.
"""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    """The exit statuses of every ``privtangent`` command."""

    OK = 0  # all checks passed (or the command succeeded)
    CHECK_FAILED = 1  # an audit check failed: the release gate closes
    BAD_INPUT = 2  # the user's input is invalid; nothing was written
    INTERNAL_ERROR = 3  # a crash; never reported as a failed check
    INTERRUPTED = 130  # Ctrl-C


class PrivtangentError(Exception):
    """A user-facing error: its message names the bad input and, where possible, the fix."""


class ConfigError(PrivtangentError, ValueError):
    """A configuration field is missing, of the wrong type, or out of range."""


class CheckpointError(PrivtangentError, ValueError):
    """A checkpoint is missing, corrupt, tampered with, or does not fit the model."""


class DataError(PrivtangentError, ValueError):
    """A data set is missing or malformed."""
