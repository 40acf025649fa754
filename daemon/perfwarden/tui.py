"""Rendering for ``perfwarden top``: pure functions from control data to renderables.

Nothing here talks to the daemon or the terminal: :class:`Snapshot` holds what the
control commands returned (``status``, ``stats``, ``alerts``, ``knobs`` and the
``recent_actions`` of ``report``), and :func:`render_frame` turns one into a frame
for a terminal of a given width. The fetching and the key loop live in
:mod:`perfwarden.commands.top`.

Per series the metrics table shows the state (coloured), the mean, the confidence
interval, a one-line bar that draws the interval against the target / warning /
critical levels, a sparkline of the newest values (a record's ``recent`` list, when the
daemon or the poller supplies one; p50/p95/p99 otherwise) and the trend. Below it:
alerts, the optimizer's recent actions with their verdicts, and the knobs. Narrow
terminals lose columns and panels (see :func:`tier_for`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from perfwarden.commands._common import format_number

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from rich.console import RenderableType

__all__ = [
    "UNREACHABLE",
    "Snapshot",
    "Tier",
    "actions_panel",
    "alerts_panel",
    "ci_bar",
    "knobs_panel",
    "metrics_table",
    "render_frame",
    "series_label",
    "sparkline",
    "state_style",
    "tier_for",
]

UNREACHABLE: Final = "daemon unreachable, retrying..."

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
#: Short words for the table's fixed-width columns.
_STATE_WORDS: Final = {
    "no_data": "no data",
    "insufficient_data": "warming",
    "unconfigured": "-",
}
_TREND_WORDS: Final = {
    "consistently_low": "low",
    "consistently_high": "high",
    "exceeding_target": "beats target",
    "insufficient_data": "-",
}
_VERDICT_STYLES: Final = {
    "kept": "bold green",
    "reverted": "bold red",
    "inconclusive": "yellow",
}
_ALERT_ROWS: Final = 6
_ACTION_ROWS: Final = 5
_KNOB_ROWS: Final = 8


def state_style(status: str | None) -> str:
    """The rich style of a status / alert level word (``critical`` is bold red)."""
    return _STATE_STYLES.get(status or "", "")


@dataclass(frozen=True)
class Snapshot:
    """What one refresh fetched from the daemon."""

    status: Mapping[str, Any] = field(default_factory=dict)
    series: Sequence[Mapping[str, Any]] = ()
    alerts: Sequence[Mapping[str, Any]] = ()
    knobs: Mapping[str, Any] = field(default_factory=dict)
    actions: Sequence[Mapping[str, Any]] = ()
    fetched_at: float = 0.0


@dataclass(frozen=True)
class Tier:
    """Which columns and panels fit a terminal width, and how wide they are."""

    name_width: int
    bar_width: int  # 0: no CI bar
    spark_width: int  # 0: no recent / percentiles column
    sample_size: bool
    interval: bool
    trend: bool
    side_panels: bool  # the actions and knobs panels
    side_by_side: bool  # actions next to knobs
    legend: bool


STATE_WIDTH: Final = 8
MEAN_WIDTH: Final = 10
SIZE_WIDTH: Final = 6
INTERVAL_WIDTH: Final = 19
TREND_WIDTH: Final = 12


def tier_for(width: int) -> Tier:
    """The layout for ``width`` columns: below 80 and 60 columns things are dropped.

    >= 130: everything (sample size and interval numbers too); 100-129: bar,
    sparkline and trend; 80-99: the same, narrower; 60-79: no sparkline or trend,
    panels stacked; < 60: name, state and mean, and the alerts panel only. The
    series name gets what the other columns leave (one space between columns).
    """
    if width >= 130:
        tier = Tier(0, 24, 20, True, True, True, True, True, True)
    elif width >= 100:
        tier = Tier(0, 20, 16, False, False, True, True, True, True)
    elif width >= 80:
        tier = Tier(0, 16, 10, False, False, True, True, True, True)
    elif width >= 60:
        tier = Tier(0, 16, 0, False, False, False, True, False, False)
    else:
        tier = Tier(0, 0, 0, False, False, False, False, False, False)
    widths = [STATE_WIDTH, MEAN_WIDTH, tier.bar_width, tier.spark_width]
    widths += [SIZE_WIDTH if tier.sample_size else 0]
    widths += [INTERVAL_WIDTH if tier.interval else 0]
    widths += [TREND_WIDTH if tier.trend else 0]
    used = sum(w + 1 for w in widths if w)
    name_width = max(8, min(40, width - used))
    return dataclasses.replace(tier, name_width=name_width)


# -- small cells ----------------------------------------------------------------------


def _finite(value: Any) -> float | None:
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


def _with_unit(value: Any, unit: Any) -> str:
    text = format_number(_finite(value))
    return f"{text} {unit}" if unit and text != "-" else text


def _age(seconds: float) -> str:
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
    points = [v for v in (_finite(x) for x in values) if v is not None]
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
        value = _finite(record.get(key))
        if value is not None:
            levels.append((value, char, style))
    return levels


def _zone_style(record: Mapping[str, Any], value: float) -> str:
    """The colour of the bar's base line at ``value``: past warning / critical."""
    upper = record.get("bound") != "lower"
    warning = _finite(record.get("warning"))
    critical = _finite(record.get("critical"))

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
    mean = _finite(record.get("mean"))
    if width <= 0:
        return Text()
    if mean is None:
        return Text("no data".ljust(width)[:width], style="dim")
    low, high = _finite(record.get("ci_low")), _finite(record.get("ci_high"))
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


def _recent_cell(record: Mapping[str, Any], width: int) -> Text:
    recent = record.get("recent")
    if isinstance(recent, list) and recent:
        return Text(sparkline(recent, width), style=state_style(record.get("status")))
    parts = [format_number(_finite(record.get(k))) for k in ("p50", "p95", "p99")]
    return Text("/".join(parts), style="dim")


def _trend_cell(trend: Any) -> Text:
    word = str(trend or "-")
    return Text(_TREND_WORDS.get(word, word), style=_TREND_STYLES.get(word, ""))


def _row_order(record: Mapping[str, Any]) -> tuple[bool, bool, str, str]:
    """Configured metrics first, perfwarden's own last, then by name and series."""
    name = str(record.get("metric", ""))
    configured = record.get("warning") is not None or record.get("critical") is not None
    own = name.startswith("perfwarden.")
    return own, not configured, name, str(record.get("series", ""))


# -- tables and panels ----------------------------------------------------------------


def metrics_table(
    records: Sequence[Mapping[str, Any]], tier: Tier, *, limit: int | None = None
) -> Table:
    """One row per series; the columns that ``tier`` has room for.

    With ``limit``, at most that many lines of rows: the last says how many more.
    """
    table = Table(box=None, padding=(0, 1, 0, 0), pad_edge=False, header_style="bold")

    def column(header: str, width: int, *, right: bool = False) -> None:
        table.add_column(
            header,
            width=width,
            no_wrap=True,
            overflow="ellipsis",
            justify="right" if right else "left",
        )

    column("SERIES", tier.name_width)
    column("STATE", STATE_WIDTH)
    if tier.sample_size:
        column("N", SIZE_WIDTH, right=True)
    column("MEAN", MEAN_WIDTH, right=True)
    if tier.interval:
        column("CI95", INTERVAL_WIDTH)
    if tier.bar_width:
        column("CI vs LEVELS", tier.bar_width)
    if tier.spark_width:
        sparks = any(isinstance(r.get("recent"), list) for r in records)
        column("RECENT" if sparks else "P50/95/99", tier.spark_width)
    if tier.trend:
        column("TREND", TREND_WIDTH)
    rows = sorted(records, key=_row_order)
    hidden = 0
    if limit is not None and len(rows) > limit:
        keep = max(0, limit - 1)
        hidden = len(rows) - keep
        rows = rows[:keep]
    for record in rows:
        status = str(record.get("status") or "-")
        row: list[RenderableType] = [
            series_label(record),
            Text(_STATE_WORDS.get(status, status), style=state_style(status)),
        ]
        if tier.sample_size:
            row.append(str(record.get("sample_size", "-")))
        row.append(_with_unit(record.get("mean"), record.get("unit")))
        if tier.interval:
            low, high = _finite(record.get("ci_low")), _finite(record.get("ci_high"))
            row.append(
                "-"
                if low is None or high is None
                else f"[{format_number(low)}, {format_number(high)}]"
            )
        if tier.bar_width:
            row.append(ci_bar(record, tier.bar_width))
        if tier.spark_width:
            row.append(_recent_cell(record, tier.spark_width))
        if tier.trend:
            row.append(_trend_cell(record.get("trend")))
        table.add_row(*row)
    if hidden:
        table.add_row(Text(f"+{hidden} more series", style="dim"))
    return table


def alerts_panel(
    alerts: Sequence[Mapping[str, Any]], now: float, *, compact: bool = False
) -> Panel:
    """Active alerts, worst first (the daemon's order), with level colours."""
    if not alerts:
        body: RenderableType = Text("no active alerts", style="green")
    else:
        table = Table(box=None, padding=(0, 2, 0, 0), pad_edge=False, show_header=False)
        table.add_column("level", no_wrap=True)
        table.add_column("series", no_wrap=True, overflow="ellipsis", ratio=1)
        table.add_column("value", no_wrap=True, justify="right")
        if not compact:
            table.add_column("threshold", no_wrap=True)
            table.add_column("since", no_wrap=True, justify="right")
        for alert in alerts[:_ALERT_ROWS]:
            level = str(alert.get("level") or alert.get("state") or "-")
            name = series_label(alert) + (
                " (silenced)" if alert.get("silenced") else ""
            )
            row: list[RenderableType] = [
                Text(level.upper(), style=state_style(level)),
                name,
                _with_unit(alert.get("value"), alert.get("unit")),
            ]
            if not compact:
                threshold = _finite(alert.get("threshold"))
                since = _finite(alert.get("since"))
                row.append(
                    f"vs {format_number(threshold)}" if threshold is not None else ""
                )
                row.append(_age(now - since) if since is not None else "")
            table.add_row(*row)
        if len(alerts) > _ALERT_ROWS:
            table.add_row("", Text(f"+{len(alerts) - _ALERT_ROWS} more", style="dim"))
        body = table
    firing = sum(1 for a in alerts if a.get("state") == "firing")
    title = f"Alerts ({firing} firing)" if alerts else "Alerts"
    return Panel(body, title=title, title_align="left", border_style="bright_black")


def _changes(action: Mapping[str, Any]) -> str:
    changes = action.get("changes") or {}
    originals = action.get("originals") or {}
    return ", ".join(
        f"{name} {originals.get(name, '?')}→{value}" for name, value in changes.items()
    )


def _line() -> Text:
    return Text(no_wrap=True, overflow="ellipsis")


def actions_panel(
    actions: Sequence[Mapping[str, Any]], now: float, *, compact: bool = False
) -> Panel:
    """The optimizer's recent actions, newest first, with their verdicts.

    One line each: verdict, effect, age, then what was changed (cut at the edge).
    """
    lines: list[Text] = []
    for action in list(reversed(actions))[:_ACTION_ROWS]:
        verdict = str(action.get("verdict", "-"))
        line = _line()
        line.append(f"{verdict:<12}", style=_VERDICT_STYLES.get(verdict, ""))
        if not compact:
            effect = _finite(action.get("effect_percent"))
            at = _finite(action.get("at"))
            line.append(f"{effect:+.1f}%" if effect is not None else "-", style="bold")
            line.append(f"  {_age(now - at)} ago  " if at is not None else "  ")
        line.append(f"{action.get('metric', '?')}: {action.get('strategy', '?')}")
        changes = _changes(action)
        if changes:
            line.append(f" ({changes})", style="cyan")
        lines.append(line)
    body: RenderableType = (
        Group(*lines) if lines else Text("no optimizer actions yet", style="dim")
    )
    return Panel(
        body, title="Optimizer actions", title_align="left", border_style="bright_black"
    )


def knobs_panel(document: Mapping[str, Any], *, compact: bool = False) -> Panel:
    """Knob values; a value moved off its initial one is highlighted with its source."""
    knobs: Mapping[str, Any] = document.get("knobs") or {}
    lines: list[Text] = []
    name_width = min(24, max((len(name) for name in knobs), default=0))
    for name, knob in list(knobs.items())[:_KNOB_ROWS]:
        value = knob.get("value")
        moved = value != knob.get("initial")
        line = _line()
        line.append(f"{name:<{name_width}}  ")
        line.append(str(value), style="bold cyan" if moved else "")
        if not compact:
            changed_by = str(knob.get("changed_by") or "")
            line.append(f"  {changed_by}", style="" if moved else "dim")
        lines.append(line)
    if len(knobs) > _KNOB_ROWS:
        lines.append(Text(f"+{len(knobs) - _KNOB_ROWS} more", style="dim"))
    body: RenderableType = (
        Group(*lines) if lines else Text("no knobs declared", style="dim")
    )
    return Panel(body, title="Knobs", title_align="left", border_style="bright_black")


def _header(snapshot: Snapshot | None, now: float, source: str, width: int) -> Text:
    text = Text()
    text.append("perfwarden top", style="bold")
    status = snapshot.status if snapshot is not None else {}
    if status:
        uptime = _finite(status.get("uptime_seconds"))
        evaluation = status.get("evaluation") or {}
        parts = [
            f"v{status.get('version', '?')}",
            f"pid {status.get('pid', '?')}",
            f"up {_age(uptime) if uptime is not None else '?'}",
            f"{status.get('series', 0)} series",
        ]
        text.append("  " + "  ".join(parts))
        firing = evaluation.get("alerts_firing", 0)
        text.append(f"  {firing} firing", style="bold red" if firing else "green")
    clock = time.strftime("%H:%M:%S", time.localtime(now))
    text.append(f"  {clock}")
    if width >= 80:
        text.append("  q quits", style="dim")
        if source:
            text.append(f"  {source}", style="dim")
    text.truncate(width, overflow="ellipsis")
    return text


def _legend() -> Text:
    text = Text("bar: ", style="dim")
    text.append(BAR_BAND * 2, style="bold white")
    text.append(" 95% CI  ", style="dim")
    text.append(BAR_MEAN, style="bold white")
    text.append(" mean  ", style="dim")
    for _, char, style in (*MARKERS, CRITICAL_MARKER):
        text.append(char, style=style)
    text.append(" target / warning / critical", style="dim")
    return text


def _panel_lines(snapshot: Snapshot, side_by_side: bool) -> tuple[int, int]:
    """Lines of the alerts panel and of the actions + knobs panels."""
    alerts = len(snapshot.alerts)
    alert_lines = 2 + max(1, min(alerts, _ALERT_ROWS) + (alerts > _ALERT_ROWS))
    knobs = len(snapshot.knobs.get("knobs") or {})
    action_lines = 2 + max(1, min(len(snapshot.actions), _ACTION_ROWS))
    knob_lines = 2 + max(1, min(knobs, _KNOB_ROWS) + (knobs > _KNOB_ROWS))
    if side_by_side:
        return alert_lines, max(action_lines, knob_lines)
    return alert_lines, action_lines + knob_lines


def render_frame(
    snapshot: Snapshot | None,
    *,
    width: int,
    now: float,
    height: int | None = None,
    problem: str | None = None,
    source: str = "",
) -> RenderableType:
    """One whole frame for a terminal ``width`` columns (and ``height`` lines).

    ``snapshot`` is the newest data (``None`` before the first answer); ``problem``
    (e.g. :data:`UNREACHABLE` and why) is shown as a banner above stale data. With
    a ``height``, the metrics table is cut to fit ("+N more series"), after dropping
    the actions and knobs panels if fewer than three rows would remain.
    """
    tier = tier_for(width)
    parts: list[RenderableType] = [_header(snapshot, now, source, width)]
    if problem:
        banner = Text(problem, style="bold white on red")
        if snapshot is not None:
            banner.append(
                f"  (data from {_age(now - snapshot.fetched_at)} ago)",
                style="white on red",
            )
        parts.append(banner)
    if snapshot is None:
        return Group(*parts)
    side_panels = tier.side_panels
    limit: int | None = None
    if height is not None:
        banner_lines = -(-(len(problem) + 25) // width) if problem else 0
        fixed = 1 + banner_lines + 1 + (1 if tier.legend and tier.bar_width else 0)
        alert_lines, side_lines = _panel_lines(snapshot, tier.side_by_side)
        limit = height - fixed - alert_lines - (side_lines if side_panels else 0)
        if limit < 3 and side_panels:
            side_panels = False
            limit += side_lines
        limit = max(1, limit)
    if snapshot.series:
        parts.append(metrics_table(snapshot.series, tier, limit=limit))
        if tier.legend and tier.bar_width:
            parts.append(_legend())
    else:
        parts.append(
            Text(
                "no series yet: send a metric, e.g. "
                "perfwarden send context_loading_time 42",
                style="dim",
            )
        )
    compact = width < 80
    parts.append(alerts_panel(snapshot.alerts, now, compact=compact))
    if side_panels:
        actions = actions_panel(snapshot.actions, now, compact=compact)
        knobs = knobs_panel(snapshot.knobs, compact=compact)
        if tier.side_by_side:
            grid = Table.grid(expand=True)
            grid.add_column(ratio=3)
            grid.add_column(ratio=2)
            grid.add_row(actions, knobs)
            parts.append(grid)
        else:
            parts.extend([actions, knobs])
    return Group(*parts)
