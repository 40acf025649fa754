"""Prometheus / OpenMetrics exposition of the daemon's live state.

Nothing here runs on the ingest path: :func:`build_families` reads the store, the
evaluator, the knobs, the ingest counters, the plugins and the last reload at scrape
time, on the daemon's event loop (the one thread that owns them), and returns
ready-made metric families. :func:`build_families_async` does the same in chunks,
yielding to the loop between them so that a scrape of many series does not hold
up ingest; the text encoding (the costly part) then runs in a worker thread on the
immutable snapshot (:class:`Snapshot`).

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
import re
import time
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from perfwarden import __version__
from perfwarden.plugin_runtime import PluginState
from perfwarden.stats import interval

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

    from perfwarden.app import Daemon
    from perfwarden.store import Series

__all__ = [
    "ALERT_LEVELS",
    "ALERT_STATES",
    "RESERVED_LABELS",
    "Snapshot",
    "build_families",
    "build_families_async",
    "encode",
    "label_name",
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
_QUANTILE_LABELS: Final = ("0.5", "0.95", "0.99")
_PERCENTS: Final = (50.0, 95.0, 99.0)
_PLUGIN_OUTCOMES: Final = ("applied", "kept", "reverted", "inconclusive")
_INVALID_LABEL_CHARS: Final = re.compile(r"[^a-zA-Z0-9_]")
#: Series summarised between two yields to the event loop.
_CHUNK: Final = 500


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


class Snapshot(Collector):
    """Metric families gathered at one scrape, plus the process metrics."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families
        self._process = ProcessCollector(registry=None)

    def collect(self) -> Iterable[Metric]:
        """The gathered families (encoding may run in any thread)."""
        yield from self.families
        yield from self._process.collect()


def encode(snapshot: Snapshot, accept: str = "") -> tuple[bytes, str]:
    """The exposition body and its content type, chosen by the ``Accept`` header
    (OpenMetrics when asked for, else the Prometheus text format 0.0.4)."""
    encoder, content_type = choose_encoder(accept)
    return encoder(snapshot), content_type


def build_families(daemon: Daemon) -> list[Metric]:
    """Every family, gathered in one go (call on the daemon's loop thread)."""
    builder = _Builder(daemon)
    for _ in builder.steps():
        pass
    return builder.families()


async def build_families_async(daemon: Daemon, chunk: int = _CHUNK) -> list[Metric]:
    """:func:`build_families`, yielding to the event loop every ``chunk`` series."""
    builder = _Builder(daemon, chunk)
    for _ in builder.steps():
        await asyncio.sleep(0)
    return builder.families()


class _Builder:
    """Fills the families step by step; each step covers at most ``chunk`` series."""

    def __init__(self, daemon: Daemon, chunk: int = _CHUNK) -> None:
        self.daemon = daemon
        self.chunk = chunk
        self.seen: set[frozenset[tuple[str, str]]] = set()
        g, c = GaugeMetricFamily, CounterMetricFamily
        self.mean = g("perfwarden_series_mean", "Mean of the series' rolling window.")
        self.ci_low = g(
            "perfwarden_series_ci_low",
            "Lower end of the Student-t confidence interval of the window's mean "
            "(absent below statistics.min_samples).",
        )
        self.ci_high = g(
            "perfwarden_series_ci_high",
            "Upper end of the Student-t confidence interval of the window's mean.",
        )
        self.samples = g(
            "perfwarden_series_samples", "Samples in the series' rolling window."
        )
        self.samples_total = c(
            "perfwarden_series_received_samples",
            "Samples the series ever received (all windows).",
        )
        self.quantile = g(
            "perfwarden_series_quantile",
            "Quantile (0.5, 0.95, 0.99) of the series' rolling window.",
        )
        self.alert_state = g(
            "perfwarden_alert_state",
            "1 for the series' current alert state, 0 for the others (series of "
            "metrics with warning or critical levels).",
        )
        self.alert_level = g(
            "perfwarden_alert_level",
            "Firing alert level of the series: 0 none, 1 warning, 2 critical.",
        )

    def steps(self) -> Iterator[None]:
        everything = list(self.daemon.store)
        for start in range(0, len(everything), self.chunk):
            chunk = everything[start : start + self.chunk]
            # One vectorised percentile call per window length, not one per series
            # (the same numbers as ``stats``: numpy's default linear method).
            by_length: dict[int, list[Series]] = {}
            for series in chunk:
                by_length.setdefault(len(series.window), []).append(series)
            quantiles: dict[int, Sequence[float]] = {}
            for length, group in by_length.items():
                if length == 0:
                    continue
                stacked = np.stack([s.window.values() for s in group])
                table = np.percentile(stacked, _PERCENTS, axis=1).T
                for series, row in zip(group, table.tolist(), strict=True):
                    quantiles[id(series)] = row
            for series in chunk:
                self._series(series, quantiles.get(id(series)))
            if start + self.chunk < len(everything):
                yield

    def _series(self, series: Series, quantiles: Sequence[float] | None) -> None:
        daemon = self.daemon
        statistics = daemon.config.statistics
        labels = series_labels(series)
        identity = frozenset(labels.items())
        if identity in self.seen:
            labels["series"] = series.key
            identity = frozenset(labels.items())
        self.seen.add(identity)
        window = series.window
        self.samples.add_sample(self.samples.name, labels, float(len(window)))
        self.samples_total.add_sample(
            self.samples_total.name + "_total", labels, float(window.total_count)
        )
        if len(window):
            self.mean.add_sample(self.mean.name, labels, window.mean())
        ci = interval(window, statistics.confidence_level, statistics.min_samples)
        if ci is not None:
            self.ci_low.add_sample(self.ci_low.name, labels, ci[0])
            self.ci_high.add_sample(self.ci_high.name, labels, ci[1])
        for quantile, value in zip(_QUANTILE_LABELS, quantiles or (), strict=False):
            self.quantile.add_sample(
                self.quantile.name, {**labels, "quantile": quantile}, value
            )
        status = daemon.evaluator.status_of(series)
        if status == "unconfigured":
            return
        for state in ALERT_STATES:
            self.alert_state.add_sample(
                self.alert_state.name,
                {**labels, "state": state},
                1.0 if state == status else 0.0,
            )
        self.alert_level.add_sample(
            self.alert_level.name, labels, float(ALERT_LEVELS.get(status, 0))
        )

    def families(self) -> list[Metric]:
        return [
            self.mean,
            self.ci_low,
            self.ci_high,
            self.samples,
            self.samples_total,
            self.quantile,
            self.alert_state,
            self.alert_level,
            _thresholds(self.daemon),
            *_knobs(self.daemon),
            *_ingest(self.daemon),
            *_plugins(self.daemon),
            *_reloads(self.daemon),
            *_daemon(self.daemon),
        ]


def _thresholds(daemon: Daemon) -> Metric:
    family = GaugeMetricFamily(
        "perfwarden_metric_threshold",
        "Configured target, warning and critical level of a metric.",
        labels=("metric", "level"),
    )
    for name, metric in daemon.config.metrics.items():
        for level in ("target", "warning", "critical"):
            value = getattr(metric, level)
            if value is not None:
                family.add_metric((name, level), value)
    return family


def _knobs(daemon: Daemon) -> list[Metric]:
    values = GaugeMetricFamily(
        "perfwarden_knob_value", "Current value of a numeric knob.", labels=("knob",)
    )
    choices = GaugeMetricFamily(
        "perfwarden_knob_choice",
        "1 for the current choice of a choice knob, 0 for its other choices.",
        labels=("knob", "choice"),
    )
    knobs = daemon.knobs
    for name, spec in knobs.specs.items():
        value = knobs.get(name)
        if spec.choices is not None:
            for choice in spec.choices:
                choices.add_metric((name, str(choice)), float(choice == value))
        elif isinstance(value, int | float):
            values.add_metric((name,), float(value))
    version = GaugeMetricFamily(
        "perfwarden_knobs_version", "Knob set version (bumped on every change)."
    )
    version.add_metric((), float(knobs.version))
    return [values, choices, version]


def _ingest(daemon: Daemon) -> list[Metric]:
    counters = daemon.ingestor.counters
    out: list[Metric] = []
    for name, value, help_text in (
        ("received_lines", counters.received, "Lines received on the ingest sockets."),
        ("accepted_lines", counters.accepted, "Lines stored in a series."),
        ("ignored_lines", counters.ignored, "DogStatsD events and service checks."),
        ("datagrams", counters.datagrams, "Datagrams read from metrics.sock."),
        ("bytes", counters.bytes, "Payload bytes read from the ingest sockets."),
    ):
        family = CounterMetricFamily(f"perfwarden_ingest_{name}", help_text)
        family.add_metric((), float(value))
        out.append(family)
    for name, by_reason, help_text in (
        ("malformed_lines", counters.malformed, "Malformed lines, by reason."),
        ("dropped_lines", counters.dropped, "Lines dropped, by reason."),
    ):
        family = CounterMetricFamily(
            f"perfwarden_ingest_{name}", help_text, labels=("reason",)
        )
        for reason, count in sorted(by_reason.items()):
            family.add_metric((reason,), float(count))
        out.append(family)
    connections = CounterMetricFamily(
        "perfwarden_ingest_connections",
        "Connections to metrics.stream.sock, accepted or refused (over the limit).",
        labels=("result",),
    )
    connections.add_metric(("accepted",), float(counters.connections_accepted))
    connections.add_metric(("refused",), float(counters.connections_refused))
    open_now = GaugeMetricFamily(
        "perfwarden_ingest_open_connections", "Open metrics.stream.sock connections."
    )
    open_now.add_metric((), float(counters.connections_open))
    return [*out, connections, open_now]


def _plugins(daemon: Daemon) -> list[Metric]:
    actions = CounterMetricFamily(
        "perfwarden_plugin_actions",
        "Optimizer actions per plugin: applied, then judged kept, reverted or "
        "inconclusive.",
        labels=("plugin", "outcome"),
    )
    counts: dict[str, CounterMetricFamily] = {
        key: CounterMetricFamily(
            f"perfwarden_plugin_{key}", help_text, labels=("plugin",)
        )
        for key, help_text in (
            ("calls", "Plugin calls (load, handles, propose, apply, revert)."),
            ("proposals", "Proposals a plugin made."),
            ("failures", "Failed plugin calls (raised, timed out or garbage)."),
            ("timeouts", "Plugin calls that timed out (also counted as failures)."),
        )
    }
    states = GaugeMetricFamily(
        "perfwarden_plugin_state",
        "1 for the plugin's current state, 0 for the others.",
        labels=("plugin", "state"),
    )
    for handle in daemon.plugins.plugins.values():
        for outcome in _PLUGIN_OUTCOMES:
            actions.add_metric(
                (handle.name, outcome), float(handle.counts.get(outcome, 0))
            )
        for key, family in counts.items():
            family.add_metric((handle.name,), float(handle.counts.get(key, 0)))
        for state in PluginState:
            states.add_metric((handle.name, state.value), float(handle.state is state))
    return [actions, *counts.values(), states]


def _reloads(daemon: Daemon) -> list[Metric]:
    out: list[Metric] = []
    reload_counts: Any = getattr(daemon, "reload_counts", None)
    if isinstance(reload_counts, dict):
        reloads = CounterMetricFamily(
            "perfwarden_config_reloads",
            "Config reloads (file edit, SIGHUP, perfwarden reload), by result.",
            labels=("result",),
        )
        for result in ("ok", "rejected"):
            reloads.add_metric((result,), float(reload_counts.get(result, 0)))
        out.append(reloads)
    last = daemon.last_reload
    success = GaugeMetricFamily(
        "perfwarden_config_last_reload_successful",
        "1 if the last reload took effect (or none was tried), 0 if it was rejected.",
    )
    success.add_metric((), 1.0 if last is None or last.get("ok") else 0.0)
    out.append(success)
    if last is not None:
        at = GaugeMetricFamily(
            "perfwarden_config_last_reload_timestamp_seconds",
            "Unix time of the last reload attempt.",
        )
        at.add_metric((), float(last.get("at", 0.0)))
        out.append(at)
    return out


def _daemon(daemon: Daemon) -> list[Metric]:
    info = GaugeMetricFamily(
        "perfwarden_build_info",
        "Always 1; the version as a label.",
        labels=("version",),
    )
    info.add_metric((__version__,), 1.0)
    series = GaugeMetricFamily("perfwarden_series", "Series in the store.")
    series.add_metric((), float(len(daemon.store)))
    start = GaugeMetricFamily(
        "perfwarden_start_time_seconds", "Unix time the daemon started."
    )
    start.add_metric((), daemon.started_at)
    ticks = CounterMetricFamily(
        "perfwarden_evaluation_ticks", "Evaluation intervals run."
    )
    ticks.add_metric((), float(daemon.ticks))
    in_flight = GaugeMetricFamily(
        "perfwarden_optimizer_in_flight", "Actions applied and awaiting their verdict."
    )
    in_flight.add_metric((), float(len(daemon.optimizer.in_flight)))
    scraped = GaugeMetricFamily(
        "perfwarden_scrape_timestamp_seconds", "Unix time this exposition was built."
    )
    scraped.add_metric((), time.time())
    return [info, series, start, ticks, in_flight, scraped]
