"""Intervals over seeds: how sure a comparison of two DP training recipes can be.

With a handful of seeds, the 95 % interval of a mean is the Student t interval
mean ± t_{0.975, n−1} · s / √n (s: the sample standard deviation; e.g. Wasserman, *All of
Statistics*, §10). A difference between two cells is taken *paired by seed*: seed s of both
cells shares the head initialization and — in a seeded comparison — the Poisson batches and
the noise draws, so the interval is the t interval of the n per-seed differences.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scipy.stats import t as student_t

from privtangent.errors import ConfigError

METHOD = "Student t interval over seeds"
PAIRED_METHOD = "Student t interval over the per-seed differences (paired by seed)"


@dataclass(frozen=True)
class Interval:
    """A mean and its two-sided interval; ``low``/``high`` are None with fewer than 2 values."""

    mean: float
    low: float | None
    high: float | None
    n: int
    confidence: float = 0.95
    method: str = METHOD

    @property
    def above_zero(self) -> bool:
        return self.low is not None and self.low > 0

    @property
    def below_zero(self) -> bool:
        return self.high is not None and self.high < 0

    def text(self, digits: int = 1, signed: bool = False) -> str:
        """"84.1 [83.0, 85.2]" (or "+1.2 [−0.3, +2.7]" when ``signed``)."""
        fmt = f"{{:{'+' if signed else ''}.{digits}f}}"
        if self.low is None or self.high is None:
            return f"{fmt.format(self.mean)} (one seed: no interval)"
        return f"{fmt.format(self.mean)} [{fmt.format(self.low)}, {fmt.format(self.high)}]"


def t_interval(values: Sequence[float], confidence: float = 0.95, method: str = METHOD) -> Interval:
    """The Student t interval of the mean of ``values`` (no interval for a single value)."""
    values = [float(v) for v in values]
    if not values:
        raise ConfigError("an interval needs at least one value")
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence}")
    n, mean = len(values), statistics.fmean(values)
    if n < 2:
        return Interval(mean, None, None, n, confidence, method)
    half = student_t.ppf(0.5 + confidence / 2, n - 1) * statistics.stdev(values) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, confidence, method)


def paired_difference(a: Mapping[int, float], b: Mapping[int, float], confidence: float = 0.95) -> Interval:
    """Interval of mean(a − b) over the seeds present in both (paired by seed)."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise ConfigError("a paired difference needs at least one seed present in both cells")
    return t_interval([a[s] - b[s] for s in seeds], confidence, PAIRED_METHOD)


def verdict(difference: Interval, first: str = "Ours", second: str = "Reg") -> str:
    """"Ours better" / "Reg better" when the interval excludes 0, else "no clear difference"."""
    if difference.above_zero:
        return f"{first} better"
    if difference.below_zero:
        return f"{second} better"
    return "no clear difference"


__all__ = ["Interval", "METHOD", "PAIRED_METHOD", "paired_difference", "t_interval", "verdict"]
