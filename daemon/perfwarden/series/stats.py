"""Summary statistics and confidence intervals of a rolling window.

Responsibility: turn a :class:`~perfwarden.series.window.RollingWindow` (or the
newest samples of one) into the numbers the evaluator and the ``stats`` command
report.

Method: the interval is ``mean +- t * s / sqrt(n_eff)`` with ``t`` the two-sided
critical value of Student's t with ``floor(n_eff) - 1`` degrees of freedom
(:func:`perfwarden.series.tdist.two_sided_critical`, memoised) and ``n_eff`` the
*effective sample size*. Real latency series are autocorrelated: a slow request
is followed by slow requests, so ``n`` samples carry less information than ``n``
independent ones and the textbook interval is too narrow (with AR(1) phi = 0.7 it
covers the mean about half as often as it claims). So the lag-1 autocorrelation
``r`` (the standard estimator, ``sum((x_t - m)(x_t+1 - m)) / sum((x_t - m)**2)``)
is measured on the same samples and, when it is significantly positive (above the
Bartlett bound ``1.96 / sqrt(n)``), ``n_eff = n (1 - r) / (1 + r)``, the variance
inflation of the mean of an AR(1) process; otherwise ``n_eff = n``, which gives
exactly ``scipy.stats.t.interval(level, n - 1, loc=mean, scale=scipy.stats.sem(x))``.

A quantity whose unit says it cannot be negative (a duration, a size, a ratio)
gets the *log-scale* interval ``mean * exp(+-t * se / mean)`` (the delta method on
``log(mean)``) whenever the symmetric one would reach below zero, so the interval
never leaves the quantity's range; :attr:`Summary.ci_method` says which was used.

:func:`summarize` adds min, max and the p50/p95/p99 percentiles (numpy's default
``linear`` method) from one ``np.percentile`` call on a copy of the window. Both
:func:`interval` and :func:`summarize` are O(window): they read every sample once
or twice, so they run when someone reads the statistics, not per sample.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np

from perfwarden.series.tdist import two_sided_critical

if TYPE_CHECKING:
    import numpy.typing as npt

    from perfwarden.series.window import RollingWindow

__all__ = [
    "MeanInterval",
    "Summary",
    "effective_sample_size",
    "interval",
    "is_non_negative_unit",
    "lag1_autocorrelation",
    "lag1_of_deviations",
    "mean_interval",
    "summarize",
]

_QUANTILES = (0.0, 50.0, 95.0, 99.0, 100.0)
#: Two-sided 95% normal quantile: the Bartlett bound on the lag-1 autocorrelation
#: of independent samples is this over sqrt(n).
_BARTLETT_Z: Final = 1.959963984540054
#: Units whose quantities cannot be negative (compared case-insensitively).
_NON_NEGATIVE_UNIT: Final = re.compile(
    r"(ns|us|µs|ms|s|sec|seconds?|min|minutes?|h|hours?|b|bytes?|kb|kib|mb|mib|gb"
    r"|gib|tb|tib|ratio|x|%|percent|count|requests?|ops|hz|rps|qps)",
    re.IGNORECASE,
)

#: ``Summary.ci_method`` values.
SYMMETRIC: Final = "t"
LOG_SCALE: Final = "log-t"

_add_reduce = np.add.reduce


def is_non_negative_unit(unit: str | None) -> bool:
    """Whether a metric's ``unit`` names a quantity that cannot be negative."""
    return unit is not None and _NON_NEGATIVE_UNIT.fullmatch(unit.strip()) is not None


def lag1_autocorrelation(values: npt.NDArray[np.float64]) -> float:
    """The lag-1 sample autocorrelation of ``values`` (0 for constant or < 3 values).

    The standard (biased, always in [-1, 1]) estimator, as ``statsmodels.tsa.acf``
    computes it: the lag-1 autocovariance over the variance, both around the mean.
    """
    if int(values.shape[0]) < 3:
        return 0.0
    deviations = values - float(_add_reduce(values)) / int(values.shape[0])
    return lag1_of_deviations(deviations, float(np.vdot(deviations, deviations)))


def lag1_of_deviations(deviations: npt.NDArray[np.float64], squares: float) -> float:
    """:func:`lag1_autocorrelation` from the deviations from the mean and the sum of
    their squares, for callers that have them already."""
    if int(deviations.shape[0]) < 3 or squares <= 0.0:
        return 0.0
    return float(np.vdot(deviations[:-1], deviations[1:])) / squares


def effective_sample_size(n: int, autocorrelation: float) -> float:
    """Independent samples worth of information in ``n`` AR(1)-like samples.

    ``n (1 - r) / (1 + r)`` when ``r`` exceeds the Bartlett bound ``1.96 / sqrt(n)``
    (significantly positive), else ``n``; never below 2 (nor above ``n``).
    """
    if n < 3 or autocorrelation <= _BARTLETT_Z / math.sqrt(n):
        return float(n)
    r = min(autocorrelation, 0.999)
    return min(float(n), max(2.0, n * (1.0 - r) / (1.0 + r)))


@dataclass(frozen=True, slots=True)
class MeanInterval:
    """A confidence interval of a mean and how it was obtained."""

    mean: float
    standard_error: float
    low: float
    high: float
    autocorrelation: float
    effective_sample_size: float
    method: str


def mean_interval(
    values: npt.NDArray[np.float64],
    confidence_level: float,
    *,
    non_negative: bool = False,
) -> MeanInterval:
    """The autocorrelation-aware interval of the mean of ``values`` (>= 2 of them).

    See the module docstring for the method; ``non_negative`` asks for the
    log-scale interval where the symmetric one would dip below zero.
    """
    n = int(values.shape[0])
    # Shifted by the first value: a constant window's mean is exact, its sd 0.
    first = float(values[0])
    mean = first + float(_add_reduce(values - first)) / n
    deviations = values - mean
    squares = float(np.vdot(deviations, deviations))
    sd = math.sqrt(squares / (n - 1))
    r = lag1_of_deviations(deviations, squares)
    n_eff = effective_sample_size(n, r)
    standard_error = sd / math.sqrt(n_eff)
    t = two_sided_critical(confidence_level, max(math.floor(n_eff) - 1, 1))
    half = t * standard_error
    if non_negative and mean > 0.0 and mean - half < 0.0:
        spread = math.exp(half / mean)
        return MeanInterval(
            mean, standard_error, mean / spread, mean * spread, r, n_eff, LOG_SCALE
        )
    return MeanInterval(
        mean, standard_error, mean - half, mean + half, r, n_eff, SYMMETRIC
    )


@dataclass(frozen=True, slots=True)
class Summary:
    """Statistics of one window; ``None`` where there are too few samples.

    ``mean``, ``min``, ``max`` and the percentiles need one sample;
    ``standard_error`` (of the mean, over the effective sample size),
    ``autocorrelation`` and ``effective_sample_size`` two; ``ci_low``/``ci_high``
    and ``ci_method`` (``t``, or ``log-t`` for a non-negative quantity whose
    symmetric interval would dip below zero) ``min_samples`` (and two).
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
    autocorrelation: float | None = None
    effective_sample_size: float | None = None
    ci_method: str | None = None

    @property
    def interval(self) -> tuple[float, float] | None:
        """``(ci_low, ci_high)``, or ``None`` below ``min_samples``."""
        if self.ci_low is None or self.ci_high is None:
            return None
        return (self.ci_low, self.ci_high)

    def as_dict(self) -> dict[str, float | int | str | None]:
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
            "autocorrelation": self.autocorrelation,
            "effective_sample_size": self.effective_sample_size,
            "ci_method": self.ci_method,
        }


def interval(
    window: RollingWindow,
    confidence_level: float,
    min_samples: int,
    *,
    non_negative: bool = False,
) -> tuple[float, float] | None:
    """The confidence interval of the window's mean (:func:`mean_interval`), or
    ``None`` with fewer than ``max(min_samples, 2)`` samples. O(window)."""
    if len(window) < max(min_samples, 2):
        return None
    found = mean_interval(window.values(), confidence_level, non_negative=non_negative)
    return found.low, found.high


def summarize(
    window: RollingWindow,
    confidence_level: float,
    min_samples: int,
    *,
    non_negative: bool = False,
) -> Summary:
    """The full :class:`Summary` of the window. O(window)."""
    n = len(window)
    if n == 0:
        return Summary(0, None, None, None, None, None, None, None, None, None)
    values = window.values()
    lowest, p50, p95, p99, highest = (
        float(v) for v in np.percentile(values, _QUANTILES)
    )
    if n < 2:
        return Summary(
            1, window.mean(), None, None, None, lowest, highest, p50, p95, p99
        )
    found = mean_interval(values, confidence_level, non_negative=non_negative)
    shown = n >= min_samples
    return Summary(
        sample_size=n,
        mean=window.mean(),
        standard_error=found.standard_error,
        ci_low=found.low if shown else None,
        ci_high=found.high if shown else None,
        min=lowest,
        max=highest,
        p50=p50,
        p95=p95,
        p99=p99,
        autocorrelation=found.autocorrelation,
        effective_sample_size=found.effective_sample_size,
        ci_method=found.method if shown else None,
    )
