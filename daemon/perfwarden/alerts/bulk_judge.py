"""Judge many series of one evaluation pass at once, on the window bases.

Responsibility: the judgements of :mod:`perfwarden.alerts.observation` for every
series of a pass, equal bit for bit to judging them one by one, with the window
statistics computed in a handful of numpy calls for all series instead of a
dozen per series (a pass judges ~100 series 20 times a second at 20 k lines/s;
per series the numpy calls cost more than the arithmetic).

Series whose windows hold the same number of samples go in one group: their
newest samples are copied into the rows of one array
(:meth:`~perfwarden.series.window.RollingWindow.tail_into`) and the long
window's interval (``multiwindow``, ``ci``) or mean (``mean``) of every row comes
from :func:`perfwarden.series.bulk.exact_mean_intervals`. The short windows of
``multiwindow`` need their reference only for the rows whose alert is not ok or
whose short windows hold a value beyond a level (the maxima of all rows at once
say which): those few rows are judged as alone, by the same function
(:func:`~perfwarden.alerts.observation.judge_short_windows`). A group of fewer
than :data:`MIN_ROWS` series (a window still filling, a metric with its own
smaller window) is judged series by series: there the per-call cost of numpy
wins.

``sample`` is not a window basis and is not judged here.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Final, NamedTuple

import numpy as np

from perfwarden.alerts.machine import AlertState, Verdict, judge_observation
from perfwarden.alerts.observation import (
    Judgement,
    beyond_level,
    judge_short_windows,
    judge_windows,
    short_windows_of,
    window_observation,
)
from perfwarden.config.load import Basis
from perfwarden.series.bulk import exact_mean_intervals

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import numpy.typing as npt

    from perfwarden.alerts.machine import SeriesAlert
    from perfwarden.config.load import Config, MetricConfig
    from perfwarden.series.store import Series
    from perfwarden.series.window import RollingWindow

__all__ = [
    "MIN_ROWS",
    "UNJUDGED",
    "Judged",
    "Unjudged",
    "judge_many",
    "judge_one",
    "judge_pass",
]

#: Below this many series of one window length, judging them one by one is cheaper.
MIN_ROWS: Final = 4


class Judged(NamedTuple):
    """One series to judge: its window, its metric, and whether its alert is ok
    (then only ``verdict.violated`` is read: see ``judge_windows``)."""

    window: RollingWindow
    metric: MetricConfig
    settled: bool


class Unjudged(Enum):
    """The type of :data:`UNJUDGED`."""

    TOKEN = 0


#: Stands for the judgement of a series that a pass did not judge in bulk.
UNJUDGED: Final = Unjudged.TOKEN


class _Shape(NamedTuple):
    """What a window of a given size is judged on: ``take`` newest samples, the
    long window the newest ``long`` of them, the short windows ``shorts``."""

    take: int
    long: int
    shorts: tuple[int, ...]


def judge_one(judged: Judged, config: Config) -> Judgement | None:
    """The judgement of one series on a window basis (``None`` below
    ``statistics.min_samples``), as the evaluator makes it series by series."""
    window, metric, settled = judged
    if config.evaluation.basis is Basis.MULTIWINDOW:
        return judge_windows(window, config, metric, only_violation=settled)
    observation = window_observation(window, config)
    if observation is None:
        return None
    return Judgement(observation, _verdict(observation, metric, config))


def judge_pass(
    chosen: Sequence[tuple[Series, MetricConfig]],
    alerts: Mapping[str, SeriesAlert],
    config: Config,
) -> list[Judgement | None] | None:
    """The judgements of an evaluation pass over ``chosen``, or ``None`` where
    the evaluator judges series by series: on the ``sample`` basis, and when a
    series comes twice (its second judgement depends on its first step)."""
    if config.evaluation.basis is Basis.SAMPLE or len(chosen) < MIN_ROWS:
        return None
    if len({series.key for series, _ in chosen}) < len(chosen):
        return None
    judged = []
    for series, metric in chosen:
        alert = alerts.get(series.key)
        settled = alert is None or alert.state is AlertState.OK
        judged.append(Judged(series.window, metric, settled))
    return judge_many(judged, config)


def judge_many(series: Sequence[Judged], config: Config) -> list[Judgement | None]:
    """``judge_one`` of each series, in order, computed in bulk where it pays."""
    judgements: list[Judgement | None] = [None] * len(series)
    groups: dict[_Shape, list[int]] = {}
    for index, judged in enumerate(series):
        shape = _shape_of(len(judged.window), config)
        if shape is not None:
            groups.setdefault(shape, []).append(index)
    for shape, members in groups.items():
        if len(members) < MIN_ROWS:
            for index in members:
                judgements[index] = judge_one(series[index], config)
            continue
        chosen = [series[index] for index in members]
        for index, judgement in zip(
            members, _judge_group(chosen, shape, config), strict=True
        ):
            judgements[index] = judgement
    return judgements


def _shape_of(size: int, config: Config) -> _Shape | None:
    evaluation = config.evaluation
    count = min(size, evaluation.window)
    if count < max(config.statistics.min_samples, 2):
        return None
    if evaluation.basis is not Basis.MULTIWINDOW:
        return _Shape(count, count, ())
    shorts = tuple(short_windows_of(size, config))
    take = min(size, evaluation.window + max(shorts, default=0))
    return _Shape(take, count, shorts)


def _judge_group(
    series: list[Judged], shape: _Shape, config: Config
) -> list[Judgement]:
    """Judge series whose windows all have ``shape``."""
    table = np.empty((len(series), shape.take), dtype=np.float64)
    for row, judged in zip(table, series, strict=True):
        judged.window.tail_into(row)
    long = table[:, shape.take - shape.long :]
    if config.evaluation.basis is Basis.MEAN:
        means = (np.add.reduce(long, axis=1) / shape.long).tolist()
        return [
            _only(judged, (mean, mean), config)
            for judged, mean in zip(series, means, strict=True)
        ]
    found = exact_mean_intervals(long, config.statistics.confidence_level)
    lows, highs = found.low.tolist(), found.high.tolist()
    if not shape.shorts:
        return [
            _only(judged, (low, high), config)
            for judged, low, high in zip(series, lows, highs, strict=True)
        ]
    return _with_short_windows(series, table, (lows, highs), shape, config)


def _with_short_windows(
    series: list[Judged],
    table: npt.NDArray[np.float64],
    intervals: tuple[list[float], list[float]],
    shape: _Shape,
    config: Config,
) -> list[Judgement]:
    newest = table[:, -max(shape.shorts) :]
    highest = np.max(newest, axis=1).tolist()
    lowest = np.min(newest, axis=1).tolist()
    shorts = list(shape.shorts)
    judgements = []
    for row, (judged, low, high) in enumerate(zip(series, *intervals, strict=True)):
        judgement = _only(judged, (low, high), config)
        if not judged.settled or beyond_level(highest[row], lowest[row], judged.metric):
            judgement = judge_short_windows(
                table[row],
                shorts,
                judgement.observation,
                judgement.verdict,
                config,
                judged.metric,
            )
        judgements.append(judgement)
    return judgements


def _only(
    judged: Judged, observation: tuple[float, float], config: Config
) -> Judgement:
    return Judgement(observation, _verdict(observation, judged.metric, config))


def _verdict(
    observation: tuple[float, float], metric: MetricConfig, config: Config
) -> Verdict:
    return judge_observation(
        *observation,
        bound=metric.bound,
        warning=metric.warning,
        critical=metric.critical,
        hysteresis=config.evaluation.hysteresis,
    )
