"""Prometheus / OpenMetrics exposition of the daemon's live state.

Nothing here runs on the ingest path. A scrape (:meth:`Exposition.scrape`) reads
the store, the evaluator, the knobs, the ingest counters, the plugins and the last
reload on the daemon's event loop (the one thread that owns them), in chunks of
series with a yield to the loop between chunks. Per chunk, the windows whose
samples changed are stacked by length in cache-sized blocks, and a handful of
numpy calls per block give every window's mean, confidence interval and
quantiles as text (:mod:`perfwarden.views.exposition_statistics`); the sample
lines are written straight away.

Between scrapes the exposition keeps, per series, the rendered label text and
the rendered sample lines with everything they were written from (window state,
labels, unit, statistics settings; the alert lines with the status), so a series
that received nothing since the last scrape costs a few list appends, and a busy
one a share of its block's numpy calls and its lines. One scrape runs at a time;
concurrent scrapers wait for it.

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
from typing import TYPE_CHECKING, Final

import numpy as np

from perfwarden.series.stats import is_non_negative_unit
from perfwarden.views.exposition_daemon import daemon_families
from perfwarden.views.exposition_statistics import Values, block_values, quantiles
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


@dataclass(slots=True)
class _Remembered:
    """What a scrape keeps of one series for the next: its label text, its
    base unit, and its sample lines with everything they were written from."""

    labels: str
    identity: frozenset[tuple[str, str]]
    #: The series' base unit, and the config it was read from.
    unit: BaseUnit = NONE
    unit_of: object = None
    #: Whether its configured unit cannot be negative (the log-scale interval
    #: where the symmetric one dips below zero, as ``stats`` gives it).
    non_negative: bool = False
    #: The ``_Row.key`` the lines were written for.
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
    written for the same key, they are used again and nothing is computed."""

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
            # Windows whose lines are due, by length and settings: each group's
            # statistics are computed in one go (:func:`_write_lines`).
            due: dict[tuple[int, StatisticsConfig], list[_Row]] = {}
            for series in everything[start : start + self._chunk]:
                row = self._row(series, seen)
                rows.append(row)
                remembered = row.remembered
                if remembered.lines_at != row.key:
                    size = row.window_at[2]
                    if size:
                        due.setdefault((size, row.statistics), []).append(row)
                    else:
                        remembered.lines = _series_lines(row, _NO_VALUES)
                        remembered.lines_at = row.key
            for (size, statistics), group in due.items():
                block = max(8, _BLOCK_BYTES // (8 * size))
                for first in range(0, len(group), block):
                    _write_lines(group[first : first + block], size, statistics)
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
            remembered.non_negative = metric is not None and is_non_negative_unit(
                metric.unit
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
            key=(window_at, text, unit, remembered.non_negative, statistics),
        )


def _write_lines(rows: list[_Row], size: int, statistics: StatisticsConfig) -> None:
    """Write and remember the lines of windows that all hold ``size`` samples,
    their statistics computed for all of them at once (a handful of numpy calls
    for the block instead of a dozen per window: the larger part of a scrape in
    which every window changed)."""
    table = np.empty((len(rows), size), dtype=np.float64)
    for out, row in zip(table, rows, strict=True):
        row.window.tail_into(out)  # straight into the row: no copy between
    factors = np.array([row.unit.factor for row in rows], dtype=np.float64)
    sample_bytes = max([row.window.sample_bytes for row in rows])
    level = (
        statistics.confidence_level
        if size >= max(statistics.min_samples, 2)
        else None  # too few samples for an interval
    )
    non_negative = np.array(
        [row.remembered.non_negative for row in rows], dtype=np.bool_
    )
    found = block_values(table, factors, level, sample_bytes, non_negative)
    for row, values in zip(rows, found, strict=True):
        remembered = row.remembered
        remembered.lines = _series_lines(row, values)
        remembered.lines_at = row.key


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
    chunk of rows at a time from the lines :meth:`Exposition._gather` remembered
    for each (written by :func:`_series_lines` with f-strings rather than
    through :meth:`Family.add`)."""

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


#: The values of an empty window: none.
_NO_VALUES: Final[Values] = ("", "", "", "", "", "")


def _series_lines(row: _Row, values: Values) -> tuple[str, ...]:
    """One series' value lines, as the text of each family (``""`` for none):
    samples, received, mean, value (quantiles, sum, count), ci_low, ci_high.
    ``values`` are the window's statistics (:func:`block_values`) in base units."""
    labels = row.labels
    window = row.window
    _, total, size = row.window_at
    suffix, factor = row.unit
    end = f"_{suffix}" if suffix else ""
    mean_text, p50, p95, p99, low, high = values
    mean = value = ci_low = ci_high = ""
    if size:
        mean = f"perfwarden_series_mean{end}{{{labels}}} {mean_text}\n"
        name = f"perfwarden_series_value{end}{{{labels},quantile="
        value = f'{name}"0.5"}} {p50}\n{name}"0.95"}} {p95}\n{name}"0.99"}} {p99}\n'
    value += (
        f"perfwarden_series_value{end}_sum{{{labels}}} "
        f"{format_value(window.observed_sum * factor)}\n"
        f"perfwarden_series_value{end}_count{{{labels}}} {window.observed_count}.0\n"
    )
    if low:
        ci_low = f"perfwarden_series_ci_low{end}{{{labels}}} {low}\n"
        ci_high = f"perfwarden_series_ci_high{end}{{{labels}}} {high}\n"
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
