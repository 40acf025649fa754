"""Summary statistics and Student-t confidence intervals of a rolling window.

Responsibility: turn a :class:`~perfwarden.series.window.RollingWindow` into the
numbers the
evaluator and the ``stats`` command report.

Method: the interval is ``mean +- t * s / sqrt(n)`` with ``t`` the two-sided
critical value of Student's t with ``n - 1`` degrees of freedom
(:func:`perfwarden.series.tdist.two_sided_critical`, memoised) and ``mean``/``s`` the
window's running moments, so :func:`interval` is O(1). It matches
``scipy.stats.t.interval(level, n - 1, loc=mean, scale=scipy.stats.sem(x))``.
:func:`summarize` adds min, max and the p50/p95/p99 percentiles (numpy's default
``linear`` method) from one ``np.percentile`` call on a copy of the window; min and
max are its 0th and 100th percentiles, which the linear method returns exactly.
That part is O(capacity) and runs only when someone reads the statistics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from perfwarden.series.tdist import two_sided_critical

if TYPE_CHECKING:
    from perfwarden.series.window import RollingWindow

__all__ = ["Summary", "interval", "summarize"]

_QUANTILES = (0.0, 50.0, 95.0, 99.0, 100.0)


@dataclass(frozen=True, slots=True)
class Summary:
    """Statistics of one window; ``None`` where there are too few samples.

    ``mean``, ``min``, ``max`` and the percentiles need one sample,
    ``standard_error`` two, and ``ci_low``/``ci_high`` ``min_samples`` (and two).
    """

    sample_size: int
    mean: float | None
    standard_error: float | None
    ci_low: float | None
    ci_high: float | None
    min: float | None
    max: float | None
    p50: float | None
    p95: float | None
    p99: float | None

    @property
    def interval(self) -> tuple[float, float] | None:
        """``(ci_low, ci_high)``, or ``None`` below ``min_samples``."""
        if self.ci_low is None or self.ci_high is None:
            return None
        return (self.ci_low, self.ci_high)

    def as_dict(self) -> dict[str, float | int | None]:
        """The fields as a JSON-serialisable dict, in declaration order."""
        return {
            "sample_size": self.sample_size,
            "mean": self.mean,
            "standard_error": self.standard_error,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "min": self.min,
            "max": self.max,
            "p50": self.p50,
            "p95": self.p95,
            "p99": self.p99,
        }


def _standard_error(window: RollingWindow) -> float:
    return math.sqrt(window.variance() / len(window))


def _interval(
    window: RollingWindow, confidence_level: float, standard_error: float
) -> tuple[float, float]:
    mean = window.mean()
    half = two_sided_critical(confidence_level, len(window) - 1) * standard_error
    return mean - half, mean + half


def interval(
    window: RollingWindow, confidence_level: float, min_samples: int
) -> tuple[float, float] | None:
    """The two-sided Student-t confidence interval of the window's mean, or
    ``None`` with fewer than ``max(min_samples, 2)`` samples. O(1)."""
    if len(window) < max(min_samples, 2):
        return None
    return _interval(window, confidence_level, _standard_error(window))


def summarize(
    window: RollingWindow, confidence_level: float, min_samples: int
) -> Summary:
    """The full :class:`Summary` of the window. O(capacity)."""
    n = len(window)
    if n == 0:
        return Summary(0, None, None, None, None, None, None, None, None, None)
    lowest, p50, p95, p99, highest = (
        float(v)
        for v in np.percentile(window.values(), _QUANTILES, overwrite_input=True)
    )
    standard_error = ci_low = ci_high = None
    if n >= 2:
        standard_error = _standard_error(window)
        if n >= min_samples:
            ci_low, ci_high = _interval(window, confidence_level, standard_error)
    return Summary(
        sample_size=n,
        mean=window.mean(),
        standard_error=standard_error,
        ci_low=ci_low,
        ci_high=ci_high,
        min=lowest,
        max=highest,
        p50=p50,
        p95=p95,
        p99=p99,
    )
