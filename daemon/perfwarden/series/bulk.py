"""The statistics of many windows of one length at once.

Responsibility: the means and confidence intervals of the rows of a 2-D array
(each row the samples of one window, oldest first), computed with a handful of
numpy calls for all rows instead of a dozen per window, for readers that want
every series at once (a Prometheus scrape of thousands of series).

The method is :func:`perfwarden.series.stats.mean_interval`'s (shifted mean,
lag-1 autocorrelation of the deviations, effective sample size, Student-t with
``floor(n_eff) - 1`` degrees of freedom, symmetric interval); the tests check both
against each other row by row. :func:`mean_intervals` runs its dot products in a
different order than ``mean_interval``'s, so the two may differ in the last bits
of a value, never more; :func:`exact_mean_intervals` (for the evaluator, whose
verdicts must not depend on whether a series was judged alone or in bulk) runs
every sum in ``mean_interval``'s order and equals it bit for bit.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Final, NamedTuple

import numpy as np

from perfwarden.series.tdist import two_sided_critical

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = [
    "MeanIntervals",
    "References",
    "exact_mean_intervals",
    "exact_references",
    "mean_intervals",
    "row_means",
]

#: As :mod:`perfwarden.series.stats`: the Bartlett bound is this over sqrt(n).
_BARTLETT_Z: Final = 1.959963984540054

FloatArray = np.ndarray[tuple[int], np.dtype[np.float64]]


class MeanIntervals(NamedTuple):
    """Per row: the mean and the ends of its confidence interval."""

    mean: FloatArray
    low: FloatArray
    high: FloatArray


def row_means(rows: npt.NDArray[np.float64]) -> FloatArray:
    """The mean of each row (>= 1 column), shifted by its first value as
    ``mean_interval`` computes it (a constant row's mean is exact)."""
    return _row_means(rows, np.empty_like(rows))


def _row_means(
    rows: npt.NDArray[np.float64], scratch: npt.NDArray[np.float64]
) -> FloatArray:
    first = rows[:, 0]
    np.subtract(rows, first[:, np.newaxis], out=scratch)
    result: FloatArray = first + np.add.reduce(scratch, axis=1) / rows.shape[1]
    return result


def mean_intervals(
    rows: npt.NDArray[np.float64], confidence_level: float
) -> MeanIntervals:
    """``mean_interval(row, confidence_level)`` (symmetric) of every row of a
    2-D array with at least 2 columns; ``rows`` is left unchanged."""
    n = int(rows.shape[1])
    if n < 2:
        msg = f"an interval needs at least 2 samples per row, got {n}"
        raise ValueError(msg)
    deviations = np.empty_like(rows)  # one scratch array for both passes
    mean = _row_means(rows, deviations)
    np.subtract(rows, mean[:, np.newaxis], out=deviations)
    squares = np.einsum("ij,ij->i", deviations, deviations)
    effective = np.full(squares.shape[0], float(n))
    if n >= 3:  # else no lag-1 pairs: the samples count as independent
        lagged = np.einsum("ij,ij->i", deviations[:, :-1], deviations[:, 1:])
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(squares > 0.0, lagged / squares, 0.0)
        significant = r > _BARTLETT_Z / math.sqrt(n)
        if significant.any():
            r = np.minimum(r[significant], 0.999)
            shrunk = n * (1.0 - r) / (1.0 + r)
            effective[significant] = np.minimum(float(n), np.maximum(2.0, shrunk))
    degrees = np.maximum(np.floor(effective).astype(np.intp) - 1, 1)
    critical = np.empty(degrees.shape[0], dtype=np.float64)
    for df in np.unique(degrees).tolist():  # a few distinct values at most
        critical[degrees == df] = two_sided_critical(confidence_level, df)
    half = critical * (np.sqrt(squares / (n - 1)) / np.sqrt(effective))
    return MeanIntervals(mean, mean - half, mean + half)


def exact_mean_intervals(
    rows: npt.NDArray[np.float64], confidence_level: float
) -> MeanIntervals:
    """``mean_interval(row, confidence_level)`` (symmetric) of every row of a
    2-D array with at least 2 columns, equal to it bit for bit.

    Every operation is ``mean_interval``'s, in its order: numpy's pairwise sum
    along each row (the same as on the row alone), the dot products through
    ``matmul`` of a row by a column, which calls the same BLAS ``ddot`` as
    ``np.vdot`` (``einsum`` sums in another order), then the same IEEE
    operations element by element. ``rows`` is left unchanged.
    """
    n = int(rows.shape[1])
    if n < 2:
        msg = f"an interval needs at least 2 samples per row, got {n}"
        raise ValueError(msg)
    first = rows[:, 0]
    mean: FloatArray = first + np.add.reduce(rows - first[:, np.newaxis], axis=1) / n
    deviations = rows - mean[:, np.newaxis]
    squares = _row_dots(deviations, deviations)
    effective = _effective_sizes(deviations, squares)
    critical = _criticals(effective, confidence_level)
    half = critical * (np.sqrt(squares / (n - 1)) / np.sqrt(effective))
    return MeanIntervals(mean, mean - half, mean + half)


class References(NamedTuple):
    """Per row: :class:`perfwarden.alerts.observation.Reference`'s fields."""

    t: FloatArray
    inflated_variance: FloatArray


def exact_references(
    rows: npt.NDArray[np.float64], confidence_level: float
) -> References:
    """``Reference.of(row, confidence_level)`` (the noise of the samples before
    the short windows) of every row of a 2-D array with at least 2 columns,
    equal to it bit for bit, as :func:`exact_mean_intervals` is to
    ``mean_interval`` (the deviations are from the plain mean, as there)."""
    n = int(rows.shape[1])
    if n < 2:
        msg = f"a reference needs at least 2 samples per row, got {n}"
        raise ValueError(msg)
    deviations = rows - (np.add.reduce(rows, axis=1) / n)[:, np.newaxis]
    squares = _row_dots(deviations, deviations)
    effective = _effective_sizes(deviations, squares)
    inflated: FloatArray = squares / (n - 1) * n / effective
    return References(_criticals(effective, confidence_level), inflated)


def _effective_sizes(
    deviations: npt.NDArray[np.float64], squares: FloatArray
) -> FloatArray:
    """``effective_sample_size(n, lag1_of_deviations(row, squares))`` per row."""
    count, n = (int(size) for size in deviations.shape)
    effective = np.full(count, float(n))
    if n >= 3:  # else no lag-1 pairs: the samples count as independent
        lagged = _row_dots(deviations[:, :-1], deviations[:, 1:])
        r = np.divide(lagged, squares, out=np.zeros(count), where=squares > 0.0)
        significant = r > _BARTLETT_Z / math.sqrt(n)
        if significant.any():
            capped = np.minimum(r[significant], 0.999)
            shrunk = n * (1.0 - capped) / (1.0 + capped)
            effective[significant] = np.minimum(float(n), np.maximum(2.0, shrunk))
    return effective


def _criticals(effective: FloatArray, confidence_level: float) -> FloatArray:
    """The t critical value for ``floor(n_eff) - 1`` (at least 1) degrees of
    freedom per row."""
    degrees = np.maximum(np.floor(effective).astype(np.intp) - 1, 1).tolist()
    # A few distinct degrees at most (one, n - 1, unless autocorrelated).
    criticals = {df: two_sided_critical(confidence_level, df) for df in set(degrees)}
    return np.array([criticals[df] for df in degrees], dtype=np.float64)


def _row_dots(
    left: npt.NDArray[np.float64], right: npt.NDArray[np.float64]
) -> FloatArray:
    """The dot product of each row of ``left`` with the same row of ``right``."""
    products = np.matmul(left[:, np.newaxis, :], right[:, :, np.newaxis])
    result: FloatArray = products[:, 0, 0]
    return result
