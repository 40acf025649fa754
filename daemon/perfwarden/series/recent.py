"""Statistics of the newest samples of many windows at once.

Responsibility: the mean and sample standard deviation of the newest ``count``
samples of each of a list of windows, computed in one numpy pass over a
``len(windows) x count`` array instead of a dozen numpy calls per window. An
evaluation pass judges every series updated since the previous one; with a hundred
busy series, per-window numpy overhead was most of its cost.

The sums are numpy's pairwise sums along each row, as :func:`numpy.add.reduce` does
for a single window, so the figures agree with a per-window computation to a few
units in the last place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence

    from perfwarden.series.window import RollingWindow

__all__ = ["recent_moments"]

_add_reduce = np.add.reduce


def recent_moments(
    windows: Sequence[RollingWindow], count: int
) -> tuple[list[float], list[float]]:
    """Means and sample standard deviations (``ddof=1``) of the newest ``count``
    (>= 2) samples of each window; every window must hold at least ``count``."""
    rows = np.empty((len(windows), count), dtype=np.float64)
    for row, window in zip(rows, windows, strict=True):
        window.tail_into(row)
    means = _add_reduce(rows, axis=1)
    means /= count
    rows -= means[:, np.newaxis]
    np.square(rows, out=rows)
    variances = _add_reduce(rows, axis=1)
    variances /= count - 1
    return means.tolist(), np.sqrt(variances).tolist()
