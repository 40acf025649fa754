"""The seed's documents from live data: ``monitoring_dashboard``, ``validation_results``
and the alert summary, as plain data ready for YAML or JSON.

Values are formatted with their unit as the seed shows them: ``78ms`` (``1.24s`` once a
metric's scale reaches a second), ``42.3%`` for ratios and scores, ``2.34x``,
``31.2MB``; targets as ``<100ms`` (upper bound) or ``>40%`` (lower bound).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = [
    "ALL_CLEAR",
    "alert_summary",
    "format_target",
    "format_value",
    "monitoring_dashboard",
    "validation_results",
]

ALL_CLEAR: Final = "✅ All performance metrics within optimal ranges"
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


def monitoring_dashboard(
    metrics: Sequence[Mapping[str, Any]], generated_at: str
) -> dict[str, Any]:
    """The seed's ``monitoring_dashboard`` from per-metric aggregate records.

    Each record carries a metric's aggregate statistics (all its series together),
    its config (unit, bound, target), its trend and, where the metric has
    ``group_by``, ``best_series`` (the best tag value by mean).
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


def alert_summary(alerts: Sequence[Mapping[str, Any]]) -> str:
    """The seed's ``generate_alert_report`` text for the firing alerts."""
    if not alerts:
        return ALL_CLEAR
    lines = ["🚨 Performance Alert Summary", "=" * 40]
    for alert in alerts:
        unit = alert.get("unit")
        name = alert["metric"]
        if alert.get("tags"):
            tags = ",".join(f"{k}={v}" for k, v in sorted(alert["tags"].items()))
            name += "{" + tags + "}"
        current = format_value(alert.get("value"), unit)
        if alert.get("observed") and alert["observed"][0] != alert["observed"][1]:
            low, high = (format_value(v, unit) for v in alert["observed"])
            current += f" ({alert['basis']} [{low}, {high}])"
        lines += [
            f"{alert['level'].upper()}: {name}",
            f"  Current: {current}",
            f"  Threshold: {format_value(alert.get('threshold'), unit)}",
            f"  Action: {alert.get('action')}",
            "",
        ]
    return "\n".join(lines)
