"""What the control commands return, record by record: a series' statistics, a
metric's record, the alerts in report order, an action's effectiveness, the checks
of a knob value, and the sizes and offsets of paged replies.

Pure reads of the daemon (:class:`~perfwarden.readmodel.DaemonControl`); the
commands themselves are in :mod:`perfwarden.control.handlers`.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from perfwarden.alerts.machine import ACTIONS, AlertState, Level
from perfwarden.alerts.report import (
    ALERT_HEADER,
    alert_summary,
)
from perfwarden.errors import ControlError
from perfwarden.series.stats import is_non_negative_unit, summarize
from perfwarden.series.trend import label
from perfwarden.series.window import RollingWindow
from perfwarden.views.tui_layout import row_order

if TYPE_CHECKING:
    from perfwarden.alerts.machine import SeriesAlert
    from perfwarden.config.load import MetricConfig
    from perfwarden.readmodel import DaemonControl
    from perfwarden.series.store import Series

__all__ = [
    "action_unit",
    "alert_order",
    "alert_record",
    "effectiveness",
    "is_numeric",
    "json_size",
    "knob_value",
    "metric_record",
    "page_offset",
    "series_stats",
    "summary_head",
]

#: Samples a metric's aggregate over all its series (``report``) is computed from.
_AGGREGATE_SAMPLES = 100_000
#: Digits a knob value sent as text or as a JSON integer may have.
_MAX_KNOB_DIGITS = 32


def is_numeric(daemon: DaemonControl, name: str) -> bool:
    spec = daemon.knobs.specs.get(name)
    return spec is not None and spec.choices is None


def knob_value(name: str, value: float | str, *, numeric: bool) -> float | str:
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


def alert_order(daemon: DaemonControl) -> list[tuple[Series, SeriesAlert]]:
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


def alert_record(
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


def summary_head(daemon: DaemonControl, order: list[tuple[Series, SeriesAlert]]) -> str:
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


def json_size(data: Any) -> int:
    return len(json.dumps(data, separators=(",", ":")))


def page_offset(args: dict[str, Any]) -> int:
    offset = args.get("offset", 0)
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ControlError("bad_request", "'offset' must be a whole number")
    return offset


#: ``stats`` orders: as asked (by metric name, series in arrival order), or as
#: ``perfwarden top``'s table shows them.
STATS_ORDERS: Final = ("name", "top")
#: The most records a reply with a ``limit`` holds (``stats``, ``alerts``).
MAX_PAGE_LIMIT: Final = 10_000


def stats_order(args: dict[str, Any]) -> str:
    """The ``order`` of a ``stats`` request."""
    order = args.get("order", "name")
    if order not in STATS_ORDERS:
        message = f"'order' must be one of {', '.join(STATS_ORDERS)}"
        raise ControlError("bad_request", message)
    return str(order)


def page_limit(args: dict[str, Any]) -> int | None:
    """The ``limit`` of a ``stats`` or ``alerts`` request: at most that many
    records, in one page."""
    limit = args.get("limit")
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise ControlError("bad_request", "'limit' must be a whole number")
    if not 1 <= limit <= MAX_PAGE_LIMIT:
        message = f"'limit' must be from 1 to {MAX_PAGE_LIMIT}"
        raise ControlError("bad_request", message)
    return limit


def top_row(daemon: DaemonControl, series: Series) -> tuple[bool, bool, str, str]:
    """Where ``series`` goes in ``perfwarden top``'s table (without its statistics:
    sorting 10k series must not cost 10k summaries)."""
    metric = daemon.config.metrics.get(series.name)
    configured = metric is not None and (
        metric.warning is not None or metric.critical is not None
    )
    return row_order(series.name, configured=configured, series=series.key)


def action_unit(daemon: DaemonControl, action: dict[str, Any]) -> str | None:
    metric = daemon.config.metrics.get(str(action.get("metric")))
    return metric.unit if metric else None


def effectiveness(daemon: DaemonControl) -> dict[str, Any]:
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
