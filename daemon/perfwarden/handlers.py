"""The control commands, one function each; no socket code here.

Each handler takes the request's ``args`` and returns JSON-ready data; the server
wraps it in the protocol's envelope. ``mutating`` commands are authorized by the
server before they run.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import psutil

from perfwarden import __version__
from perfwarden.control.server import Command
from perfwarden.errors import ControlError
from perfwarden.judge import judge
from perfwarden.stats import summarize

if TYPE_CHECKING:
    from perfwarden.app import Daemon
    from perfwarden.store import Series

__all__ = ["build_commands", "series_stats"]


def series_stats(daemon: Daemon, series: Series) -> dict[str, Any]:
    """The ``stats`` record of one series."""
    config = daemon.config
    statistics = config.statistics
    summary = summarize(
        series.window, statistics.confidence_level, statistics.min_samples
    )
    metric = config.metrics.get(series.name)
    interval = (
        None
        if summary.ci_low is None or summary.ci_high is None
        else (summary.ci_low, summary.ci_high)
    )
    window = series.window
    last = float(window.tail(1)[0]) if len(window) else None
    level = judge(
        metric, config.evaluation.basis, last=last, mean=summary.mean, interval=interval
    )
    record: dict[str, Any] = {
        "metric": series.name,
        "type": series.type.value,
        "tags": series.tag_dict,
        "series": series.key,
        **summary.as_dict(),
        "last": last,
        "unit": metric.unit if metric else None,
        "bound": metric.bound.value if metric else None,
        "target": metric.target if metric else None,
        "warning": metric.warning if metric else None,
        "critical": metric.critical if metric else None,
        "status": level.value,
        "trend": None,
        "window": window.capacity,
        "total_samples": window.total_count,
    }
    return record


def build_commands(daemon: Daemon) -> dict[str, Command]:
    """Every control command of ``daemon``, by name."""

    async def ping(args: dict[str, Any]) -> dict[str, Any]:
        return {"pong": True, "pid": os.getpid()}

    async def status(args: dict[str, Any]) -> dict[str, Any]:
        memory = psutil.Process().memory_info()
        config = daemon.config
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
            "series": len(daemon.store),
            "set_members_overflow": daemon.store.set_overflow,
            "memory": {"rss_bytes": memory.rss, "rss_mb": round(memory.rss / 2**20, 1)},
            "evaluation_ticks": daemon.ticks,
            "plugins": [],
        }

    async def stats(args: dict[str, Any]) -> dict[str, Any]:
        wanted = args.get("metrics") or []
        if not isinstance(wanted, list) or not all(isinstance(m, str) for m in wanted):
            raise ControlError("bad_request", "'metrics' must be a list of names")
        store = daemon.store
        names = wanted or store.names()
        unknown = [name for name in names if not store.by_name(name)]
        records = [
            series_stats(daemon, series)
            for name in names
            for series in store.by_name(name)
        ]
        return {"series": records, "unknown": unknown}

    async def reload(args: dict[str, Any]) -> dict[str, Any]:
        outcome = daemon.reload()
        if not outcome.ok:
            raise ControlError("rejected", "\n".join(outcome.errors))
        return {"changes": outcome.changes, "sha256": daemon.config.sha256}

    return {
        command.name: command
        for command in (
            Command("ping", ping),
            Command("status", status),
            Command("stats", stats),
            Command("reload", reload, mutating=True),
        )
    }
