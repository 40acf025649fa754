"""The exposed statistics of a block of windows, as the text of their values.

Responsibility: given the samples of windows of one length (one row each, oldest
first), the unit factor of each and the confidence level, give every row's mean,
quantiles (0.5, 0.95, 0.99) and interval ends in the base unit, already written
as sample values (``repr`` of the float, ``+Inf``/``-Inf``/``NaN`` spelled as
both formats spell them). A handful of numpy calls serve the whole block: the
mean and interval by :func:`perfwarden.series.bulk.mean_intervals`, the quantiles
by one sort of the rows in the narrowest type that holds them exactly, the unit
factors by one multiplication, the text by ``map(repr, ...)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import numpy as np

from perfwarden.series.bulk import MeanIntervals, mean_intervals, row_means
from perfwarden.views.exposition_text import format_value

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["block_values", "quantiles"]

#: The exposed quantiles, as fractions.
QUANTILES: Final = (0.5, 0.95, 0.99)
_SHORT_MAX: Final = 32767

#: One row's values as text: mean, the three quantiles, the interval's low and
#: high ends (``""`` for both when the window has too few samples for one).
Values = tuple[str, str, str, str, str, str]


def quantiles(
    stacked: npt.NDArray[np.float64], sample_bytes: int = 2
) -> npt.NDArray[np.float64]:
    """The 0.5, 0.95 and 0.99 quantiles of each row of a 2-D array, exactly as
    ``np.percentile``'s default (linear) method computes them; shape ``(rows, 3)``.

    Sorts a copy of the rows in the narrowest of ``int16``, ``float32`` and
    ``float64`` that holds every value exactly, starting from the type of
    ``sample_bytes`` (the widest storage of the windows read: 2, 4 or 8; a hint,
    the values decide). Integer timings and counts are sorted as ``int16`` by
    numpy's radix sort (``kind="stable"``: linear in the row, whatever the
    order of its values); the ``float32`` sort measured 2.6 times faster than
    ``np.partition`` of the ``float64`` rows at the quantiles' six positions
    (bench/exposition.md). A zero quantile is ``0.0``, never ``-0.0``.
    ``stacked`` is unchanged.
    """
    ordered = _sorted_rows(stacked, sample_bytes)
    n = stacked.shape[1]
    positions = np.array(QUANTILES) * (n - 1)
    lower = np.floor(positions).astype(np.intp)
    upper = np.minimum(lower + 1, n - 1)
    out = np.empty((stacked.shape[0], len(QUANTILES)), dtype=np.float64)
    for column, (low, high, position) in enumerate(
        zip(lower.tolist(), upper.tolist(), positions.tolist(), strict=True)
    ):
        a = ordered[:, low].astype(np.float64)
        b = ordered[:, high].astype(np.float64)
        t = position - low
        # numpy's _lerp: from the nearer end, so that t = 1 gives b exactly.
        out[:, column] = b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t
    # -0.0 and 0.0 compare equal, so which one a sort puts at a quantile's place
    # is arbitrary: write every zero as 0.0 (adding 0.0 turns -0.0 into 0.0).
    out += 0.0
    return out


def _sorted_rows(
    stacked: npt.NDArray[np.float64], sample_bytes: int
) -> npt.NDArray[Any]:
    """A sorted copy of each row, in the narrowest exact type from ``sample_bytes``'."""
    if sample_bytes <= 2:
        # Out of int16's range or fractional: not equal after the round trip.
        with np.errstate(invalid="ignore"):
            short = stacked.astype(np.int16)
        if np.array_equal(short, stacked):
            short.sort(axis=1, kind="stable")  # a radix sort for 16-bit integers
            return short
    if sample_bytes <= 4:
        with np.errstate(over="ignore"):  # beyond float32's range: inf, not equal
            narrow = stacked.astype(np.float32)
        if np.array_equal(narrow, stacked):
            narrow.sort(axis=1)
            return narrow
    return np.sort(stacked, axis=1)


def block_values(
    stacked: npt.NDArray[np.float64],
    factors: npt.NDArray[np.float64],
    confidence_level: float | None,
    sample_bytes: int = 8,
    non_negative: npt.NDArray[np.bool_] | None = None,
) -> list[Values]:
    """Each row's :data:`Values` in its base unit: the row's statistics times its
    ``factors`` entry. ``confidence_level`` ``None``: no interval (too few
    samples). ``sample_bytes`` as for :func:`quantiles`. Rows marked in
    ``non_negative`` (a quantity that cannot be negative) get the log-scale
    interval where the symmetric one dips below zero, as ``stats`` does
    (:func:`perfwarden.series.stats.mean_interval`). ``stacked`` is unchanged.
    """
    rows = stacked.shape[0]
    columns = np.empty((6, rows), dtype=np.float64)
    ordered = quantiles(stacked, sample_bytes).T
    # Beyond float64 after the factor: inf, as Python's float product gives it.
    with np.errstate(over="ignore", invalid="ignore"):
        if confidence_level is not None:
            found = mean_intervals(stacked, confidence_level)
            lowest, highest = _within_range(found, non_negative)
            np.multiply(found.mean, factors, out=columns[0])
            np.multiply(lowest, factors, out=columns[4])
            np.multiply(highest, factors, out=columns[5])
        else:
            np.multiply(row_means(stacked), factors, out=columns[0])
            columns[4:] = 0.0  # not exposed: any finite value
        np.multiply(ordered, factors, out=columns[1:4])
    flat = columns.ravel().tolist()
    # repr is format_value's spelling of a finite float, without a call each.
    text = list(map(repr if np.isfinite(columns).all() else format_value, flat))
    mean, p50, p95, p99, low, high = (text[k * rows : (k + 1) * rows] for k in range(6))
    if confidence_level is None:
        low = high = [""] * rows
    return list(zip(mean, p50, p95, p99, low, high, strict=True))


def _within_range(
    found: MeanIntervals, non_negative: npt.NDArray[np.bool_] | None
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The interval ends, log-scale (``mean * exp(+-half / mean)``) for the rows
    of ``non_negative`` whose mean is positive and symmetric interval dips below
    zero; the half-width is taken back from the symmetric interval, so the ends
    may differ from ``mean_interval``'s in the last bits."""
    low, high = found.low, found.high
    if non_negative is None:
        return low, high
    swap = non_negative & (found.mean > 0.0) & (low < 0.0)
    if not swap.any():
        return low, high
    mean = found.mean[swap]
    spread = np.exp((mean - low[swap]) / mean)
    low, high = low.copy(), high.copy()
    low[swap] = mean / spread
    high[swap] = mean * spread
    return low, high
