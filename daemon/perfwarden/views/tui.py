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

This module's job is the frame: the header line, the "unreachable" banner, the
legend, and fitting the table and panels into the terminal's height. The parts are
in :mod:`perfwarden.views.tui_layout` (which columns and panels fit a width),
:mod:`perfwarden.views.tui_cells` (one value as coloured text: sparkline, CI bar) and
:mod:`perfwarden.views.tui_panels` (the metrics table and the alerts, actions and knobs
panels); their names are re-exported here, so import rendering names from this
module.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from rich.console import Group
from rich.table import Table
from rich.text import Text

from perfwarden.views.tui_cells import (
    BAR_BAND,
    BAR_LINE,
    BAR_MEAN,
    CRITICAL_MARKER,
    MARKERS,
    SPARK_CHARS,
    age,
    ci_bar,
    finite,
    series_label,
    sparkline,
    state_style,
)
from perfwarden.views.tui_layout import Tier, tier_for
from perfwarden.views.tui_panels import (
    ALERT_ROWS,
    actions_panel,
    alerts_panel,
    knobs_panel,
    metrics_table,
    panel_lines,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from rich.console import RenderableType

__all__ = [
    "ALERT_ROWS",
    "BAR_BAND",
    "BAR_LINE",
    "BAR_MEAN",
    "SPARK_CHARS",
    "UNREACHABLE",
    "Snapshot",
    "Tier",
    "actions_panel",
    "alerts_panel",
    "ci_bar",
    "knobs_panel",
    "metrics_table",
    "page_rows",
    "render_frame",
    "series_label",
    "sparkline",
    "state_style",
    "tier_for",
]

UNREACHABLE: Final = "daemon unreachable, retrying..."


@dataclass(frozen=True)
class Snapshot:
    """What one refresh fetched from the daemon."""

    status: Mapping[str, Any] = field(default_factory=dict)
    series: Sequence[Mapping[str, Any]] = ()
    alerts: Sequence[Mapping[str, Any]] = ()
    knobs: Mapping[str, Any] = field(default_factory=dict)
    actions: Sequence[Mapping[str, Any]] = ()
    fetched_at: float = 0.0
    #: When ``series`` is one page of the table: all the series, and the index
    #: of the page's first row.
    series_total: int | None = None
    first: int = 0
    #: When ``alerts`` is the first page of them: all alerts, and those firing.
    alerts_total: int | None = None
    firing_total: int | None = None


def _header(snapshot: Snapshot | None, now: float, source: str, width: int) -> Text:
    text = Text()
    text.append("perfwarden top", style="bold")
    status = snapshot.status if snapshot is not None else {}
    if status:
        uptime = finite(status.get("uptime_seconds"))
        evaluation = status.get("evaluation") or {}
        parts = [
            f"v{status.get('version', '?')}",
            f"pid {status.get('pid', '?')}",
            f"up {age(uptime) if uptime is not None else '?'}",
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


def _table_lines(
    snapshot: Snapshot, tier: Tier, width: int, height: int | None, problem: str | None
) -> tuple[int | None, bool]:
    """How many lines the metrics table gets (None: all), and whether the actions
    and knobs panels still fit below it."""
    side_panels = tier.side_panels
    if height is None:
        return None, side_panels
    banner_lines = -(-(len(problem) + 25) // width) if problem else 0
    fixed = 1 + banner_lines + 1 + (1 if tier.legend and tier.bar_width else 0)
    alert_lines, side_lines = panel_lines(
        snapshot.alerts,
        snapshot.actions,
        snapshot.knobs,
        side_by_side=tier.side_by_side,
        alert_total=snapshot.alerts_total,
    )
    limit = height - fixed - alert_lines - (side_lines if side_panels else 0)
    if limit < 3 and side_panels:
        side_panels = False
        limit += side_lines
    return max(1, limit), side_panels


def page_rows(
    snapshot: Snapshot, *, width: int, height: int, problem: str | None = None
) -> int:
    """How many series rows one page of the table shows in a ``width`` x
    ``height`` terminal (``top``'s paging step)."""
    limit, _ = _table_lines(snapshot, tier_for(width), width, height, problem)
    return max(1, (limit or 1) - 1)


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
                f"  (data from {age(now - snapshot.fetched_at)} ago)",
                style="white on red",
            )
        parts.append(banner)
    if snapshot is None:
        return Group(*parts)
    limit, side_panels = _table_lines(snapshot, tier, width, height, problem)
    if snapshot.series:
        table = metrics_table(
            snapshot.series,
            tier,
            limit=limit,
            total=snapshot.series_total,
            first=snapshot.first,
        )
        parts.append(table)
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
    parts.append(
        alerts_panel(
            snapshot.alerts,
            now,
            compact=compact,
            total=snapshot.alerts_total,
            firing=snapshot.firing_total,
        )
    )
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
