"""Progress of long work: a live bar on a terminal, one plain line per stage or epoch otherwise.

A bar (tqdm) redraws itself with carriage returns; written to a log file or a CI console that
becomes megabytes of frames. So when standard error is not a terminal, ``Progress`` prints
nothing for single steps, a line for a ``report`` (an epoch, a DP step with the ε spent so far,
a finished model) at most every ``min_interval`` seconds (and always for the first and the last
unit), and one line when it closes, with the values of the last report it held back.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

from tqdm.auto import tqdm


def is_terminal(stream: IO[str] | None = None) -> bool:
    stream = stream if stream is not None else sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


def _format(values: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items())


class Progress:
    """``with Progress(total, "DP Ours full", unit="step") as p: ... p.update(); p.report(epsilon=1.2)``.

    ``enabled=False`` prints nothing at all (``--quiet``).
    """

    def __init__(self, total: int | None, desc: str, *, unit: str = "it", enabled: bool = True,
                 stream: IO[str] | None = None, min_interval: float = 10.0) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self.start = time.perf_counter()
        live = enabled and is_terminal(self.stream)
        self.bar = tqdm(total=total, desc=desc, unit=unit, file=self.stream, leave=False) if live else None
        self.plain = enabled and not live
        self.min_interval = float(min_interval)
        self._last_line = -float("inf")
        self._held: dict[str, Any] | None = None  # a report not printed yet (plain mode)

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)

    def report(self, **values: Any) -> None:
        """One plain line (not on a terminal) or the bar's postfix (on a terminal)."""
        if self.bar is not None:
            self.bar.set_postfix_str(_format(values), refresh=False)
        elif self.plain:
            now = time.perf_counter()
            last_unit = self.total is not None and self.done >= self.total
            if now - self._last_line < self.min_interval and not last_unit:
                self._held = values
                return
            self._last_line, self._held = now, None
            where = f"{self.done}/{self.total} {self.unit}" if self.total else f"{self.done} {self.unit}"
            print(f"{self.desc}: {where}" + (f", {_format(values)}" if values else ""), file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.plain:
            self.plain = False
            held = f", {_format(self._held)}" if self._held else ""
            print(f"{self.desc}: done, {self.done} {self.unit} in {time.perf_counter() - self.start:.1f} s{held}",
                  file=self.stream, flush=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["Progress", "is_terminal"]
