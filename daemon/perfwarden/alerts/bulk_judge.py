"""Judge many series of one evaluation pass at once, on the window bases.

Responsibility: the judgements of :mod:`perfwarden.alerts.observation` for every
series of a pass, equal bit for bit to judging them one by one, with the window
statistics computed in a handful of numpy calls for all series instead of a
dozen per series (at 20 k lines/s over 100 series a pass judges ~100 series up to
20 times a second; per series the numpy calls cost more than the arithmetic).

Series whose windows hold the same number of samples go in one group: their
newest samples are copied into the rows of one array
(:meth:`~perfwarden.series.window.RollingWindow.tail_into`) and the long
window's interval (``multiwindow``, ``ci``) or mean (``mean``) of every row comes
from :func:`perfwarden.series.bulk.exact_mean_intervals`. The short windows of
``multiwindow`` need their reference only for the rows whose alert is not ok or
whose short windows hold a value beyond a level (the maxima of all rows at once
say which). A few such rows are judged as alone, by the same function
(:func:`~perfwarden.alerts.observation.judge_short_windows`); from
:data:`MIN_ROWS` of them on (many alerts firing at once) their references come
from :func:`perfwarden.series.bulk.exact_references` and their trimmed means from
``math.fsum`` row by row, the same operations as ``Reference``. A group of fewer
than :data:`MIN_ROWS` series (a window still filling, a metric with its own
smaller window) is judged series by series: there the per-call cost of numpy
wins. The judgements are equal, float for float, to the one-by-one ones
(``tests/unit/test_bulk_judge.py``).

``sample`` is not a window basis and is not judged here.
"""

from __future__ import annotations

import math
from enum import Enum
from typing import TYPE_CHECKING, Final, NamedTuple

import numpy as np

from perfwarden.alerts.machine import AlertState, Level, Verdict
from perfwarden.alerts.observation import (
    Judgement,
    judge_short_windows,
    judge_windows,
    short_windows_of,
    verdict_of,
    window_observation,
)
from perfwarden.config.load import Basis, Bound
from perfwarden.series.bulk import exact_mean_intervals, exact_references

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
    return Judgement(
        observation, verdict_of(observation, metric, config.evaluation.hysteresis)
    )


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
    shapes: dict[int, _Shape | None] = {}  # by window size: most share one
    for index, judged in enumerate(series):
        size = len(judged.window)
        shape = shapes.get(size, _UNKNOWN)
        if shape is _UNKNOWN:
            shape = shapes[size] = _shape_of(size, config)
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


_UNKNOWN: Final = _Shape(0, 0, ())


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
    for cells, judged in zip(table, series, strict=True):
        judged.window.tail_into(cells)
    long = table[:, shape.take - shape.long :]
    if config.evaluation.basis is Basis.MEAN:
        lows = highs = np.add.reduce(long, axis=1) / shape.long
    else:
        found = exact_mean_intervals(long, config.statistics.confidence_level)
        lows, highs = found.low, found.high
    levels = _Levels.of(series)
    codes = levels.codes(lows, highs, config.evaluation.hysteresis)
    judgements = [
        Judgement((low, high), _VERDICTS[code])
        for low, high, code in zip(
            lows.tolist(), highs.tolist(), codes.tolist(), strict=True
        )
    ]
    if not shape.shorts:
        return judgements
    # The short windows, for the rows that need them (see judge_windows).
    newest = table[:, -max(shape.shorts) :]
    beyond = np.where(
        levels.upper,
        np.max(newest, axis=1) > levels.nearer,
        np.min(newest, axis=1) < levels.nearer,
    )
    unsettled = np.array([not judged.settled for judged in series])
    needy = np.flatnonzero(unsettled | beyond)
    if needy.shape[0] >= MIN_ROWS:
        longs = _Long(lows, highs, codes)
        _short_windows_in_bulk(table, needy, shape, levels, longs, judgements, config)
        return judgements
    shorts = list(shape.shorts)
    for row in needy.tolist():
        judgement = judgements[row]
        judgements[row] = judge_short_windows(
            table[row],
            shorts,
            judgement.observation,
            judgement.verdict,
            config,
            series[row].metric,
        )
    return judgements


class _Long(NamedTuple):
    """The long window's observations and verdict codes of a group's rows."""

    lows: npt.NDArray[np.float64]
    highs: npt.NDArray[np.float64]
    codes: npt.NDArray[np.intp]


def _short_windows_in_bulk(  # noqa: PLR0917 - the parts of one group's judgement
    table: npt.NDArray[np.float64],
    rows: npt.NDArray[np.intp],
    shape: _Shape,
    levels: _Levels,
    long: _Long,
    judgements: list[Judgement],
    config: Config,
) -> None:
    """``judge_short_windows`` of ``rows`` of the group, all at once: the same
    operations per row (``math.fsum`` for the trimmed sums, as ``observe``)."""
    hysteresis = config.evaluation.hysteresis
    chosen = table[rows]
    levels = levels.take(rows)
    reference = exact_references(
        chosen[:, : -max(shape.shorts)], config.statistics.confidence_level
    )
    long_violated = long.codes[rows] // 4
    violated = long_violated
    worst_low, worst_high = long.lows[rows], long.highs[rows]
    clear_of_warning = clear_of_critical = np.ones(rows.shape[0], dtype=np.bool_)
    for short in shape.shorts:
        current = chosen[:, -short:]
        kept = short - 2
        sums = np.array([math.fsum(values) for values in current.tolist()])
        trimmed = (sums - np.max(current, axis=1) - np.min(current, axis=1)) / kept
        half = reference.t * np.sqrt(reference.inflated_variance / kept)
        low, high = trimmed - half, trimmed + half
        violated = np.maximum(violated, levels.codes(low, high, hysteresis) // 4)
        middle = (low + high) / 2
        point = levels.codes(middle, middle, hysteresis)
        clear_of_warning = clear_of_warning & ((point & 2) > 0)
        clear_of_critical = clear_of_critical & ((point & 1) > 0)
        further = np.where(levels.upper, low >= worst_low, high <= worst_high)
        worst_low = np.where(further, low, worst_low)
        worst_high = np.where(further, high, worst_high)
    codes = (
        violated * 4
        + (clear_of_warning & (long_violated == 0)) * 2
        + (clear_of_critical & (long_violated != 2))  # 2: critical
    )
    for row, low, high, code in zip(
        rows.tolist(),
        worst_low.tolist(),
        worst_high.tolist(),
        codes.tolist(),
        strict=True,
    ):
        judgements[row] = Judgement((low, high), _VERDICTS[code])


class _Levels(NamedTuple):
    """The levels of the rows of a group (NaN where a metric has none)."""

    upper: npt.NDArray[np.bool_]
    warning: npt.NDArray[np.float64]
    critical: npt.NDArray[np.float64]
    #: The level a value crosses first: ``observation.nearer_level``.
    nearer: npt.NDArray[np.float64]

    @classmethod
    def of(cls, series: list[Judged]) -> _Levels:
        nan = math.nan
        metrics = [judged.metric for judged in series]
        upper = np.array([metric.bound is Bound.UPPER for metric in metrics])
        warning = np.array(
            [nan if (m := metric.warning) is None else m for metric in metrics]
        )
        critical = np.array(
            [nan if (m := metric.critical) is None else m for metric in metrics]
        )
        # fmin/fmax skip a NaN: min() of the levels that exist.
        nearer = np.where(upper, np.fmin(warning, critical), np.fmax(warning, critical))
        return cls(upper, warning, critical, nearer)

    def take(self, rows: npt.NDArray[np.intp]) -> _Levels:
        """The levels of some rows."""
        return _Levels(
            self.upper[rows], self.warning[rows], self.critical[rows], self.nearer[rows]
        )

    def codes(
        self,
        lows: npt.NDArray[np.float64],
        highs: npt.NDArray[np.float64],
        hysteresis: float,
    ) -> npt.NDArray[np.intp]:
        """``judge_observation`` of each row as an index in :data:`_VERDICTS`:
        the same comparisons, and the same arithmetic for the margins, element
        by element."""
        violated = np.where(
            self._beyond(lows, highs, self.critical),
            2,
            np.where(self._beyond(lows, highs, self.warning), 1, 0),
        )
        clear_of_critical = self._clear(lows, highs, self.critical, hysteresis)
        clear_of_warning = clear_of_critical & self._clear(
            lows, highs, self.warning, hysteresis
        )
        codes: npt.NDArray[np.intp] = (
            violated * 4 + clear_of_warning * 2 + clear_of_critical
        )
        return codes

    def _beyond(
        self,
        lows: npt.NDArray[np.float64],
        highs: npt.NDArray[np.float64],
        level: npt.NDArray[np.float64],
    ) -> npt.NDArray[np.bool_]:
        """As ``machine._beyond`` (a NaN level compares false: never beyond)."""
        return np.where(self.upper, lows > level, highs < level)

    def _clear(
        self,
        lows: npt.NDArray[np.float64],
        highs: npt.NDArray[np.float64],
        level: npt.NDArray[np.float64],
        margin: float,
    ) -> npt.NDArray[np.bool_]:
        """As ``machine._clear``; clear of a level that does not exist."""
        slack = margin * np.abs(level)
        clear = np.where(self.upper, highs < level - slack, lows > level + slack)
        return clear | np.isnan(level)


#: Every verdict, at ``violated * 4 + clear_of_warning * 2 + clear_of_critical``
#: (``violated``: 0 none, 1 warning, 2 critical).
_VERDICTS: Final = tuple(
    Verdict(level, clear_of_warning, clear_of_critical)
    for level in (None, Level.WARNING, Level.CRITICAL)
    for clear_of_warning in (False, True)
    for clear_of_critical in (False, True)
)
