"""The control commands, one function each; no socket code here.

Each handler takes the request's ``args`` and returns JSON-ready data; the server
wraps it in the protocol's envelope. ``mutating`` commands are authorized by the
server before they run.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import os
import platform
import time
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import psutil

from perfwarden import __version__
from perfwarden.alerts.machine import ACTIONS, AlertState, Level
from perfwarden.alerts.report import (
    ALERT_HEADER,
    action_line,
    alert_block,
    alert_summary,
    monitoring_dashboard,
    validation_results,
)
from perfwarden.config.durations import parse_duration
from perfwarden.control.server import Command
from perfwarden.errors import ControlError
from perfwarden.logs.setup import get_logger, log_stats
from perfwarden.optimize.knobs import adjustment
from perfwarden.optimize.learning import LearningFormatError
from perfwarden.series.stats import is_non_negative_unit, summarize
from perfwarden.series.trend import label
from perfwarden.series.window import RollingWindow

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from perfwarden.alerts.machine import SeriesAlert
    from perfwarden.config.load import MetricConfig
    from perfwarden.readmodel import DaemonControl
    from perfwarden.series.store import Series

__all__ = ["MAX_SILENCE", "build_commands", "metric_record", "series_stats"]

#: The most raw values ``stats`` returns per series (``recent`` argument).
_MAX_RECENT = 1000
#: What one page of ``stats``, ``alerts`` or ``report`` may hold, as JSON (each
#: record measured: a name may be 8 KB and escaping makes a byte six). Pages keep
#: each reply well under the protocol's MAX_LINE, and a client reading 10k series
#: gets them in pieces, not in one multi-megabyte reply computed in one go.
_PAGE_BYTES = 256 * 1024
#: Loop time a paged command takes before it lets the loop run (ingest, clients).
_STATS_SLICE = 0.005
#: Samples a metric's aggregate over all its series (``report``) is computed from.
_AGGREGATE_SAMPLES = 100_000
#: The longest silence: longer ones are a mistake (``--for 1e300``), not a wish.
MAX_SILENCE = 366 * 86400.0
MAX_SILENCE_TEXT = "366 days (8784h)"
#: Digits a knob value sent as text or as a JSON integer may have.
_MAX_KNOB_DIGITS = 32


def _is_numeric(daemon: DaemonControl, name: str) -> bool:
    spec = daemon.knobs.specs.get(name)
    return spec is not None and spec.choices is None


def _knob_value(name: str, value: float | str, *, numeric: bool) -> float | str:
    """The value a ``knobs.set`` request asks for, checked before it reaches the knob.

    Booleans are refused (JSON's ``true`` is an ``int`` in Python); numbers must be
    finite and short (a 4000-digit integer cannot become a float); a numeric knob
    takes a numeric string.
    """
    if isinstance(value, bool):
        raise ControlError(
            "bad_request", f"{name} needs a number or a choice, not {value}"
        )
    if isinstance(value, str):
        if not numeric:
            return value
        if len(value) > _MAX_KNOB_DIGITS:
            raise ControlError("bad_request", f"{name} needs a number (too long)")
        try:
            value = float(value)
        except ValueError:
            raise ControlError("bad_request", f"{name} needs a number") from None
    elif isinstance(value, int) and len(str(abs(value))) > _MAX_KNOB_DIGITS:
        raise ControlError("bad_request", f"{name} needs a number (too many digits)")
    if isinstance(value, float) and not math.isfinite(value):
        raise ControlError("bad_request", f"{name} needs a finite number")
    return value


def _metric_fields(metric: MetricConfig | None) -> dict[str, Any]:
    return {
        "unit": metric.unit if metric else None,
        "bound": metric.bound.value if metric else None,
        "target": metric.target if metric else None,
        "warning": metric.warning if metric else None,
        "critical": metric.critical if metric else None,
    }


def _record(daemon: DaemonControl, name: str, window: RollingWindow) -> dict[str, Any]:
    config = daemon.config
    statistics = config.statistics
    metric = config.metrics.get(name)
    summary = summarize(
        window,
        statistics.confidence_level,
        statistics.min_samples,
        non_negative=metric is not None and is_non_negative_unit(metric.unit),
    )
    trend = label(
        window.values(),
        bound=metric.bound if metric else None,
        target=metric.target if metric else None,
        interval=summary.interval,
    )
    return {
        "metric": name,
        **summary.as_dict(),
        **_metric_fields(metric),
        "trend": trend,
    }


def series_stats(daemon: DaemonControl, series: Series) -> dict[str, Any]:
    """The ``stats`` record of one series."""
    window = series.window
    record = _record(daemon, series.name, window)
    record.update(
        type=series.type.value,
        tags=series.tag_dict,
        series=series.key,
        last=float(window.tail(1)[0]) if len(window) else None,
        status=daemon.evaluator.status_of(series),
        window=window.capacity,
        total_samples=window.total_count,
    )
    return record


def metric_record(daemon: DaemonControl, name: str) -> dict[str, Any]:
    """One metric's aggregate over all its series, with its best ``group_by`` value."""
    all_series = daemon.store.by_name(name)
    # The newest samples of each series, at most _AGGREGATE_SAMPLES in all: a
    # metric split over 10k series must not cost a 10-million-sample copy.
    share = max(1, _AGGREGATE_SAMPLES // max(len(all_series), 1))
    values = [s.window.tail(min(share, len(s.window))) for s in all_series]
    joined = np.concatenate(values) if values else np.empty(0)
    window = RollingWindow(max(len(joined), 1))
    window.extend(joined)
    record = _record(daemon, name, window)
    statuses = {daemon.evaluator.status_of(s) for s in all_series}
    for status in ("critical", "warning", "pending", "no_data", "ok"):
        if status in statuses:
            record["status"] = status
            break
    else:
        record["status"] = next(iter(statuses), "insufficient_data")
    record["series_count"] = len(all_series)
    record["best_series"] = _best_series(daemon, name, all_series)
    record["judged"] = _judged(daemon, all_series, str(record["status"]))
    return record


def _judged(
    daemon: DaemonControl, all_series: list[Series], status: str
) -> dict[str, Any] | None:
    """The observation the status was judged on (of a series with that status):
    the interval of the newest ``evaluation.window`` samples on the ``ci`` basis,
    which is not the interval of the whole window the report also shows."""
    evaluation = daemon.config.evaluation
    for series in all_series:
        observed = daemon.evaluator.observations.get(series.key)
        if observed is None or daemon.evaluator.status_of(series) != status:
            continue
        return {
            "basis": evaluation.basis.value,
            "newest": min(len(series.window), evaluation.window),
            "low": observed[0],
            "high": observed[1],
            "series": series.key,
        }
    return None


def _best_series(
    daemon: DaemonControl, name: str, all_series: list[Series]
) -> str | None:
    metric = daemon.config.metrics.get(name)
    if metric is None or metric.group_by is None:
        return None
    best: tuple[float, str] | None = None
    for series in all_series:
        value = series.tag_dict.get(metric.group_by)
        if value is None or len(series.window) == 0:
            continue
        mean = series.window.mean()
        score = mean if metric.bound.value == "upper" else -mean
        if best is None or score < best[0]:
            best = (score, value)
    return best[1] if best else None


#: How the alert list is ordered: the most severe first.
_LEVEL_ORDER: Final = {"critical": 0, "warning": 1, "pending": 2, "no_data": 3}


def _alert_order(daemon: DaemonControl) -> list[tuple[Series, SeriesAlert]]:
    """The series with an alert that is not ``ok``, most severe first, then by
    metric and series: cheap enough to sort 10k of them for each page."""
    found = []
    for key, alert in daemon.evaluator.alerts.items():
        if alert.state is AlertState.OK:
            continue
        series = daemon.store.get(key)
        if series is None:
            continue
        level = alert.level.value if alert.level else alert.state.value
        found.append(((_LEVEL_ORDER.get(level, 9), series.name, key), series, alert))
    found.sort(key=lambda item: item[0])
    return [(series, alert) for _, series, alert in found]


def _alert_record(
    daemon: DaemonControl,
    series: Series,
    alert: SeriesAlert,
    clocks: tuple[float, float],
) -> dict[str, Any]:
    """What ``alerts`` says of one series' alert; ``clocks``: monotonic and wall now."""
    mono_now, wall_now = clocks
    evaluator = daemon.evaluator
    metric = daemon.config.metrics.get(series.name)
    observed = evaluator.observations.get(series.key)
    level = alert.level
    threshold = None
    if metric is not None and level is not None:
        threshold = metric.critical if level is Level.CRITICAL else metric.warning
    return {
        "metric": series.name,
        "tags": series.tag_dict,
        "series": series.key,
        "state": alert.state.value,
        "level": level.value if level else alert.state.value,
        "value": (observed[0] + observed[1]) / 2 if observed else None,
        "observed": list(observed) if observed else None,
        "basis": daemon.config.evaluation.basis.value,
        "threshold": threshold,
        "bound": metric.bound.value if metric else None,
        "unit": metric.unit if metric else None,
        "action": ACTIONS.get(level) if level else None,
        "since": wall_now - (mono_now - alert.since),
        "fired_at": (
            wall_now - (mono_now - alert.fired_at) if alert.fired_at else None
        ),
        "silenced": evaluator.silences.covers(series.name, series.tag_dict),
    }


def _summary_head(
    daemon: DaemonControl, order: list[tuple[Series, SeriesAlert]]
) -> str:
    """How the alert summary starts: its header when an unsilenced alert fires,
    else the whole no-alert text (all clear, or which metrics are not)."""
    silences = daemon.evaluator.silences
    if any(
        alert.state is AlertState.FIRING
        and not silences.covers(series.name, series.tag_dict)
        for series, alert in order
    ):
        return ALERT_HEADER
    return alert_summary(
        [],
        [
            metric_record(daemon, name)
            for name, metric in daemon.config.metrics.items()
            if metric.target is not None and daemon.store.by_name(name)
        ],
    )


def _json_size(data: Any) -> int:
    return len(json.dumps(data, separators=(",", ":")))


def _offset(args: dict[str, Any]) -> int:
    offset = args.get("offset", 0)
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ControlError("bad_request", "'offset' must be a whole number")
    return offset


def _unit(daemon: DaemonControl, action: dict[str, Any]) -> str | None:
    metric = daemon.config.metrics.get(str(action.get("metric")))
    return metric.unit if metric else None


def _effectiveness(daemon: DaemonControl) -> dict[str, Any]:
    """The seed's ``optimization_effectiveness`` lines from the action history."""
    history = list(daemon.optimizer.history)
    judged = [h for h in history if h["verdict"] != "inconclusive"]
    kept = [h for h in history if h["verdict"] == "kept"]
    if not history:
        return {"actions": 0}
    effects = [h["effect_percent"] for h in kept if h["effect_percent"] is not None]
    out: dict[str, Any] = {
        "actions": len(history),
        "kept": len(kept),
        "reverted": sum(1 for h in history if h["verdict"] == "reverted"),
        "inconclusive": len(history) - len(judged),
    }
    if judged:
        rate = len(kept) / len(judged) * 100
        out["automated_threshold_response"] = f"{rate:.0f}% success rate"
    if effects:
        out["average_improvement_when_kept"] = f"{sum(effects) / len(effects):.1f}%"
    return out


def build_commands(daemon: DaemonControl) -> dict[str, Command]:
    """Every control command of ``daemon``, by name."""

    async def ping(args: dict[str, Any]) -> dict[str, Any]:
        return {"pong": True, "pid": os.getpid()}

    async def status(args: dict[str, Any]) -> dict[str, Any]:
        memory = psutil.Process().memory_info()
        config = daemon.config
        firing = sum(
            1 for a in daemon.evaluator.alerts.values() if a.state is AlertState.FIRING
        )
        return {
            "version": __version__,
            "pid": os.getpid(),
            "uptime_seconds": round(daemon.uptime(), 3),
            "started_at": daemon.started_at,
            "config": {
                "path": str(daemon.config_path),
                "source": config.source,
                "sha256": config.sha256,
                "metrics": len(config.metrics),
                "last_reload": daemon.last_reload,
            },
            "socket_dir": str(daemon.socket_dir),
            "state_dir": str(daemon.state_dir),
            "ingest": daemon.ingestor.counters.as_dict(),
            "control": daemon.control_counters.as_dict(),
            "loop_errors": daemon.loop_errors.as_dict(),
            "http": dict(daemon.http.counters) if daemon.http else None,
            "log": log_stats(),
            "series": len(daemon.store),
            "series_expired": daemon.expiry.expired,
            "recording": daemon.recorder.status(),
            "set_members_overflow": daemon.store.set_overflow,
            "shedding_new_series": daemon.store.shedding,
            "memory": {"rss_bytes": memory.rss, "rss_mb": round(memory.rss / 2**20, 1)},
            "loop": daemon.loop_watch.status(),
            "evaluation": {
                "ticks": daemon.ticks,
                "evaluations": daemon.evaluator.evaluations,
                "alerts_firing": firing,
            },
            "plugins": [
                {"name": h.name, "state": h.state.value}
                for h in daemon.plugins.plugins.values()
            ],
            "optimizer": daemon.optimizer.status(),
            "learning": {"fleet_import": daemon.learning.fleet_import},
            "alertmanager": daemon.alertmanager.status(),
            "sampler": daemon.sampler.status(),
            "state": daemon.state.status(),
        }

    def wanted_names(args: dict[str, Any]) -> list[str]:
        wanted = args.get("metrics") or []
        if not isinstance(wanted, list) or not all(isinstance(m, str) for m in wanted):
            raise ControlError("bad_request", "'metrics' must be a list of names")
        return wanted

    async def stats(args: dict[str, Any]) -> dict[str, Any]:
        store = daemon.store
        names = wanted_names(args) or store.names()
        recent = args.get("recent", 0)
        if not isinstance(recent, int) or not 0 <= recent <= _MAX_RECENT:
            message = f"'recent' must be an integer from 0 to {_MAX_RECENT}"
            raise ControlError("bad_request", message)
        offset = _offset(args)
        unknown = [name for name in names if not store.by_name(name)]
        everything = [series for name in names for series in store.by_name(name)]
        records: list[dict[str, Any]] = []
        budget = _PAGE_BYTES
        end = offset
        slice_started = time.perf_counter()
        for series in everything[offset:]:
            if records and budget <= 0:
                break
            record = series_stats(daemon, series)
            if recent:
                size = min(recent, len(series.window))
                record["recent"] = series.window.tail(size).tolist() if size else []
            records.append(record)
            end += 1
            budget -= _json_size(record)
            if time.perf_counter() - slice_started >= _STATS_SLICE:
                await asyncio.sleep(0)  # let ingest and other clients in
                slice_started = time.perf_counter()
        return {
            "series": records,
            "unknown": unknown,
            "total": len(everything),
            "next_offset": end if end < len(everything) else None,
            "paged": ["series"],
        }

    async def reload(args: dict[str, Any]) -> dict[str, Any]:
        outcome = await daemon.reload()
        if not outcome.ok:
            raise ControlError("rejected", "\n".join(outcome.errors))
        return {
            "changes": outcome.changes,
            "warnings": outcome.warnings,
            "sha256": daemon.config.sha256,
        }

    async def alerts(args: dict[str, Any]) -> dict[str, Any]:
        offset = _offset(args)
        order = _alert_order(daemon)
        active = daemon.evaluator.silences.active()
        clocks = time.monotonic(), time.time()
        records: list[dict[str, Any]] = []
        blocks: list[str] = []
        budget = _PAGE_BYTES
        slice_started = time.perf_counter()
        for series, alert in order[offset:]:
            if records and budget <= 0:
                break
            record = _alert_record(daemon, series, alert, clocks)
            records.append(record)
            if record["state"] == "firing" and not record["silenced"]:
                blocks.append(alert_block(record))
                budget -= _json_size(blocks[-1])
            budget -= _json_size(record)
            if time.perf_counter() - slice_started >= _STATS_SLICE:
                await asyncio.sleep(0)  # let ingest and other clients in
                slice_started = time.perf_counter()
        # The silences follow the alerts in the same pages (offsets count both):
        # twenty of them with 60 KB comments would fill a reply on their own.
        silences: list[dict[str, Any]] = []
        for silence in active[max(0, offset - len(order)) :]:
            if (records or silences) and budget <= 0:
                break
            silences.append(silence.as_dict())
            budget -= _json_size(silences[-1])
        end = offset + len(records) + len(silences)
        head = _summary_head(daemon, order) if offset == 0 else ""
        total = len(order) + len(active)
        return {
            "alerts": records,
            "report": head + "".join(blocks),
            "silences": silences,
            "total": total,
            "next_offset": end if end < total else None,
            "paged": ["alerts", "report", "silences"],
        }

    async def silence(args: dict[str, Any]) -> dict[str, Any]:
        metric = args.get("metric")
        if not isinstance(metric, str) or not metric:
            raise ControlError("bad_request", "'metric' must be a metric name")
        tags = args.get("tags") or {}
        if not isinstance(tags, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in tags.items()
        ):
            raise ControlError("bad_request", "'tags' must map tag names to values")
        try:
            duration = parse_duration(args.get("for", "1h"))
        except (TypeError, ValueError) as exc:
            raise ControlError("bad_request", f"'for': {exc}") from None
        if not 0 < duration <= MAX_SILENCE:
            message = f"'for' must be positive and at most {MAX_SILENCE_TEXT}"
            raise ControlError("bad_request", message)
        comment = str(args.get("comment", ""))
        added = daemon.evaluator.silences.add(metric, tags, duration, comment)
        known = metric in daemon.config.metrics or bool(daemon.store.by_name(metric))
        return {**added.as_dict(), "known": known}

    async def unsilence(args: dict[str, Any]) -> dict[str, Any]:
        silence_id = str(args.get("id", ""))
        if not daemon.evaluator.silences.remove(silence_id):
            raise ControlError("failed", f"no active silence {silence_id!r}")
        return {"removed": silence_id}

    async def report(args: dict[str, Any]) -> dict[str, Any]:
        names = wanted_names(args) or [
            *daemon.config.metrics,
            *(n for n in daemon.store.names() if n not in daemon.config.metrics),
        ]
        unknown = [
            name
            for name in names
            if name not in daemon.config.metrics and not daemon.store.by_name(name)
        ]
        names = [name for name in names if name not in unknown]
        offset = _offset(args)
        generated = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        dashboard: dict[str, Any] = {}
        lines: dict[str, Any] = {}
        budget = _PAGE_BYTES
        end = offset
        slice_started = time.perf_counter()
        for name in names[offset:]:
            if end > offset and budget <= 0:
                break
            record = metric_record(daemon, name)
            entry = monitoring_dashboard([record], generated)["metrics"]
            line = validation_results([record])["confidence_intervals_95_percent"]
            dashboard.update(entry)
            lines.update(line)
            budget -= _json_size(entry) + _json_size(line)
            end += 1
            if time.perf_counter() - slice_started >= _STATS_SLICE:
                await asyncio.sleep(0)  # let ingest and other clients in
                slice_started = time.perf_counter()
        recent = list(daemon.optimizer.history)[-10:]
        return {
            "monitoring_dashboard": {"generated_at": generated, "metrics": dashboard},
            "learning_patterns": daemon.learning.learning_patterns(),
            "validation_results": {
                "confidence_intervals_95_percent": lines,
                "optimization_effectiveness": _effectiveness(daemon),
                "recent_actions_summary": [
                    action_line(action, _unit(daemon, action)) for action in recent
                ],
                "recent_actions": recent,
            },
            "unknown": unknown,
            "total": len(names),
            "next_offset": end if end < len(names) else None,
            "paged": [
                "monitoring_dashboard.metrics",
                "validation_results.confidence_intervals_95_percent",
            ],
        }

    async def plugins(args: dict[str, Any]) -> dict[str, Any]:
        return {
            "plugins": [
                {**h.as_dict(), "weight": daemon.learning.plugin_weight(h.name)}
                for h in daemon.plugins.plugins.values()
            ],
            "autoload": daemon.plugins.autoload,
        }

    async def knobs(args: dict[str, Any]) -> dict[str, Any]:
        return daemon.knobs.document()

    async def knob_set(args: dict[str, Any]) -> dict[str, Any]:
        name, value = args.get("name"), args.get("value")
        if not isinstance(name, str) or not isinstance(value, int | float | str):
            raise ControlError("bad_request", "'name' and 'value' are required")
        value = _knob_value(name, value, numeric=_is_numeric(daemon, name))
        reason = str(args.get("reason") or "set by hand")
        try:
            stored = daemon.knobs.set(name, value, source="manual", reason=reason)
        except KeyError as exc:
            raise ControlError("failed", str(exc.args[0])) from None
        except (TypeError, ValueError) as exc:
            raise ControlError("bad_request", str(exc)) from None
        changed = adjustment(daemon.knobs.specs[name], value, stored)
        return {
            "name": name,
            "value": stored,
            "version": daemon.knobs.version,
            "requested": value,
            "adjusted": changed.kind if changed else None,
            "message": changed.message if changed else None,
        }

    async def learning_export(args: dict[str, Any]) -> dict[str, Any]:
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        return daemon.learning.export_document(platform.node(), now)

    async def learning_import(args: dict[str, Any]) -> dict[str, Any]:
        weight = args.get("weight", 1.0)
        if not isinstance(weight, int | float) or isinstance(weight, bool):
            raise ControlError("bad_request", "'weight' must be a number")
        document = args.get("document")
        if not isinstance(document, dict):
            raise ControlError("bad_request", "'document' must be a learning export")
        try:
            imported = daemon.learning.import_priors(document, float(weight))
        except LearningFormatError as exc:
            raise ControlError("failed", str(exc)) from None
        get_logger("perfwarden.learning").info("learning.imported", **imported)
        return imported

    async def knob_watch(args: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=64)

        def push(update: dict[str, Any]) -> None:
            if queue.full():  # a slow watcher only needs the newest values
                queue.get_nowait()
            queue.put_nowait(update)

        daemon.knobs.subscribers.append(push)
        try:
            yield {"version": daemon.knobs.version, "values": daemon.knobs.values()}
            while True:
                yield await queue.get()
        finally:
            daemon.knobs.subscribers.remove(push)

    return {
        command.name: command
        for command in (
            Command("ping", ping),
            Command("status", status),
            Command("stats", stats),
            Command("alerts", alerts),
            Command("report", report),
            Command("reload", reload, mutating=True),
            Command("silence", silence, mutating=True),
            Command("unsilence", unsilence, mutating=True),
            Command("plugins", plugins),
            Command("knobs", knobs),
            Command("knobs.set", knob_set, mutating=True),
            Command("knobs.watch", knob_watch, stream=True),
            Command("learning.export", learning_export),
            Command("learning.import", learning_import, mutating=True),
        )
    }
