"""Prometheus / OpenMetrics exposition of the daemon's live state.

Nothing here runs on the ingest path. A scrape (:meth:`Exposition.scrape`) reads
the store, the evaluator, the knobs, the ingest counters, the plugins and the last
reload on the daemon's event loop (the one thread that owns them), in chunks of
series with a yield to the loop between chunks: per chunk one vectorised partition
per window length gives the percentiles, and the sample lines are written
straight away (:mod:`perfwarden.exposition_text`).

Between scrapes the exposition keeps, per series, the rendered label text and the
percentiles with the sample count they were computed at, so an idle series costs a
few string joins and a busy one a share of one vectorised partition. One scrape
runs at a time; concurrent scrapers wait for it.

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
import os
import re
import resource
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from perfwarden import __version__
from perfwarden.exposition_text import (
    Family,
    format_value,
    label_pairs,
    negotiate,
    render,
)
from perfwarden.plugin_runtime import PluginState
from perfwarden.stats import interval

if TYPE_CHECKING:
    from collections.abc import Iterator

    from perfwarden.app import Daemon
    from perfwarden.store import Series

__all__ = [
    "ALERT_LEVELS",
    "ALERT_STATES",
    "RESERVED_LABELS",
    "Exposition",
    "label_name",
    "quantiles",
    "series_labels",
]

#: Labels perfwarden sets itself; a tag of the same name is renamed ``tag_<name>``.
RESERVED_LABELS: Final = frozenset(
    {
        "metric", "type", "series", "state", "level", "quantile", "le",
        "job", "instance", "knob", "choice", "plugin", "outcome", "reason",
    }
)  # fmt: skip
#: Values of ``perfwarden_alert_state{state=...}`` (exactly one is 1 per series).
ALERT_STATES: Final = (
    "ok", "pending", "warning", "critical", "no_data", "insufficient_data",
)  # fmt: skip
#: ``perfwarden_alert_level``: 0 ok (also pending, no data), 1 warning, 2 critical.
ALERT_LEVELS: Final = {"warning": 1, "critical": 2}
#: The exposed quantiles, as fractions and as their label values.
_QUANTILES: Final = (0.5, 0.95, 0.99)
_QUANTILE_LABELS: Final = ("0.5", "0.95", "0.99")
_PLUGIN_OUTCOMES: Final = ("applied", "kept", "reverted", "inconclusive")
_INVALID_LABEL_CHARS: Final = re.compile(r"[^a-zA-Z0-9_]")
#: Series gathered between two yields to the event loop.
_CHUNK: Final = 250
_CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")
_PAGE_SIZE: Final = os.sysconf("SC_PAGE_SIZE")


def label_name(tag: str) -> str:
    """A tag name as a valid, unreserved Prometheus label name."""
    name = _INVALID_LABEL_CHARS.sub("_", tag) or "_"
    if name[0].isdigit():
        name = f"_{name}"
    if name.startswith("__") or name in RESERVED_LABELS:
        name = f"tag_{name}"
    return name


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

    Partitions ``stacked`` in place (one ``np.partition`` for all rows and
    quantiles, where ``np.percentile`` would copy and partition per quantile).
    """
    n = stacked.shape[1]
    positions = np.array(_QUANTILES) * (n - 1)
    lower = np.floor(positions).astype(np.intp)
    upper = np.minimum(lower + 1, n - 1)
    stacked.partition(np.unique(np.concatenate([lower, upper])), axis=1)
    out = np.empty((stacked.shape[0], len(_QUANTILES)), dtype=np.float64)
    for column, (low, high, position) in enumerate(
        zip(lower.tolist(), upper.tolist(), positions.tolist(), strict=True)
    ):
        a = stacked[:, low]
        b = stacked[:, high]
        t = position - low
        # numpy's _lerp: from the nearer end, so that t = 1 gives b exactly.
        out[:, column] = b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t
    return out


@dataclass(slots=True)
class _Remembered:
    """What a scrape keeps of one series for the next: its label text and its
    quantiles with the ``(total_count, len)`` of the window they describe."""

    labels: str
    identity: frozenset[tuple[str, str]]
    quantiles_at: tuple[int, int] = (-1, -1)
    quantiles: tuple[float, ...] = ()


@dataclass(slots=True)
class _Row:
    """One series' numbers, read on the loop."""

    labels: str
    size: int
    total: int
    mean: float
    ci: tuple[float, float] | None
    status: str
    remembered: _Remembered


class Exposition:
    """``/metrics`` of one daemon, with what it remembers between scrapes.

    All of a scrape runs on the event loop, a chunk of series at a time with a
    yield in between: handing the Python-heavy part to a worker thread measured
    worse, as ingest's every ``recv`` releases the GIL and then waits for the
    worker to give it back (the convoy effect), which cost a saturated ingest a
    quarter of its rate at 1000 series for a scrape of ~20 ms of CPU.
    """

    def __init__(self, daemon: Daemon, chunk: int = _CHUNK) -> None:
        self._daemon = daemon
        self._chunk = chunk
        self._remembered: dict[str, _Remembered] = {}
        self._lock = asyncio.Lock()

    async def scrape(self, accept: str = "") -> tuple[bytes, str]:
        """The body and content type for a scraper's ``Accept`` header (OpenMetrics
        when it asks for it, else the Prometheus text format 0.0.4)."""
        openmetrics, content_type = negotiate(accept)
        async with self._lock:
            families = _SeriesFamilies()
            for _ in self._gather(families):
                await asyncio.sleep(0)
            others = _other_families(self._daemon)
            return render([*families, *others], openmetrics=openmetrics), content_type

    def scrape_now(self, accept: str = "") -> tuple[bytes, str]:
        """:meth:`scrape` in one go on the calling thread (no event loop needed)."""
        openmetrics, content_type = negotiate(accept)
        families = _SeriesFamilies()
        for _ in self._gather(families):
            pass
        others = _other_families(self._daemon)
        return render([*families, *others], openmetrics=openmetrics), content_type

    def _gather(self, families: _SeriesFamilies) -> Iterator[None]:
        """Add every series to ``families``; yields after each chunk."""
        everything = list(self._daemon.store)
        seen: set[frozenset[tuple[str, str]]] = set()
        for start in range(0, len(everything), self._chunk):
            rows: list[_Row] = []
            # Windows whose quantiles are due, by length: one partition per length.
            due: dict[int, list[tuple[_Row, npt.NDArray[np.float64]]]] = {}
            for series in everything[start : start + self._chunk]:
                row = self._row(series, seen)
                rows.append(row)
                if row.size and row.remembered.quantiles_at != (row.total, row.size):
                    due.setdefault(row.size, []).append(
                        (row, series.window.unordered())
                    )
            for group in due.values():
                table = quantiles(np.stack([view for _, view in group])).tolist()
                for (row, _), values in zip(group, table, strict=True):
                    row.remembered.quantiles = tuple(values)
                    row.remembered.quantiles_at = (row.total, row.size)
            families.add(rows)
            if start + self._chunk < len(everything):
                yield
        if len(self._remembered) > 2 * len(everything) + 1024:
            self._remembered = {
                s.key: self._remembered[s.key]
                for s in everything
                if s.key in self._remembered
            }

    def _row(self, series: Series, seen: set[frozenset[tuple[str, str]]]) -> _Row:
        daemon = self._daemon
        remembered = self._remembered.get(series.key)
        if remembered is None:
            labels = series_labels(series)
            remembered = _Remembered(
                label_pairs(labels.items()), frozenset(labels.items())
            )
            self._remembered[series.key] = remembered
        text = remembered.labels
        if remembered.identity in seen:
            labels = {**series_labels(series), "series": series.key}
            text = label_pairs(labels.items())
            seen.add(frozenset(labels.items()))
        else:
            seen.add(remembered.identity)
        window = series.window
        statistics = daemon.config.statistics
        return _Row(
            labels=text,
            size=len(window),
            total=window.total_count,
            mean=window.mean(),
            ci=interval(window, statistics.confidence_level, statistics.min_samples),
            status=daemon.evaluator.status_of(series),
            remembered=remembered,
        )


class _SeriesFamilies:
    """The per-series families, filled a chunk of rows at a time. The hot loop
    of a scrape, so its lines are written with local f-strings rather than
    through :meth:`Family.add`."""

    def __init__(self) -> None:
        self.mean = Family(
            "perfwarden_series_mean", "gauge", "Mean of the series' rolling window."
        )
        self.ci_low = Family(
            "perfwarden_series_ci_low",
            "gauge",
            "Lower end of the Student-t confidence interval of the window's mean "
            "(absent below statistics.min_samples).",
        )
        self.ci_high = Family(
            "perfwarden_series_ci_high",
            "gauge",
            "Upper end of the Student-t confidence interval of the window's mean.",
        )
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
        self.quantile = Family(
            "perfwarden_series_quantile",
            "gauge",
            "Quantile (0.5, 0.95, 0.99) of the series' rolling window.",
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
        yield from (
            self.mean,
            self.ci_low,
            self.ci_high,
            self.samples,
            self.received,
            self.quantile,
            self.alert_state,
            self.alert_level,
        )

    def add(self, rows: list[_Row]) -> None:
        fmt = format_value
        samples = self.samples.lines
        received = self.received.lines
        mean = self.mean.lines
        quantile = self.quantile.lines
        ci_low = self.ci_low.lines
        ci_high = self.ci_high.lines
        alert_state = self.alert_state.lines
        alert_level = self.alert_level.lines
        for row in rows:
            labels = row.labels
            samples.append(f"perfwarden_series_samples{{{labels}}} {row.size}.0\n")
            received.append(
                f"perfwarden_series_received_samples_total{{{labels}}} {row.total}.0\n"
            )
            if row.size:
                mean.append(f"perfwarden_series_mean{{{labels}}} {fmt(row.mean)}\n")
                quantile.extend(
                    f'perfwarden_series_quantile{{{labels},quantile="{name}"}} '
                    f"{fmt(value)}\n"
                    for name, value in zip(
                        _QUANTILE_LABELS, row.remembered.quantiles, strict=True
                    )
                )
            if row.ci is not None:
                low, high = row.ci
                ci_low.append(f"perfwarden_series_ci_low{{{labels}}} {fmt(low)}\n")
                ci_high.append(f"perfwarden_series_ci_high{{{labels}}} {fmt(high)}\n")
            if row.status == "unconfigured":
                continue
            alert_state.extend(
                f'perfwarden_alert_state{{{labels},state="{state}"}} '
                f"{'1.0' if state == row.status else '0.0'}\n"
                for state in ALERT_STATES
            )
            level = ALERT_LEVELS.get(row.status, 0)
            alert_level.append(f"perfwarden_alert_level{{{labels}}} {level}.0\n")


def _other_families(daemon: Daemon) -> list[Family]:
    """The daemon-wide families (a few dozen samples; read on the loop)."""
    return [
        _thresholds(daemon),
        *_knobs(daemon),
        *_ingest(daemon),
        *_plugins(daemon),
        *_reloads(daemon),
        *_daemon(daemon),
        *_process(),
    ]


def _labels(**labels: str) -> str:
    return label_pairs(labels.items())


def _thresholds(daemon: Daemon) -> Family:
    family = Family(
        "perfwarden_metric_threshold",
        "gauge",
        "Configured target, warning and critical level of a metric.",
    )
    for name, metric in daemon.config.metrics.items():
        for level in ("target", "warning", "critical"):
            value = getattr(metric, level)
            if value is not None:
                family.add(_labels(metric=name, level=level), value)
    return family


def _knobs(daemon: Daemon) -> list[Family]:
    values = Family(
        "perfwarden_knob_value", "gauge", "Current value of a numeric knob."
    )
    choices = Family(
        "perfwarden_knob_choice",
        "gauge",
        "1 for the current choice of a choice knob, 0 for its other choices.",
    )
    knobs = daemon.knobs
    for name, spec in knobs.specs.items():
        value = knobs.get(name)
        if spec.choices is not None:
            for choice in spec.choices:
                choices.add(_labels(knob=name, choice=str(choice)), choice == value)
        elif isinstance(value, int | float):
            values.add(_labels(knob=name), value)
    version = Family(
        "perfwarden_knobs_version",
        "gauge",
        "Knob set version (bumped on every change).",
    )
    version.add("", knobs.version)
    return [values, choices, version]


def _ingest(daemon: Daemon) -> list[Family]:
    counters = daemon.ingestor.counters
    out: list[Family] = []
    for name, value, help_text in (
        ("received_lines", counters.received, "Lines received on the ingest sockets."),
        ("accepted_lines", counters.accepted, "Lines stored in a series."),
        ("ignored_lines", counters.ignored, "DogStatsD events and service checks."),
        ("datagrams", counters.datagrams, "Datagrams read from metrics.sock."),
        ("bytes", counters.bytes, "Payload bytes read from the ingest sockets."),
    ):
        family = Family(f"perfwarden_ingest_{name}", "counter", help_text)
        family.add("", value)
        out.append(family)
    for name, by_reason, help_text in (
        ("malformed_lines", counters.malformed, "Malformed lines, by reason."),
        ("dropped_lines", counters.dropped, "Lines dropped, by reason."),
    ):
        family = Family(f"perfwarden_ingest_{name}", "counter", help_text)
        for reason, count in sorted(by_reason.items()):
            family.add(_labels(reason=reason), count)
        out.append(family)
    connections = Family(
        "perfwarden_ingest_connections",
        "counter",
        "Connections to metrics.stream.sock, accepted or refused (over the limit).",
    )
    connections.add(_labels(result="accepted"), counters.connections_accepted)
    connections.add(_labels(result="refused"), counters.connections_refused)
    open_now = Family(
        "perfwarden_ingest_open_connections",
        "gauge",
        "Open metrics.stream.sock connections.",
    )
    open_now.add("", counters.connections_open)
    return [*out, connections, open_now]


def _plugins(daemon: Daemon) -> list[Family]:
    actions = Family(
        "perfwarden_plugin_actions",
        "counter",
        "Optimizer actions per plugin: applied, then judged kept, reverted or "
        "inconclusive.",
    )
    counts = {
        key: Family(f"perfwarden_plugin_{key}", "counter", help_text)
        for key, help_text in (
            ("calls", "Plugin calls (load, handles, propose, apply, revert)."),
            ("proposals", "Proposals a plugin made."),
            ("failures", "Failed plugin calls (raised, timed out or garbage)."),
            ("timeouts", "Plugin calls that timed out (also counted as failures)."),
        )
    }
    states = Family(
        "perfwarden_plugin_state",
        "gauge",
        "1 for the plugin's current state, 0 for the others.",
    )
    for handle in daemon.plugins.plugins.values():
        for outcome in _PLUGIN_OUTCOMES:
            actions.add(
                _labels(plugin=handle.name, outcome=outcome),
                handle.counts.get(outcome, 0),
            )
        for key, family in counts.items():
            family.add(_labels(plugin=handle.name), handle.counts.get(key, 0))
        for state in PluginState:
            states.add(
                _labels(plugin=handle.name, state=state.value), handle.state is state
            )
    return [actions, *counts.values(), states]


def _reloads(daemon: Daemon) -> list[Family]:
    out: list[Family] = []
    reload_counts: Any = getattr(daemon, "reload_counts", None)
    if isinstance(reload_counts, dict):
        reloads = Family(
            "perfwarden_config_reloads",
            "counter",
            "Config reloads (file edit, SIGHUP, perfwarden reload), by result.",
        )
        for result in ("ok", "rejected"):
            reloads.add(_labels(result=result), reload_counts.get(result, 0))
        out.append(reloads)
    last = daemon.last_reload
    success = Family(
        "perfwarden_config_last_reload_successful",
        "gauge",
        "1 if the last reload took effect (or none was tried), 0 if it was rejected.",
    )
    success.add("", last is None or bool(last.get("ok")))
    out.append(success)
    if last is not None:
        at = Family(
            "perfwarden_config_last_reload_timestamp_seconds",
            "gauge",
            "Unix time of the last reload attempt.",
        )
        at.add("", float(last.get("at", 0.0)))
        out.append(at)
    return out


def _daemon(daemon: Daemon) -> list[Family]:
    info = Family("perfwarden_build_info", "gauge", "Always 1; the version as a label.")
    info.add(_labels(version=__version__), 1.0)
    series = Family("perfwarden_series", "gauge", "Series in the store.")
    series.add("", len(daemon.store))
    expired = Family(
        "perfwarden_series_expired",
        "counter",
        "Series forgotten after statistics.expire_after without samples.",
    )
    expired.add("", daemon.expiry.expired)
    start = Family(
        "perfwarden_start_time_seconds", "gauge", "Unix time the daemon started."
    )
    start.add("", daemon.started_at)
    ticks = Family(
        "perfwarden_evaluation_ticks", "counter", "Evaluation intervals run."
    )
    ticks.add("", daemon.ticks)
    in_flight = Family(
        "perfwarden_optimizer_in_flight",
        "gauge",
        "Actions applied and awaiting their verdict.",
    )
    in_flight.add("", len(daemon.optimizer.in_flight))
    scraped = Family(
        "perfwarden_scrape_timestamp_seconds",
        "gauge",
        "Unix time this exposition was built.",
    )
    scraped.add("", time.time())
    return [info, series, expired, start, ticks, in_flight, scraped]


def _process() -> list[Family]:
    """The standard ``process_*`` metrics every Prometheus client exports, read
    from ``/proc/self`` (the same sources as the official clients)."""
    stat = _read("/proc/self/stat")
    if stat is None:
        return []
    # Fields after the ")" that closes the command name, numbered from state (3).
    fields = stat.rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    virtual = float(fields[20])
    resident = float(int(fields[21]) * _PAGE_SIZE)
    started = _boot_time() + int(fields[19]) / _CLOCK_TICKS
    try:
        open_fds = len(os.listdir("/proc/self/fd"))
    except OSError:
        open_fds = -1
    max_fds = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    cpu_seconds = Family(
        "process_cpu_seconds",
        "counter",
        "Total user and system CPU time spent in seconds.",
    )
    cpu_seconds.add("", cpu)
    out = [cpu_seconds]
    for name, help_text, value in (
        ("process_virtual_memory_bytes", "Virtual memory size in bytes.", virtual),
        ("process_resident_memory_bytes", "Resident memory size in bytes.", resident),
        (
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            started,
        ),
        ("process_open_fds", "Number of open file descriptors.", open_fds),
        ("process_max_fds", "Maximum number of open file descriptors.", max_fds),
    ):
        family = Family(name, "gauge", help_text)
        family.add("", value)
        out.append(family)
    return out


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read()
    except OSError:
        return None


def _boot_time() -> float:
    for line in (_read("/proc/stat") or "").splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return 0.0
