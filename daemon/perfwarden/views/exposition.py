"""Prometheus / OpenMetrics exposition of the daemon's live state.

Nothing here runs on the ingest path. A scrape (:meth:`Exposition.scrape`) reads
the store, the evaluator, the knobs, the ingest counters, the plugins and the last
reload on the daemon's event loop (the one thread that owns them), in chunks of
series with a yield to the loop between chunks. Per chunk, the windows whose
samples changed are stacked by length in cache-sized blocks, and a dozen numpy
calls per block give every window's mean, confidence interval
(:mod:`perfwarden.series.bulk`) and percentiles (one sort); the sample lines are
written straight away (:mod:`perfwarden.views.exposition_text`).

Between scrapes the exposition keeps, per series, the rendered label text, the
statistics with the window state they were computed at, and the rendered sample
lines with everything they were written from (window state, labels, unit,
statistics settings; the alert lines with the status), so a series that received
nothing since the last scrape costs a few list appends, and a busy one a share of
its block's numpy calls and its lines. One scrape runs at a time; concurrent
scrapers wait for it.

Values are in base units (:mod:`perfwarden.views.exposition_units`): a series
whose metric is in milliseconds is exposed in seconds, in families named
``..._seconds`` (``# UNIT seconds`` in OpenMetrics), so one family never mixes
units; a series without a base unit goes to the families without a suffix. The
window's quantiles form a summary (``quantile`` label, ``_sum`` and ``_count`` of
the samples this daemon process received).

Series become label sets: ``metric`` (the DogStatsD name), ``type`` (``g``, ``ms``,
``h``, ``d``, ``c``, ``s``) and one label per tag. Tag names are sanitised to the
Prometheus label rules by :func:`label_name`; a tag whose sanitised name is one of the
labels perfwarden sets itself (``metric``, ``type``, ``state``, ...) or starts with
``__`` gets a ``tag_`` prefix, and two tags of one series that sanitise to the same
name get ``_2``, ``_3``... suffixes. A bare tag (``#canary``) becomes ``canary="true"``.
Should two series still end up with the same label set, the later one also gets
``series="<canonical key>"``, so an exposition never holds duplicate series.
docs/prometheus.md lists every metric.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from perfwarden.series.bulk import mean_intervals, row_means
from perfwarden.views.exposition_daemon import daemon_families
from perfwarden.views.exposition_text import (
    RESERVED_LABELS,
    Family,
    format_value,
    label_name,
    label_pairs,
    negotiate,
    render,
)
from perfwarden.views.exposition_units import NONE, BaseUnit, base_unit

if TYPE_CHECKING:
    from collections.abc import Iterator

    from perfwarden.config.load import StatisticsConfig
    from perfwarden.readmodel import DaemonView
    from perfwarden.series.store import Series
    from perfwarden.series.window import RollingWindow

__all__ = [
    "ALERT_LEVELS",
    "ALERT_STATES",
    "RESERVED_LABELS",
    "Exposition",
    "label_name",
    "quantiles",
    "series_labels",
]

#: Values of ``perfwarden_alert_state{state=...}`` (exactly one is 1 per series).
ALERT_STATES: Final = (
    "ok", "pending", "warning", "critical", "no_data", "insufficient_data",
)  # fmt: skip
#: ``perfwarden_alert_level``: 0 ok (also pending, no data), 1 warning, 2 critical.
ALERT_LEVELS: Final = {"warning": 1, "critical": 2}
#: The exposed quantiles, as fractions and as their label values.
_QUANTILES: Final = (0.5, 0.95, 0.99)
_QUANTILE_LABELS: Final = ("0.5", "0.95", "0.99")
#: Series gathered between two yields to the event loop.
_CHUNK: Final = 250
#: Bytes of samples whose statistics are computed together: a block (32 windows
#: of 1000) stays in a core's cache through the passes over it, where a chunk's
#: 250 windows at once measured 1.25 times slower.
_BLOCK_BYTES: Final = 256 * 1024


def series_labels(series: Series) -> dict[str, str]:
    """``metric``, ``type`` and the sanitised tags of one series."""
    labels = {"metric": series.name, "type": series.type.value}
    for tag in series.tags:  # sorted and de-duplicated by the store
        key, colon, value = tag.partition(":")
        base = name = label_name(key)
        suffix = 2
        while name in labels:
            name = f"{base}_{suffix}"
            suffix += 1
        labels[name] = value if colon else "true"
    return labels


def quantiles(stacked: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The 0.5, 0.95 and 0.99 quantiles of each row of a 2-D array, exactly as
    ``np.percentile``'s default (linear) method computes them; shape ``(rows, 3)``.

    Sorts the rows, in place or (when every value is exact in ``float32``, as
    most timings and counts are) a ``float32`` copy of them: numpy's vectorised
    sort of ``float32`` rows measured 2.6 times faster than the ``np.partition``
    of the ``float64`` rows at the three quantiles' six positions.
    """
    n = stacked.shape[1]
    with np.errstate(over="ignore"):  # beyond float32's range: inf, not equal
        narrow = stacked.astype(np.float32)
    ordered: npt.NDArray[np.floating[Any]]
    if np.array_equal(narrow, stacked):
        narrow.sort(axis=1)
        ordered = narrow
    else:
        stacked.sort(axis=1)
        ordered = stacked
    positions = np.array(_QUANTILES) * (n - 1)
    lower = np.floor(positions).astype(np.intp)
    upper = np.minimum(lower + 1, n - 1)
    out = np.empty((stacked.shape[0], len(_QUANTILES)), dtype=np.float64)
    for column, (low, high, position) in enumerate(
        zip(lower.tolist(), upper.tolist(), positions.tolist(), strict=True)
    ):
        a = ordered[:, low].astype(np.float64)
        b = ordered[:, high].astype(np.float64)
        t = position - low
        # numpy's _lerp: from the nearer end, so that t = 1 gives b exactly.
        out[:, column] = b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t
    return out


@dataclass(slots=True)
class _Remembered:
    """What a scrape keeps of one series for the next: its label text, its
    window's statistics with the ``(window id, total_count, len)`` of the window
    they describe, and its sample lines with everything they were written from."""

    labels: str
    identity: frozenset[tuple[str, str]]
    #: The series' base unit, and the config it was read from.
    unit: BaseUnit = NONE
    unit_of: object = None
    #: The window's statistics, with the ``(window_at, statistics config)``
    #: they were computed for.
    statistics_at: tuple[object, ...] = ()
    mean: float = 0.0
    ci: tuple[float, float] | None = None
    quantiles: tuple[float, ...] = ()
    lines_at: tuple[object, ...] = ()
    #: The text of each value family's lines (:func:`_series_lines`).
    lines: tuple[str, ...] = ()
    #: The alert lines, with the (label text, status) they were written for.
    alert_at: tuple[str, str] = ("", "")
    alert_lines: tuple[str, str] = ("", "")


@dataclass(slots=True)
class _Row:
    """One series in a scrape, read on the loop.

    ``key`` is what its value lines depend on: when the remembered lines were
    written for the same key, they are used again and nothing is computed;
    ``statistics_key`` is what the window's statistics depend on."""

    labels: str
    window: RollingWindow
    #: ``(id(window), total_count, len)``: a series that expired and came back
    #: has a new window whose counts may match the old one's.
    window_at: tuple[int, int, int]
    status: str
    remembered: _Remembered
    unit: BaseUnit
    statistics: StatisticsConfig
    key: tuple[object, ...]
    statistics_key: tuple[object, ...]


class Exposition:
    """``/metrics`` of one daemon, with what it remembers between scrapes.

    All of a scrape runs on the event loop, a chunk of series at a time with a
    yield in between: handing the Python-heavy part to a worker thread measured
    worse, as ingest's every ``recv`` releases the GIL and then waits for the
    worker to give it back (the convoy effect), which cost a saturated ingest a
    quarter of its rate at 1000 series for a scrape of ~20 ms of CPU.
    """

    def __init__(self, daemon: DaemonView, chunk: int = _CHUNK) -> None:
        self._daemon = daemon
        self._chunk = chunk
        self._remembered: dict[str, _Remembered] = {}
        self._lock = asyncio.Lock()

    async def scrape(self, accept: str = "") -> tuple[bytes, str]:
        """The body and content type for a scraper's ``Accept`` header (OpenMetrics
        when it asks for it, else the Prometheus text format 0.0.4)."""
        async with self._lock:
            families = _SeriesFamilies()
            for _ in self._gather(families):
                await asyncio.sleep(0)
            return self._render(families, accept)

    def scrape_now(self, accept: str = "") -> tuple[bytes, str]:
        """:meth:`scrape` in one go on the calling thread (no event loop needed)."""
        families = _SeriesFamilies()
        for _ in self._gather(families):
            pass
        return self._render(families, accept)

    def _render(self, families: _SeriesFamilies, accept: str) -> tuple[bytes, str]:
        openmetrics, content_type = negotiate(accept)
        others = daemon_families(self._daemon)
        return render([*families, *others], openmetrics=openmetrics), content_type

    def _gather(self, families: _SeriesFamilies) -> Iterator[None]:
        """Add every series to ``families``; yields after each chunk."""
        everything = list(self._daemon.store)
        seen: set[frozenset[tuple[str, str]]] = set()
        for start in range(0, len(everything), self._chunk):
            rows: list[_Row] = []
            # Windows whose statistics are due, by length and settings: each
            # group's computed in one go (:func:`_compute_statistics`).
            due: dict[tuple[int, StatisticsConfig], list[_Row]] = {}
            for series in everything[start : start + self._chunk]:
                row = self._row(series, seen)
                rows.append(row)
                size = row.window_at[2]
                if size and row.remembered.statistics_at != row.statistics_key:
                    due.setdefault((size, row.statistics), []).append(row)
            for (size, statistics), group in due.items():
                block = max(8, _BLOCK_BYTES // (8 * size))
                for first in range(0, len(group), block):
                    _compute_statistics(group[first : first + block], size, statistics)
            families.add(rows)
            if start + self._chunk < len(everything):
                yield
        if len(self._remembered) > 2 * len(everything) + 1024:
            self._remembered = {
                s.key: self._remembered[s.key]
                for s in everything
                if s.key in self._remembered
            }

    def _row(
        self,
        series: Series,
        seen: set[frozenset[tuple[str, str]]],
    ) -> _Row:
        daemon = self._daemon
        config = daemon.config
        remembered = self._remembered.get(series.key)
        if remembered is None:
            labels = series_labels(series)
            remembered = _Remembered(
                label_pairs(labels.items()), frozenset(labels.items())
            )
            self._remembered[series.key] = remembered
        if remembered.unit_of is not config:
            metric = config.metrics.get(series.name)
            remembered.unit = base_unit(
                metric.unit if metric is not None else None, series.type.value
            )
            remembered.unit_of = config
        unit = remembered.unit
        text = remembered.labels
        if remembered.identity in seen:
            labels = {**series_labels(series), "series": series.key}
            text = label_pairs(labels.items())
            seen.add(frozenset(labels.items()))
        else:
            seen.add(remembered.identity)
        window = series.window
        window_at = (id(window), window.total_count, len(window))
        statistics = config.statistics
        return _Row(
            labels=text,
            window=window,
            window_at=window_at,
            status=daemon.evaluator.status_of(series),
            remembered=remembered,
            unit=unit,
            statistics=statistics,
            key=(window_at, text, unit, statistics),
            statistics_key=(window_at, statistics),
        )


def _compute_statistics(
    rows: list[_Row], size: int, statistics: StatisticsConfig
) -> None:
    """Remember the mean, interval and quantiles of windows that all hold
    ``size`` samples, computed for all of them at once (a dozen numpy calls for
    the group instead of a dozen per window: the larger part of a scrape in which
    every window changed)."""
    table = np.empty((len(rows), size), dtype=np.float64)
    for index, row in enumerate(rows):
        row.window.tail_into(table[index])  # straight into the row: no copy between
    intervals: list[tuple[float, float] | None]
    if size >= max(statistics.min_samples, 2):
        found = mean_intervals(table, statistics.confidence_level)
        means = found.mean.tolist()
        intervals = list(zip(found.low.tolist(), found.high.tolist(), strict=True))
    else:  # too few samples for an interval
        means = row_means(table).tolist()
        intervals = [None] * len(rows)
    at_quantiles = quantiles(table).tolist()  # sorts the table: last
    for row, mean, ci, values in zip(rows, means, intervals, at_quantiles, strict=True):
        remembered = row.remembered
        remembered.mean = mean
        remembered.ci = ci
        remembered.quantiles = tuple(values)
        remembered.statistics_at = row.statistics_key


class _UnitFamilies:
    """The per-series families whose values carry a unit, for one base unit."""

    def __init__(self, suffix: str) -> None:
        end = f"_{suffix}" if suffix else ""
        in_unit = f" ({suffix})" if suffix else ""
        self.mean = Family(
            f"perfwarden_series_mean{end}",
            "gauge",
            f"Mean of the series' rolling window{in_unit}.",
            unit=suffix,
        )
        self.ci_low = Family(
            f"perfwarden_series_ci_low{end}",
            "gauge",
            "Lower end of the Student-t confidence interval of the window's mean"
            f"{in_unit} (absent below statistics.min_samples).",
            unit=suffix,
        )
        self.ci_high = Family(
            f"perfwarden_series_ci_high{end}",
            "gauge",
            f"Upper end of the Student-t confidence interval of the window's mean"
            f"{in_unit}.",
            unit=suffix,
        )
        self.value = Family(
            f"perfwarden_series_value{end}",
            "summary",
            f"The series' values{in_unit}: quantiles 0.5, 0.95, 0.99 of the rolling "
            "window; sum and count of the samples received since the daemon started.",
            unit=suffix,
        )

    def __iter__(self) -> Iterator[Family]:
        yield from (self.mean, self.ci_low, self.ci_high, self.value)


class _SeriesFamilies:
    """The per-series families (those with a unit, per base unit), filled a
    chunk of rows at a time. The hot loop of a scrape: each series' lines are
    the remembered ones when nothing they depend on changed, else written by
    :func:`_series_lines` with f-strings rather than through :meth:`Family.add`."""

    def __init__(self) -> None:
        self.by_unit: dict[str, _UnitFamilies] = {}
        self.samples = Family(
            "perfwarden_series_samples",
            "gauge",
            "Samples in the series' rolling window.",
        )
        self.received = Family(
            "perfwarden_series_received_samples",
            "counter",
            "Samples the series ever received (all windows).",
        )
        self.alert_state = Family(
            "perfwarden_alert_state",
            "gauge",
            "1 for the series' current alert state, 0 for the others (series of "
            "metrics with warning or critical levels).",
        )
        self.alert_level = Family(
            "perfwarden_alert_level",
            "gauge",
            "Firing alert level of the series: 0 none, 1 warning, 2 critical.",
        )

    def __iter__(self) -> Iterator[Family]:
        for suffix in sorted(self.by_unit):
            yield from self.by_unit[suffix]
        yield from (self.samples, self.received, self.alert_state, self.alert_level)

    def add(self, rows: list[_Row]) -> None:
        samples = self.samples.lines
        received = self.received.lines
        alert_state = self.alert_state.lines
        alert_level = self.alert_level.lines
        by_unit = self.by_unit
        for row in rows:
            remembered = row.remembered
            if remembered.lines_at != row.key:
                remembered.lines = _series_lines(row)
                remembered.lines_at = row.key
            alert_at = (row.labels, row.status)
            if remembered.alert_at != alert_at:
                remembered.alert_lines = _alert_lines(row.labels, row.status)
                remembered.alert_at = alert_at
            suffix = row.unit.suffix
            group = by_unit.get(suffix)
            if group is None:
                group = by_unit[suffix] = _UnitFamilies(suffix)
            lines = remembered.lines
            samples.append(lines[0])
            received.append(lines[1])
            group.mean.lines.append(lines[2])
            group.value.lines.append(lines[3])
            group.ci_low.lines.append(lines[4])
            group.ci_high.lines.append(lines[5])
            alert_state.append(remembered.alert_lines[0])
            alert_level.append(remembered.alert_lines[1])


def _series_lines(row: _Row) -> tuple[str, ...]:
    """One series' value lines, as the text of each family (``""`` for none):
    samples, received, mean, value (quantiles, sum, count), ci_low, ci_high."""
    fmt = format_value
    labels = row.labels
    window = row.window
    _, total, size = row.window_at
    suffix, factor = row.unit
    end = f"_{suffix}" if suffix else ""
    mean = value = ci_low = ci_high = ""
    remembered = row.remembered
    if size:
        mean = (
            f"perfwarden_series_mean{end}{{{labels}}} {fmt(remembered.mean * factor)}\n"
        )
        p50, p95, p99 = remembered.quantiles
        name = f"perfwarden_series_value{end}{{{labels},quantile="
        value = (
            f'{name}"0.5"}} {fmt(p50 * factor)}\n'
            f'{name}"0.95"}} {fmt(p95 * factor)}\n'
            f'{name}"0.99"}} {fmt(p99 * factor)}\n'
        )
    value += (
        f"perfwarden_series_value{end}_sum{{{labels}}} "
        f"{fmt(window.observed_sum * factor)}\n"
        f"perfwarden_series_value{end}_count{{{labels}}} {window.observed_count}.0\n"
    )
    ci = remembered.ci if size else None
    if ci is not None:
        low, high = ci
        ci_low = f"perfwarden_series_ci_low{end}{{{labels}}} {fmt(low * factor)}\n"
        ci_high = f"perfwarden_series_ci_high{end}{{{labels}}} {fmt(high * factor)}\n"
    return (
        f"perfwarden_series_samples{{{labels}}} {size}.0\n",
        f"perfwarden_series_received_samples_total{{{labels}}} {total}.0\n",
        mean,
        value,
        ci_low,
        ci_high,
    )


def _alert_lines(labels: str, status: str) -> tuple[str, str]:
    """The ``perfwarden_alert_state`` and ``perfwarden_alert_level`` lines of a
    series with ``status`` (none for a metric without levels)."""
    if status == "unconfigured":
        return "", ""
    states = "".join(
        f'perfwarden_alert_state{{{labels},state="{state}"}} '
        f"{'1.0' if state == status else '0.0'}\n"
        for state in ALERT_STATES
    )
    level = ALERT_LEVELS.get(status, 0)
    return states, f"perfwarden_alert_level{{{labels}}} {level}.0\n"
