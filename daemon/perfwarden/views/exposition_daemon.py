"""The daemon-wide families of ``/metrics``: thresholds, knobs, ingest counters,
plugins, reloads, the daemon itself and the standard ``process_*`` metrics.

A few dozen samples, read on the event loop at scrape time; the per-series
families, the costly part, are :mod:`perfwarden.views.exposition`. Names and labels are
listed in docs/prometheus.md.
"""

from __future__ import annotations

import resource
import time
from typing import TYPE_CHECKING, Any, Final

import psutil

from perfwarden import __version__
from perfwarden.optimize.learning import PRIORS
from perfwarden.optimize.plugin_runtime import PluginState
from perfwarden.views.exposition_limits import limit_families
from perfwarden.views.exposition_text import Family, label_pairs
from perfwarden.views.exposition_units import base_unit

if TYPE_CHECKING:
    from perfwarden.readmodel import DaemonView

__all__ = ["daemon_families"]

_PLUGIN_OUTCOMES: Final = ("applied", "kept", "reverted", "inconclusive")


def daemon_families(daemon: DaemonView) -> list[Family]:
    """The daemon-wide families (a few dozen samples; read on the loop)."""
    return [
        *_thresholds(daemon),
        *_knobs(daemon),
        *_ingest(daemon),
        *limit_families(daemon),
        *_plugins(daemon),
        *_learning(daemon),
        *_reloads(daemon),
        *_alertmanager(daemon),
        *_daemon(daemon),
        *_process(),
    ]


def _labels(**labels: str) -> str:
    return label_pairs(labels.items())


def _thresholds(daemon: DaemonView) -> list[Family]:
    """Thresholds in the base unit of the metric's series, one family per unit."""
    families: dict[str, Family] = {}
    for name, metric in daemon.config.metrics.items():
        series = daemon.store.by_name(name)
        suffix, factor = base_unit(metric.unit, series[0].type.value if series else "g")
        family = families.get(suffix)
        if family is None:
            end = f"_{suffix}" if suffix else ""
            family = families[suffix] = Family(
                f"perfwarden_metric_threshold{end}",
                "gauge",
                "Configured target, warning and critical level of a metric"
                + (f" ({suffix})." if suffix else "."),
                unit=suffix,
            )
        for level in ("target", "warning", "critical"):
            value = getattr(metric, level)
            if value is not None:
                family.add(_labels(metric=name, level=level), value * factor)
    if "" not in families:
        families[""] = Family(
            "perfwarden_metric_threshold",
            "gauge",
            "Configured target, warning and critical level of a metric.",
        )
    return [families[suffix] for suffix in sorted(families)]


def _knobs(daemon: DaemonView) -> list[Family]:
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


def _ingest(daemon: DaemonView) -> list[Family]:
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


def _plugins(daemon: DaemonView) -> list[Family]:
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


def _learning(daemon: DaemonView) -> list[Family]:
    """Learned weights and verdict counts, so Prometheus can sum them over hosts."""
    learning = daemon.learning
    weights = Family(
        "perfwarden_learning_weight",
        "gauge",
        "Learned weight of a strategy (prior x Beta posterior mean / 0.5, fleet "
        "prior included).",
    )
    for strategy in sorted({*PRIORS, *learning.strategies, *learning.fleet}):
        weights.add(_labels(strategy=strategy), learning.weight_overall(strategy))
    outcomes = Family(
        "perfwarden_learning_outcomes",
        "counter",
        "Judged actions of a strategy on a metric, by verdict (kept, reverted, "
        "inconclusive), kept across restarts.",
    )
    for (strategy, metric), counts in sorted(learning.by_metric.items()):
        for outcome in ("kept", "reverted", "inconclusive"):
            outcomes.add(
                _labels(strategy=strategy, metric=metric, outcome=outcome),
                getattr(counts, outcome),
            )
    prior = Family(
        "perfwarden_learning_fleet_prior_trials",
        "gauge",
        "Pseudo-trials of a strategy imported from the fleet (weight included).",
    )
    for strategy, fleet in sorted(learning.fleet.items()):
        prior.add(_labels(strategy=strategy), fleet.trials)
    return [weights, outcomes, prior]


def _reloads(daemon: DaemonView) -> list[Family]:
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


def _alertmanager(daemon: DaemonView) -> list[Family]:
    pushes = Family(
        "perfwarden_alertmanager_notifications",
        "counter",
        "Pushes of the current alerts to an Alertmanager that it accepted.",
    )
    failures = Family(
        "perfwarden_alertmanager_notifications_failed",
        "counter",
        "Pushes to an Alertmanager that failed (refused, timed out, not 200).",
    )
    sent = Family(
        "perfwarden_alertmanager_alerts_sent",
        "counter",
        "Alerts (firing and resolved) an Alertmanager accepted.",
    )
    for url, counts in daemon.alertmanager.counts.items():
        labels = _labels(alertmanager=url)
        pushes.add(labels, counts.sent)
        failures.add(labels, counts.failed)
        sent.add(labels, counts.alerts_sent)
    return [pushes, failures, sent]


def _daemon(daemon: DaemonView) -> list[Family]:
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
    through psutil as the daemon's ``status`` does."""
    process = psutil.Process()
    try:
        with process.oneshot():
            times = process.cpu_times()
            memory = process.memory_info()
            started = process.create_time()
            open_fds = process.num_fds()
    except psutil.Error:
        return []
    max_fds = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    cpu_seconds = Family(
        "process_cpu_seconds",
        "counter",
        "Total user and system CPU time spent in seconds.",
    )
    cpu_seconds.add("", times.user + times.system)
    out = [cpu_seconds]
    for name, help_text, value in (
        ("process_virtual_memory_bytes", "Virtual memory size in bytes.", memory.vms),
        ("process_resident_memory_bytes", "Resident memory size in bytes.", memory.rss),
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
