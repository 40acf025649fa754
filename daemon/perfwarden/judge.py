"""Judging one series against its metric's thresholds on the configured basis.

``upper``-bound metrics (lower is better) violate a level when the observation is
above it; ``lower``-bound metrics when it is below. The observation depends on the
basis: ``sample`` the newest value (the seed's per-value check), ``mean`` the window
mean, ``ci`` the whole confidence interval (it must lie entirely beyond the level, so
one outlier never counts and a real shift does, with statistical confidence).
"""

from __future__ import annotations

from enum import StrEnum

from perfwarden.config import Basis, Bound, MetricConfig

__all__ = ["Level", "Observation", "beyond", "judge"]


class Level(StrEnum):
    """Where a series stands against its thresholds."""

    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"
    INSUFFICIENT_DATA = "insufficient_data"
    UNCONFIGURED = "unconfigured"


class Observation:
    """The quantity compared with thresholds: a single value or an interval."""

    __slots__ = ("high", "low")

    def __init__(self, low: float, high: float) -> None:
        self.low = low
        self.high = high


def beyond(observation: Observation, threshold: float, bound: Bound) -> bool:
    """Is the whole observation on the bad side of ``threshold``?"""
    if bound is Bound.UPPER:
        return observation.low > threshold
    return observation.high < threshold


def judge(
    metric: MetricConfig | None,
    basis: Basis,
    *,
    last: float | None,
    mean: float | None,
    interval: tuple[float, float] | None,
) -> Level:
    """The level of one series right now (no hold time, no hysteresis)."""
    if metric is None or (metric.warning is None and metric.critical is None):
        return Level.UNCONFIGURED
    observation: Observation | None
    if basis is Basis.SAMPLE:
        observation = None if last is None else Observation(last, last)
    elif basis is Basis.MEAN:
        observation = None if mean is None else Observation(mean, mean)
    else:
        observation = None if interval is None else Observation(*interval)
    if observation is None:
        return Level.INSUFFICIENT_DATA
    if metric.critical is not None and beyond(
        observation, metric.critical, metric.bound
    ):
        return Level.CRITICAL
    if metric.warning is not None and beyond(observation, metric.warning, metric.bound):
        return Level.WARNING
    return Level.OK
