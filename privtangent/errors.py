"""Errors that mean "the user gave bad input". The CLI maps them to exit status 2."""


class PrivtangentError(Exception):
    """A user-facing error: its message names the bad input and, where possible, the fix."""


class ConfigError(PrivtangentError, ValueError):
    """A configuration field is missing, of the wrong type, or out of range."""


class CheckpointError(PrivtangentError, ValueError):
    """A checkpoint is missing, corrupt, tampered with, or does not fit the model."""


class DataError(PrivtangentError, ValueError):
    """A data set is missing or malformed."""
