"""Trend of a series over its window: a Mann-Kendall test, read by the metric's bound.

The window (oldest first) is reduced to at most :data:`MAX_POINTS` block means, which
keeps the test O(1) in the window size and damps sample-to-sample noise; the
Mann-Kendall statistic S counts rising minus falling pairs, its variance includes
the tie correction, and the two-sided p-value comes from the normal approximation
(the same as ``scipy.stats.kendalltau(range(n), x, method="asymptotic")``).

Labels, by these rules:

- a trend that is significant (p < ``significance``) and material (the Theil-Sen
  slope of the block means moves the level by at least :data:`MIN_CHANGE` of it
  across the window) in the bad direction: ``degrading``; in the good direction:
  ``improving`` (for an ``upper`` bound, down is good). With a few hundred samples
  the test finds even a 0.1% drift of a very steady series (a process' memory)
  significant, which no one would call degrading;
- otherwise, when the whole window's 5th-95th percentile range lies on the good side
  of the target: ``consistently_high`` (``lower`` bound) or ``consistently_low``
  (``upper`` bound); when the whole confidence interval does: ``exceeding_target``;
- otherwise ``stable``. Fewer than :data:`MIN_POINTS` samples: ``insufficient_data``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from perfwarden.config.load import Bound

__all__ = [
    "MAX_POINTS",
    "MIN_CHANGE",
    "MIN_POINTS",
    "MannKendall",
    "label",
    "mann_kendall",
]

MAX_POINTS: Final = 100
MIN_POINTS: Final = 8
#: Smallest change across the window, relative to its level, that is a trend.
MIN_CHANGE: Final = 0.01


@dataclass(frozen=True, slots=True)
class MannKendall:
    """The test's result: S, its z score, the two-sided p-value, the points used,
    and the Theil-Sen change across the window relative to its median level."""

    s: float
    z: float
    p_value: float
    points: int
    relative_change: float = 0.0


def _block_means(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    n = len(values)
    if n <= MAX_POINTS:
        return values
    block = math.ceil(n / MAX_POINTS)
    usable = (n // block) * block
    # Drop the oldest remainder so the newest samples always count.
    means: npt.NDArray[np.float64] = (
        values[n - usable :].reshape(-1, block).mean(axis=1)
    )
    return means


def mann_kendall(values: npt.NDArray[np.float64]) -> MannKendall | None:
    """Mann-Kendall on ``values`` (oldest first); ``None`` below MIN_POINTS."""
    points = _block_means(np.asarray(values, dtype=np.float64))
    n = len(points)
    if n < MIN_POINTS:
        return None
    diffs = points[None, :] - points[:, None]
    upper = np.triu_indices(n, k=1)
    rises = diffs[upper]
    s = float(np.sign(rises).sum())
    slope = float(np.median(rises / (upper[1] - upper[0])))  # Theil-Sen, per point
    level = abs(float(np.median(points)))
    change = abs(slope) * (n - 1)
    relative = change / level if level > 0 else (math.inf if change else 0.0)
    _, counts = np.unique(points, return_counts=True)
    ties = counts[counts > 1]
    variance = (
        n * (n - 1) * (2 * n + 5) - float(np.sum(ties * (ties - 1) * (2 * ties + 5)))
    ) / 18.0
    if variance <= 0:
        return MannKendall(s, 0.0, 1.0, n)
    z = s / math.sqrt(variance)
    p_value = math.erfc(abs(z) / math.sqrt(2.0))
    return MannKendall(s, z, p_value, n, relative)


def label(
    values: npt.NDArray[np.float64],
    *,
    bound: Bound | None,
    target: float | None,
    interval: tuple[float, float] | None,
    significance: float = 0.05,
) -> str:
    """The trend label of a window (see the module docstring for the rules)."""
    result = mann_kendall(values)
    if result is None:
        return "insufficient_data"
    material = result.relative_change >= MIN_CHANGE
    if result.p_value < significance and result.s != 0 and material:
        rising = result.s > 0
        if bound is None:
            return "rising" if rising else "falling"
        good = (not rising) if bound is Bound.UPPER else rising
        return "improving" if good else "degrading"
    if bound is not None and target is not None:
        p05, p95 = np.percentile(values, [5, 95])
        if bound is Bound.UPPER and p95 < target:
            return "consistently_low"
        if bound is Bound.LOWER and p05 > target:
            return "consistently_high"
        if interval is not None:
            low, high = interval
            if (bound is Bound.UPPER and high < target) or (
                bound is Bound.LOWER and low > target
            ):
                return "exceeding_target"
    return "stable"
