"""What is compared with a metric's thresholds, on each ``evaluation.basis``.

One job: turn the newest samples of a series into observations ``(low, high)`` and
those into one :class:`~perfwarden.alerts.machine.Verdict`. Pure functions of the
samples and the configuration; the evaluator keeps the state.

``mean`` and ``ci`` judge the newest ``evaluation.window`` samples (``ci``: their
autocorrelation-aware interval, :func:`perfwarden.series.stats.mean_interval`).

``multiwindow`` (the default) judges two windows at once and fires on either:

* the *long* window, the newest ``evaluation.window`` samples, through their
  interval as on ``ci``: it sees a slow shift of the mean that no short window can
  tell from noise;
* two *short* windows, the newest ``evaluation.short_window`` samples (10: a
  burst) and three times as many (30: a shift too small for 10 samples), each
  through its trimmed mean (the lowest and the highest value left out, so one
  outlier cannot carry it) plus or minus ``t * s * sqrt(inflation / m)`` with
  ``m`` the values averaged, where ``s``, the autocorrelation inflation
  ``n / n_eff`` and the degrees of freedom come from the *reference*: the
  ``evaluation.window`` samples just before the longer short window. The noise is
  measured on data a burst has not reached yet, so a burst does not widen its own
  interval (as it widens the long window's), and a few samples of it are enough.

An alert resolves once the trimmed mean of every short window is back past the
level by the hysteresis margin and the long window no longer violates it (as the
SRE workbook's short window resets a burn-rate alert), so a burst's alert ends
soon after the burst while a shift's lasts as long as the long window sees it.
Firing needs the whole interval beyond the level, resolving only the point
estimate back past the margin: between the two the state holds, so no flapping.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from perfwarden.alerts.machine import Level, Verdict, judge_observation
from perfwarden.config.load import Basis, Bound
from perfwarden.series.stats import (
    effective_sample_size,
    lag1_of_deviations,
    mean_interval,
)
from perfwarden.series.tdist import two_sided_critical

if TYPE_CHECKING:
    import numpy.typing as npt

    from perfwarden.config.load import Config, MetricConfig
    from perfwarden.series.window import RollingWindow

__all__ = [
    "Judgement",
    "Reference",
    "any_beyond",
    "judge_short_windows",
    "judge_windows",
    "nearer_level",
    "short_windows_of",
    "verdict_of",
    "window_observation",
]

Observation = tuple[float, float]

_add_reduce = np.add.reduce


@dataclass(frozen=True, slots=True)
class Judgement:
    """The verdict of one evaluation and the observation shown with it."""

    observation: Observation
    verdict: Verdict


def window_observation(window: RollingWindow, config: Config) -> Observation | None:
    """The ``mean`` / ``ci`` observation of the newest ``evaluation.window`` samples,
    or ``None`` below ``statistics.min_samples``."""
    evaluation = config.evaluation
    count = min(len(window), evaluation.window)
    if count < max(config.statistics.min_samples, 2):
        return None
    recent = window.tail(count)
    if evaluation.basis is Basis.MEAN:
        mean = float(_add_reduce(recent)) / count
        return (mean, mean)
    found = mean_interval(recent, config.statistics.confidence_level)
    return (found.low, found.high)


@dataclass(frozen=True, slots=True)
class Reference:
    """The noise of the samples before the short windows: the t critical value
    and the variance of one sample inflated by the autocorrelation."""

    t: float
    inflated_variance: float

    @classmethod
    def of(
        cls, reference: npt.NDArray[np.float64], confidence_level: float
    ) -> Reference:
        """Measure ``reference`` (at least 2 samples)."""
        n = int(reference.shape[0])
        deviations = reference - float(_add_reduce(reference)) / n
        squares = float(np.vdot(deviations, deviations))
        variance = squares / (n - 1)
        n_eff = effective_sample_size(n, lag1_of_deviations(deviations, squares))
        t = two_sided_critical(confidence_level, max(math.floor(n_eff) - 1, 1))
        return cls(t, variance * n / n_eff)

    def observe(self, current: list[float]) -> Observation:
        """The trimmed mean of ``current`` (at least 3 samples) +- its half-width."""
        # Plain Python: on a few dozen values it beats three numpy reductions.
        kept = len(current) - 2
        trimmed = (math.fsum(current) - max(current) - min(current)) / kept
        half = self.t * math.sqrt(self.inflated_variance / kept)
        return (trimmed - half, trimmed + half)


def judge_windows(
    window: RollingWindow,
    config: Config,
    metric: MetricConfig,
    *,
    only_violation: bool = False,
) -> Judgement | None:
    """The ``multiwindow`` judgement, or ``None`` until the long window has
    ``statistics.min_samples`` samples.

    ``only_violation``: the caller reads only ``verdict.violated`` (its alert is
    ok), so when no sample of the short windows lies beyond a level they cannot be
    violated (a trimmed mean never exceeds the largest value) and are not computed:
    the common case costs the long window alone.
    """
    evaluation = config.evaluation
    statistics = config.statistics
    minimum = max(statistics.min_samples, 2)
    size = len(window)
    count = min(size, evaluation.window)
    if count < minimum:
        return None
    shorts = short_windows_of(size, config)
    longest = max(shorts, default=0)
    values = window.tail(min(size, evaluation.window + longest))
    found = mean_interval(values[-count:], statistics.confidence_level)
    long_observation = (found.low, found.high)
    verdict = verdict_of(long_observation, metric, evaluation.hysteresis)
    if not shorts:
        return Judgement(long_observation, verdict)
    if only_violation and not any_beyond(values[-longest:], metric):
        return Judgement(long_observation, verdict)
    return judge_short_windows(
        values, shorts, long_observation, verdict, config, metric
    )


def short_windows_of(size: int, config: Config) -> list[int]:
    """The short windows judged in a window of ``size`` samples: those that
    leave a reference of ``statistics.min_samples`` (and 2) before them."""
    minimum = max(config.statistics.min_samples, 2)
    return [
        short for short in config.evaluation.short_windows if size - short >= minimum
    ]


def judge_short_windows(  # noqa: PLR0917 - the parts of one judgement
    values: npt.NDArray[np.float64],
    shorts: list[int],
    long_observation: Observation,
    verdict: Verdict,
    config: Config,
    metric: MetricConfig,
) -> Judgement:
    """The ``multiwindow`` judgement from the long window's and the short
    windows': ``values`` are the newest ``evaluation.window + max(shorts)``
    samples (or all of them), oldest first."""
    evaluation = config.evaluation
    longest = max(shorts)
    newest = values[-longest:].tolist()
    reference = Reference.of(values[:-longest], config.statistics.confidence_level)
    violated = verdict.violated
    worst = long_observation
    clear_of_warning = clear_of_critical = True
    for short in shorts:
        observation = reference.observe(newest[-short:])
        violated = _worse(
            violated, verdict_of(observation, metric, evaluation.hysteresis).violated
        )
        # Cleared on the trimmed mean itself: after a burst the reference holds
        # the burst for a while and its interval is too wide to ever look clear.
        middle = (observation[0] + observation[1]) / 2
        point = verdict_of((middle, middle), metric, evaluation.hysteresis)
        clear_of_warning = clear_of_warning and point.clear_of_warning
        clear_of_critical = clear_of_critical and point.clear_of_critical
        worst = _further(observation, worst, metric.bound)
    combined = Verdict(
        violated=violated,
        clear_of_warning=clear_of_warning and verdict.violated is None,
        clear_of_critical=clear_of_critical and verdict.violated is not Level.CRITICAL,
    )
    return Judgement(worst, combined)


def nearer_level(metric: MetricConfig) -> float | None:
    """The level a value crosses first (``None`` without levels)."""
    levels = [v for v in (metric.warning, metric.critical) if v is not None]
    if not levels:
        return None
    return min(levels) if metric.bound is Bound.UPPER else max(levels)


def any_beyond(values: npt.NDArray[np.float64], metric: MetricConfig) -> bool:
    """Does any of ``values`` lie beyond the metric's nearer level?"""
    level = nearer_level(metric)
    if level is None:
        return False
    if metric.bound is Bound.UPPER:
        return float(values.max()) > level
    return float(values.min()) < level


def verdict_of(
    observation: Observation, metric: MetricConfig, margin: float
) -> Verdict:
    """The verdict of one observation on the metric's levels, ``margin`` the
    hysteresis."""
    return judge_observation(
        *observation,
        bound=metric.bound,
        warning=metric.warning,
        critical=metric.critical,
        hysteresis=margin,
    )


def _worse(a: Level | None, b: Level | None) -> Level | None:
    if a is Level.CRITICAL or b is Level.CRITICAL:
        return Level.CRITICAL
    return a or b


def _further(a: Observation, b: Observation, bound: Bound) -> Observation:
    """The observation further on the bad side of the bound."""
    if bound is Bound.UPPER:
        return a if a[0] >= b[0] else b
    return a if a[1] <= b[1] else b
