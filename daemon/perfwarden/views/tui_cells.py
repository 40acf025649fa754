"""The cells of ``perfwarden top``: one value of a series as coloured text.

One job: turn a field of a ``stats`` / ``alerts`` record into the text of one table
cell, without knowing which table or panel it lands in: the colours and short words
of states and trends, numbers with their unit, ages (``3m05s``), the
``▁▂▃▄▅▆▇█`` sparkline of recent values, and :func:`ci_bar`, which draws a
confidence interval against the target / warning / critical levels. The tables and
panels that hold these cells are in :mod:`perfwarden.views.tui_panels`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Final

from rich.text import Text

from perfwarden.views.text import format_number

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = [
    "BAR_BAND",
    "BAR_LINE",
    "BAR_MEAN",
    "CRITICAL_MARKER",
    "MARKERS",
    "SPARK_CHARS",
    "age",
    "ci_bar",
    "finite",
    "recent_cell",
    "series_label",
    "sparkline",
    "state_style",
    "trend_cell",
    "with_unit",
]

SPARK_CHARS: Final = "▁▂▃▄▅▆▇█"
BAR_LINE: Final = "─"
BAR_BAND: Final = "━"
BAR_MEAN: Final = "●"
MARKERS: Final = (("target", "T", "bold green"), ("warning", "W", "bold yellow"))
CRITICAL_MARKER: Final = ("critical", "C", "bold red")

_STATE_STYLES: Final = {
    "ok": "green",
    "pending": "dark_orange",
    "warning": "bold yellow",
    "critical": "bold red",
    "no_data": "magenta",
    "insufficient_data": "dim",
    "unconfigured": "dim",
    "firing": "bold red",
    "resolved": "green",
}
_TREND_STYLES: Final = {
    "degrading": "red",
    "improving": "green",
    "exceeding_target": "green",
    "consistently_low": "green",
    "consistently_high": "green",
    "insufficient_data": "dim",
}
_TREND_WORDS: Final = {
    "consistently_low": "low",
    "consistently_high": "high",
    "exceeding_target": "beats target",
    "insufficient_data": "-",
}


def state_style(status: str | None) -> str:
    """The rich style of a status / alert level word (``critical`` is bold red)."""
    return _STATE_STYLES.get(status or "", "")


def finite(value: Any) -> float | None:
    """``value`` as a float if it is a finite number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def series_label(record: Mapping[str, Any]) -> str:
    """``metric{k=v,...}`` (just the metric when it has no tags)."""
    tags = record.get("tags") or {}
    if not tags:
        return str(record.get("metric", "?"))
    inner = ",".join(f"{k}={v}" if v else str(k) for k, v in sorted(tags.items()))
    return f"{record.get('metric', '?')}{{{inner}}}"


def with_unit(value: Any, unit: Any) -> str:
    """A number with its unit (``125 ms``); ``-`` when there is no number."""
    text = format_number(finite(value))
    return f"{text} {unit}" if unit and text != "-" else text


def age(seconds: float) -> str:
    """A short age: ``42s``, ``3m05s``, ``2h10m``, ``1d04h``."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds // 60:.0f}m{seconds % 60:02.0f}s"
    if seconds < 86400:
        return f"{seconds // 3600:.0f}h{seconds % 3600 // 60:02.0f}m"
    return f"{seconds // 86400:.0f}d{seconds % 86400 // 3600:02.0f}h"


def sparkline(values: Sequence[float], width: int) -> str:
    """The values as ``▁▂▃▄▅▆▇█``, at most ``width`` characters, oldest on the left.

    More values than characters are averaged in consecutive buckets; a flat series
    is drawn at mid height; non-finite values are skipped.
    """
    points = [v for v in (finite(x) for x in values) if v is not None]
    if width <= 0 or not points:
        return ""
    if len(points) > width:
        buckets = []
        for i in range(width):
            lo = i * len(points) // width
            hi = (i + 1) * len(points) // width
            chunk = points[lo:hi]
            buckets.append(sum(chunk) / len(chunk))
        points = buckets
    low, high = min(points), max(points)
    if high - low <= 1e-12 * max(1.0, abs(high)):
        return SPARK_CHARS[3] * len(points)
    top = len(SPARK_CHARS) - 1
    return "".join(SPARK_CHARS[round((p - low) / (high - low) * top)] for p in points)


def _levels(record: Mapping[str, Any]) -> list[tuple[float, str, str]]:
    levels = []
    for key, char, style in (*MARKERS, CRITICAL_MARKER):
        value = finite(record.get(key))
        if value is not None:
            levels.append((value, char, style))
    return levels


def _zone_style(record: Mapping[str, Any], value: float) -> str:
    """The colour of the bar's base line at ``value``: past warning / critical."""
    upper = record.get("bound") != "lower"
    warning = finite(record.get("warning"))
    critical = finite(record.get("critical"))

    def beyond(level: float | None) -> bool:
        return level is not None and (value >= level if upper else value <= level)

    if beyond(critical):
        return "red"
    if beyond(warning):
        return "yellow"
    return "green" if warning is not None or critical is not None else "bright_black"


def ci_bar(record: Mapping[str, Any], width: int) -> Text:
    """A one-line bar of ``width`` cells: the CI as a band against the levels.

    The scale spans the interval, the mean and the target / warning / critical
    levels with a margin; the base line is coloured by zone (green, yellow past the
    warning level, red past critical, on the bound's bad side), the interval is a
    ``━`` band in the state's colour with ``●`` at the mean, and ``T`` / ``W`` /
    ``C`` mark the levels (drawn last, so they stay visible inside the band).
    """
    mean = finite(record.get("mean"))
    if width <= 0:
        return Text()
    if mean is None:
        return Text("no data".ljust(width)[:width], style="dim")
    low, high = finite(record.get("ci_low")), finite(record.get("ci_high"))
    levels = _levels(record)
    points = [mean, *(v for v, _, _ in levels)]
    points += [v for v in (low, high) if v is not None]
    lo, hi = min(points), max(points)
    span = hi - lo
    if span <= 0:
        span = abs(hi) * 0.2 or 1.0
    lo, hi = lo - span * 0.08, hi + span * 0.08

    def cell(value: float) -> int:
        return max(0, min(width - 1, round((value - lo) / (hi - lo) * (width - 1))))

    chars = [BAR_LINE] * width
    styles = [
        f"dim {_zone_style(record, lo + i / max(1, width - 1) * (hi - lo))}"
        for i in range(width)
    ]
    band_style = state_style(str(record.get("status"))) or "bold white"
    if low is not None and high is not None:
        for i in range(cell(low), cell(high) + 1):
            chars[i], styles[i] = BAR_BAND, band_style
    chars[cell(mean)], styles[cell(mean)] = BAR_MEAN, band_style
    for value, char, style in levels:
        chars[cell(value)], styles[cell(value)] = char, style
    text = Text()
    for char, style in zip(chars, styles, strict=True):
        text.append(char, style=style)
    return text


def recent_cell(record: Mapping[str, Any], width: int) -> Text:
    """The sparkline of ``recent`` values, else ``p50/p95/p99`` (dimmed)."""
    recent = record.get("recent")
    if isinstance(recent, list) and recent:
        return Text(sparkline(recent, width), style=state_style(record.get("status")))
    parts = [format_number(finite(record.get(k))) for k in ("p50", "p95", "p99")]
    return Text("/".join(parts), style="dim")


def trend_cell(trend: Any) -> Text:
    """The trend as a short coloured word (``degrading`` in red)."""
    word = str(trend or "-")
    return Text(_TREND_WORDS.get(word, word), style=_TREND_STYLES.get(word, ""))
