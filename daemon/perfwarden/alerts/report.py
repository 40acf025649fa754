"""The seed's documents from live data: ``monitoring_dashboard``, ``validation_results``
and the alert summary, as plain data ready for YAML or JSON.

Values are formatted with their unit as the seed shows them: ``78ms`` (``1.24s`` once a
metric's scale reaches a second), ``42.3%`` for ratios and scores, ``2.34x``,
``31.2MB``; targets as ``<100ms`` (upper bound) or ``>40%`` (lower bound).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = [
    "ALERT_HEADER",
    "ALL_CLEAR",
    "action_line",
    "alert_block",
    "alert_summary",
    "format_apart",
    "format_target",
    "format_value",
    "monitoring_dashboard",
    "series_name",
    "validation_results",
]

ALL_CLEAR: Final = "✅ All performance metrics within optimal ranges"
#: The summary's first lines when alerts fire (each alert's block follows).
ALERT_HEADER: Final = "🚨 Performance Alert Summary\n" + "=" * 40
#: Statuses that are not "all clear" although no (unsilenced) alert fires.
_UNSETTLED: Final = frozenset({"pending", "warning", "critical", "no_data"})
_RATIO_UNITS: Final = frozenset({"ratio", "score", "fraction"})
_MEMORY_UNITS: Final = frozenset({"MB", "MiB", "GB", "KB", "bytes"})


def format_value(
    value: float | None, unit: str | None, scale: float | None = None, extra: int = 0
) -> str:
    """A number with its unit, the seed's way; ``scale`` picks ms vs s for timings,
    ``extra`` adds decimals (to tell apart two numbers that round alike)."""
    if value is None:
        return "-"
    if unit == "ms":
        if abs(scale if scale is not None else value) >= 1000:
            return f"{value / 1000:.{2 + extra}f}s"
        decimals = (0 if abs(value) >= 10 else 1) + extra
        return f"{value:.{decimals}f}ms"
    if unit in _RATIO_UNITS:
        return f"{value * 100:.{1 + extra}f}%"
    if unit in {"percent", "%"}:
        return f"{value:.{1 + extra}f}%"
    if unit == "x":
        return f"{value:.{2 + extra}f}x"
    if unit is not None and unit in _MEMORY_UNITS:
        return f"{value:.{1 + extra}f}{unit}"
    text = f"{value:.{4 + extra}g}"
    return f"{text}{unit}" if unit else text


def format_target(
    target: float | None, bound: str | None, unit: str | None
) -> str | None:
    """``<100ms`` for an upper bound, ``>40.0%`` for a lower one."""
    if target is None or bound is None:
        return None
    sign = "<" if bound == "upper" else ">"
    return sign + format_value(target, unit, scale=target)


def _interval_text(record: Mapping[str, Any], scale: float | None) -> str | None:
    if record.get("ci_low") is None:
        return None
    unit = record.get("unit")
    low_value, high_value = record["ci_low"], record["ci_high"]
    for extra in range(6):  # a narrow interval must not read as [x, x]
        low = format_value(low_value, unit, scale, extra)
        high = format_value(high_value, unit, scale, extra)
        if low != high or low_value == high_value:
            break
    return f"[{low}, {high}]"


def _scale(record: Mapping[str, Any]) -> float | None:
    values = [
        abs(v) for v in (record.get("mean"), record.get("target")) if v is not None
    ]
    return max(values) if values else None


def _judged_text(record: Mapping[str, Any], scale: float | None) -> str | None:
    """What the status was judged on: ``ci [a, b] of the newest 100 samples``."""
    judged = record.get("judged")
    if not judged:
        return None
    unit = record.get("unit")
    low, high = judged["low"], judged["high"]
    if judged["basis"] == "sample":
        return f"the latest sample(s), worst {format_value(low, unit, scale)}"
    if low == high:
        value = format_value(low, unit, scale)
        return f"mean {value} of the newest {judged['newest']} samples"
    interval = _interval_text({"unit": unit, "ci_low": low, "ci_high": high}, scale)
    return f"ci {interval} of the newest {judged['newest']} samples"


def monitoring_dashboard(
    metrics: Sequence[Mapping[str, Any]], generated_at: str
) -> dict[str, Any]:
    """The seed's ``monitoring_dashboard`` from per-metric aggregate records.

    Each record carries a metric's aggregate statistics (all its series together),
    its config (unit, bound, target), its trend and, where the metric has
    ``group_by``, ``best_series`` (the best tag value by mean). ``judged`` (when
    present) is the observation the status came from, shown as
    ``status_judged_on``: alerts judge the newest ``evaluation.window`` samples,
    so that interval can differ from ``confidence_interval_95`` over the window.
    """
    out: dict[str, Any] = {}
    for record in metrics:
        unit = record.get("unit")
        scale = _scale(record)
        entry: dict[str, Any] = {
            "current_average": format_value(record.get("mean"), unit, scale),
            "target": format_target(record.get("target"), record.get("bound"), unit),
            "confidence_interval_95": _interval_text(record, scale),
            "trend": record.get("trend"),
            "sample_size": record.get("sample_size", 0),
            "status": record.get("status"),
        }
        judged = _judged_text(record, scale)
        if judged is not None:
            entry["status_judged_on"] = judged
        if unit in _MEMORY_UNITS or "memory" in record["metric"]:
            entry["peak_usage"] = format_value(record.get("max"), unit, scale)
        if record.get("best_series") is not None:
            entry["best_combination"] = record["best_series"]
        out[record["metric"]] = entry
    return {"generated_at": generated_at, "metrics": out}


def validation_results(metrics: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The seed's ``confidence_intervals_95_percent`` lines: ``[a, b] - Target: <t ✅``.

    ✅ when the whole interval is on the good side of the target, ❌ when it is all on
    the bad side, ⚠️ when it straddles the target.
    """
    lines: dict[str, str] = {}
    for record in metrics:
        interval = _interval_text(record, _scale(record))
        target = format_target(
            record.get("target"), record.get("bound"), record.get("unit")
        )
        if interval is None or target is None:
            continue
        low, high, goal = record["ci_low"], record["ci_high"], record["target"]
        if record["bound"] == "upper":
            mark = "✅" if high < goal else "❌" if low > goal else "⚠️"
        else:
            mark = "✅" if low > goal else "❌" if high < goal else "⚠️"
        lines[record["metric"]] = f"{interval} - Target: {target} {mark}"
    return {"confidence_intervals_95_percent": lines}


def _first_extra(
    values: Sequence[float], level: float | None, unit: str | None, scale: float | None
) -> int:
    """The fewest extra decimals at which different numbers read differently."""
    for extra in range(8):
        shown = [format_value(v, unit, scale, extra) for v in values]
        if level is not None:
            limit = format_value(level, unit, scale, extra)
            if any(
                t == limit for v, t in zip(values, shown, strict=True) if v != level
            ):
                continue
        if len(set(shown)) == len(set(values)):
            return extra
    return 7


def format_apart(
    values: Sequence[float], level: float, unit: str | None, scale: float | None = None
) -> tuple[list[str], str]:
    """``values`` and ``level`` formatted with as many more decimals as it takes for
    different numbers not to read the same: a value beyond a level reads beyond it
    (``1.93ms`` beyond ``1.90ms``, never ``1.9ms`` beyond ``1.9ms``), and an
    interval's two ends differ. The level gets only the decimals its own
    comparison needs (``251.5ms`` against ``200ms``)."""
    extra = _first_extra(values, None, unit, scale)
    level_extra = 0
    for value in values:
        level_extra = max(level_extra, _first_extra([value], level, unit, scale))
    extra = max(extra, level_extra)
    shown = [format_value(v, unit, scale, extra) for v in values]
    return shown, format_value(level, unit, scale, level_extra)


def _recent_mean(record: Mapping[str, Any]) -> tuple[float | None, int | None]:
    """The mean the status was judged on (the newest ``evaluation.window`` samples;
    the middle of the interval on the ``ci`` basis), else the window's mean."""
    judged = record.get("judged")
    if judged and judged.get("basis") != "sample":
        return (judged["low"] + judged["high"]) / 2, judged.get("newest")
    return record.get("mean"), None


def _off_target(record: Mapping[str, Any]) -> bool:
    mean, _ = _recent_mean(record)
    target = record.get("target")
    if mean is None or target is None or record.get("status") != "ok":
        return False
    return bool(mean > target if record.get("bound") == "upper" else mean < target)


def _off_target_line(record: Mapping[str, Any]) -> str:
    unit = record.get("unit")
    mean, newest = _recent_mean(record)
    assert mean is not None  # noqa: S101 - _off_target checked it
    target = record["target"]
    (shown,), goal = format_apart([mean], target, unit, max(abs(mean), abs(target)))
    side = "above" if record.get("bound") == "upper" else "below"
    levels = [
        f"{name} {format_value(record[name], unit, abs(record[name]))}"
        for name in ("warning", "critical")
        if record.get(name) is not None
    ]
    within = f"; alerts at {', '.join(levels)}" if levels else ""
    over = f" over the newest {newest} samples" if newest else ""
    return f"  {record['metric']}: mean {shown}{over}, {side} its target {goal}{within}"


def alert_summary(
    alerts: Sequence[Mapping[str, Any]], metrics: Sequence[Mapping[str, Any]] = ()
) -> str:
    """The seed's ``generate_alert_report`` text for the firing alerts.

    With nothing firing it is the seed's all-clear line only when every metric in
    ``metrics`` (per-metric records with ``status``, ``mean``, ``judged``,
    ``target``, ``bound``, levels) is ``ok`` and on the good side of its target, by
    the mean its status was judged on; otherwise it names the metrics that are
    pending, silenced or without data, and those off target short of a level.
    """
    if not alerts:
        off = [r for r in metrics if _off_target(r)]
        unsettled = [r for r in metrics if r.get("status") in _UNSETTLED]
        if not off and not unsettled:
            return ALL_CLEAR
        lines = ["No alerts firing."]
        if unsettled:
            names = ", ".join(str(r["metric"]) for r in unsettled)
            lines[0] += f" Not all clear: {names} (pending, silenced or no data)."
        if off:
            lines.append("Off target, short of an alert level:")
            lines += [_off_target_line(r) for r in off]
        return "\n".join(lines)
    return ALERT_HEADER + "".join(alert_block(alert) for alert in alerts)


def alert_block(alert: Mapping[str, Any]) -> str:
    """One firing alert's lines in the summary, after a blank line.

    The summary is :data:`ALERT_HEADER` followed by one block per alert, so a
    paged reply can send it in pieces that join to the same text.
    """
    unit = alert.get("unit")
    name = series_name(alert["metric"], alert.get("tags"))
    value, threshold = alert.get("value"), alert.get("threshold")
    observed: list[float] = list(alert.get("observed") or ())
    interval = len(observed) == 2 and observed[0] != observed[1]
    if value is None or threshold is None:
        current, limit = format_value(value, unit), format_value(threshold, unit)
        interval = False
    else:
        numbers = [value, *observed] if interval else [value]
        shown, limit = format_apart(numbers, threshold, unit)
        current = shown[0]
        if interval:
            current += f" ({alert['basis']} [{shown[1]}, {shown[2]}])"
    lines = [
        f"{alert['level'].upper()}: {name}",
        f"  Current: {current}",
        f"  Threshold: {limit}",
        f"  Action: {alert.get('action')}",
    ]
    return "\n" + "\n".join(lines) + "\n"


def series_name(metric: str, tags: Mapping[str, str] | None) -> str:
    """``metric{k=v,...}``: how user text names a series."""
    if not tags:
        return metric
    inner = ",".join(f"{k}={v}" if v else k for k, v in sorted(tags.items()))
    return f"{metric}{{{inner}}}"


def _p_value(p: float | None) -> str:
    if p is None:
        return "-"
    return "<0.0001" if p < 0.0001 else f"{p:.4f}"


def action_line(action: Mapping[str, Any], unit: str | None) -> str:
    """One optimizer action as a line a person reads: when, what, verdict, effect.

    ``2026-12-06 10:41:03Z context_compression (compression) on latency{route=/a}:
    kept (median 120ms -> 80ms, 33.3% better, p=0.0012); compression.ratio 0.4 -> 0.6``
    """
    at = action.get("at")
    when = (
        dt.datetime.fromtimestamp(float(at), dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        if isinstance(at, int | float)
        else "?"
    )
    name = series_name(str(action.get("metric")), action.get("tags"))
    text = f"{when} {action.get('strategy')} ({action.get('plugin')}) on {name}: "
    text += str(action.get("verdict"))
    before, after = action.get("before_median"), action.get("after_median")
    details = []
    if before is not None and after is not None:
        scale = max(abs(before), abs(after))
        details.append(
            f"median {format_value(before, unit, scale)} -> "
            f"{format_value(after, unit, scale)}"
        )
    effect = action.get("effect_percent")
    if effect is not None:
        details.append(f"{abs(effect):.1f}% {'better' if effect >= 0 else 'worse'}")
    verdict = action.get("verdict")
    reason = str(action.get("reason") or "")
    p = action.get("p_worse") if verdict == "reverted" else action.get("p_better")
    if verdict == "reverted" and reason and not reason.startswith("significantly"):
        # Reverted for a worse tail or guard while the median improved: the reason
        # says why; a p-value of the median being worse would read as a contradiction.
        details.append(reason)
    elif p is not None:
        details.append(f"p={_p_value(p)}")
    if details:
        text += " (" + ", ".join(details) + ")"
    elif action.get("reason"):
        text += f" ({action['reason']})"
    originals = action.get("originals") or {}
    changes = action.get("changes") or {}
    if changes:
        moves = [f"{k} {originals.get(k, '?')} -> {v}" for k, v in changes.items()]
        text += "; " + ", ".join(moves)
    return text
