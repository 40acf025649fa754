"""The control commands, one function each; no socket code here.

Each handler takes the request's ``args`` and returns JSON-ready data; the server
wraps it in the protocol's envelope. ``mutating`` commands are authorized by the
server before they run.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import platform
import time
from typing import TYPE_CHECKING, Any

import psutil

from perfwarden import __version__
from perfwarden.alerts.machine import AlertState
from perfwarden.alerts.report import (
    action_line,
    alert_block,
    monitoring_dashboard,
    validation_results,
)
from perfwarden.config.durations import parse_duration
from perfwarden.control.records import (
    action_unit,
    alert_order,
    alert_record,
    effectiveness,
    is_numeric,
    json_size,
    knob_value,
    metric_record,
    page_limit,
    page_offset,
    series_stats,
    stats_order,
    summary_head,
    top_row,
)
from perfwarden.control.server import Command
from perfwarden.errors import ControlError
from perfwarden.logs.setup import get_logger, log_stats
from perfwarden.optimize.knobs import adjustment
from perfwarden.optimize.learning import LearningFormatError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from perfwarden.readmodel import DaemonControl

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
#: The longest silence: longer ones are a mistake (``--for 1e300``), not a wish.
MAX_SILENCE = 366 * 86400.0
MAX_SILENCE_TEXT = "366 days (8784h)"


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
                # Transitions made, their log lines and subscribers still to come.
                "events_waiting": daemon.publisher.waiting,
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
        offset = page_offset(args)
        limit = page_limit(args)
        unknown = [name for name in names if not store.by_name(name)]
        everything = [series for name in names for series in store.by_name(name)]
        if stats_order(args) == "top":
            everything.sort(key=lambda series: top_row(daemon, series))
        records: list[dict[str, Any]] = []
        budget = _PAGE_BYTES
        end = offset
        slice_started = time.perf_counter()
        for series in everything[offset:]:
            if records and budget <= 0:
                break
            if limit is not None and len(records) >= limit:
                break
            record = series_stats(daemon, series)
            if recent:
                size = min(recent, len(series.window))
                record["recent"] = series.window.tail(size).tolist() if size else []
            records.append(record)
            end += 1
            budget -= json_size(record)
            if time.perf_counter() - slice_started >= _STATS_SLICE:
                await asyncio.sleep(0)  # let ingest and other clients in
                slice_started = time.perf_counter()
        more = end < len(everything) and limit is None  # a limit asks for one page
        return {
            "series": records,
            "unknown": unknown,
            "total": len(everything),
            "next_offset": end if more else None,
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
        offset = page_offset(args)
        limit = page_limit(args)
        order = alert_order(daemon)
        active = daemon.evaluator.silences.active()
        clocks = time.monotonic(), time.time()
        records: list[dict[str, Any]] = []
        blocks: list[str] = []
        budget = _PAGE_BYTES
        slice_started = time.perf_counter()
        for series, alert in order[offset:]:
            if records and budget <= 0:
                break
            if limit is not None and len(records) >= limit:
                break
            record = alert_record(daemon, series, alert, clocks)
            records.append(record)
            if record["state"] == "firing" and not record["silenced"]:
                blocks.append(alert_block(record))
                budget -= json_size(blocks[-1])
            budget -= json_size(record)
            if time.perf_counter() - slice_started >= _STATS_SLICE:
                await asyncio.sleep(0)  # let ingest and other clients in
                slice_started = time.perf_counter()
        # The silences follow the alerts in the same pages (offsets count both):
        # twenty of them with 60 KB comments would fill a reply on their own.
        silences: list[dict[str, Any]] = []
        for silence in active[max(0, offset - len(order)) :]:
            if (records or silences) and budget <= 0:
                break
            if limit is not None and len(records) + len(silences) >= limit:
                break
            silences.append(silence.as_dict())
            budget -= json_size(silences[-1])
        end = offset + len(records) + len(silences)
        head = summary_head(daemon, order) if offset == 0 else ""
        total = len(order) + len(active)
        firing = sum(1 for _, alert in order if alert.state is AlertState.FIRING)
        more = end < total and limit is None  # a limit asks for one page
        return {
            "alerts": records,
            "report": head + "".join(blocks),
            "silences": silences,
            "total": total,
            # What a page of a long list cannot count itself (``top``'s panel).
            "alerts_total": len(order),
            "firing_total": firing,
            "next_offset": end if more else None,
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
        offset = page_offset(args)
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
            budget -= json_size(entry) + json_size(line)
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
                "optimization_effectiveness": effectiveness(daemon),
                "recent_actions_summary": [
                    action_line(action, action_unit(daemon, action))
                    for action in recent
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
        value = knob_value(name, value, numeric=is_numeric(daemon, name))
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
        weight = args.get("weight")
        if weight is None:  # no --weight: the configured one
            weight = daemon.config.optimizer.fleet_prior_weight
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
