"""The names and defaults the audits' command line offers, importable without torch (so that
every ``--help`` is fast); the modules that implement them import them from here."""

from __future__ import annotations

ATTACKS = ("lira-online", "lira-offline", "loss", "rmia")  # membership-inference attacks (black-box audit)
BLACKBOX_BUGS = ("noise-off", "clip-off")  # injected DP bugs the black-box audit must detect
WHITEBOX_BUGS = ("noise-half", "clip-off", "wrong-steps", "wrong-sample-rate")  # ... and the white-box audit
WHITEBOX_CANARIES = 20_000  # Dirac gradient canaries: cheap; more of them → tighter
WHITEBOX_DATA_LIMIT = 256  # records in a canary run (its scores do not depend on them)
