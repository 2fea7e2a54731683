"""How sure a number is: intervals over seeds and the cross-framework equivalence test.

* `interval`: mean and two-sided 95 % Student-t interval over seeds (the
  seeds are few, so a t interval, not a bootstrap; one seed has none).
* `equivalence`: a paired TOST (two one-sided t tests, Schuirmann 1987) of an
  implementation against the NumPy reference over seeds. Pairing by seed
  removes what the seeds share (data order, initial weights), leaving only
  what differs: each framework's own random stream and arithmetic. The
  implementation is *equivalent* when both one-sided tests reject a
  difference of at least the margin, i.e. the 90 % interval of the mean
  paired difference lies inside ``(-margin, +margin)``; *different* when that
  interval lies wholly outside the margins; otherwise *inconclusive* (too few
  seeds for the spread between runs). Computed by statsmodels' ``ttost_paired``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float  # NaN with fewer than two values
    high: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def interval(values: np.ndarray | list[float], confidence: float = 0.95) -> Interval:
    """Mean and Student-t interval of finite values (NaN bounds for fewer than two)."""
    values = np.asarray([v for v in values if v is not None and math.isfinite(v)], float)
    if not len(values):
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(values.mean())
    if len(values) < 2:
        return Interval(mean, math.nan, math.nan, 1)
    half = stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return Interval(mean, mean - half, mean + half, len(values))


@dataclass(frozen=True)
class Equivalence:
    """A paired TOST of ``candidate - reference`` over seeds against ``(-margin, margin)``."""

    mean_difference: float
    low: float  # the (1 - 2 alpha) interval of the mean difference
    high: float
    p_value: float  # the larger of the two one-sided p-values
    margin: float
    n: int
    equivalent: bool | None  # None: fewer than two paired seeds

    @property
    def different(self) -> bool:
        """The interval lies wholly beyond a margin: the difference is larger than the margin allows."""
        return self.low > self.margin or self.high < -self.margin

    @property
    def verdict(self) -> str:
        """✓ equivalent, ✗ different, ? inconclusive (more seeds would decide), n/a (one seed)."""
        if self.equivalent is None:
            return "n/a"
        return "✓" if self.equivalent else "✗" if self.different else "?"


def equivalence(candidate: list[float], reference: list[float], margin: float, alpha: float = 0.05) -> Equivalence:
    """Paired TOST over seeds: is ``candidate`` within ``margin`` of ``reference``? (statsmodels ``ttost_paired``)."""
    a, b = np.asarray(candidate, float), np.asarray(reference, float)
    differences = a - b
    n = len(differences)
    if n < 2:
        mean = float(differences.mean()) if n else math.nan
        return Equivalence(mean, math.nan, math.nan, math.nan, margin, n, None)
    mean = float(differences.mean())
    spread = float(differences.std(ddof=1))
    if spread == 0:  # identical differences: the test degenerates to comparing the mean with the margin
        inside = abs(mean) < margin
        return Equivalence(mean, mean, mean, 0.0 if inside else 1.0, margin, n, inside)
    from statsmodels.stats.weightstats import ttost_paired

    p_value, _, _ = ttost_paired(a, b, -margin, margin)
    half = stats.t.ppf(1 - alpha, n - 1) * spread / math.sqrt(n)
    return Equivalence(mean, mean - half, mean + half, float(p_value), margin, n, bool(p_value < alpha))
