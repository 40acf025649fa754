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
* the *short* window, the newest ``evaluation.short_window`` samples, through their
  trimmed mean (the lowest and the highest value left out, so one outlier cannot
  carry it) plus or minus ``t * s * sqrt(inflation / m)`` where ``s``, the
  autocorrelation inflation ``n / n_eff`` and the degrees of freedom come from the
  *reference*: the ``evaluation.window`` samples just before the short window.
  The noise is measured on data the burst has not reached yet, so a burst does not
  widen its own interval, and a few samples of it are enough.

An alert resolves only when the short window is clear of the level (hysteresis
included) and the long window no longer violates it, so a burst's alert ends soon
after the burst while a shift's lasts as long as the long window sees it.
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
    lag1_autocorrelation,
    mean_interval,
)
from perfwarden.series.tdist import two_sided_critical

if TYPE_CHECKING:
    import numpy.typing as npt

    from perfwarden.config.load import Config, MetricConfig
    from perfwarden.series.window import RollingWindow

__all__ = [
    "Judgement",
    "judge_windows",
    "short_window_observation",
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


def short_window_observation(
    values: npt.NDArray[np.float64], short: int, confidence_level: float
) -> Observation:
    """The short-window observation of ``values``: the trimmed mean of the last
    ``short`` of them, with the spread of those before (see the module docstring)."""
    current = values[-short:]
    reference = values[:-short]
    n = int(reference.shape[0])
    mean = float(_add_reduce(reference)) / n
    deviations = reference - mean
    variance = float(np.vdot(deviations, deviations)) / (n - 1)
    n_eff = effective_sample_size(n, lag1_autocorrelation(reference))
    kept = short - 2
    trimmed = (float(_add_reduce(current)) - current.max() - current.min()) / kept
    t = two_sided_critical(confidence_level, max(math.floor(n_eff) - 1, 1))
    half = t * math.sqrt(variance * (n / n_eff) / kept)
    return (trimmed - half, trimmed + half)


def judge_windows(
    window: RollingWindow, config: Config, metric: MetricConfig
) -> Judgement | None:
    """The ``multiwindow`` judgement, or ``None`` until the long window has
    ``statistics.min_samples`` samples."""
    evaluation = config.evaluation
    statistics = config.statistics
    size = len(window)
    count = min(size, evaluation.window)
    if count < max(statistics.min_samples, 2):
        return None
    short = evaluation.short_window
    values = window.tail(min(size, evaluation.window + short))
    found = mean_interval(values[-count:], statistics.confidence_level)
    long_observation = (found.low, found.high)
    long_verdict = _judge(long_observation, metric, evaluation.hysteresis)
    if size - short < max(statistics.min_samples, 2):
        return Judgement(long_observation, long_verdict)
    short_observation = short_window_observation(
        values, short, statistics.confidence_level
    )
    short_verdict = _judge(short_observation, metric, evaluation.hysteresis)
    verdict = Verdict(
        violated=_worse(short_verdict.violated, long_verdict.violated),
        clear_of_warning=short_verdict.clear_of_warning
        and long_verdict.violated is None,
        clear_of_critical=short_verdict.clear_of_critical
        and long_verdict.violated is not Level.CRITICAL,
    )
    worst = _further(short_observation, long_observation, metric.bound)
    return Judgement(worst, verdict)


def _judge(observation: Observation, metric: MetricConfig, margin: float) -> Verdict:
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
