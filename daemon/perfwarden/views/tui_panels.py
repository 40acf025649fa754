"""The tables and panels of ``perfwarden top``, and how many lines each takes.

One job: lay records out in rich tables and panels: :func:`metrics_table` (one row
per series, the columns a :class:`~perfwarden.views.tui_layout.Tier` has room for, cut
at
a number of lines), :func:`alerts_panel`, :func:`actions_panel` (the optimizer's
recent actions and verdicts) and :func:`knobs_panel`, each showing at most a fixed
number of rows, and :func:`panel_lines`, the height those panels will take. The
cells inside come from :mod:`perfwarden.views.tui_cells`; the frame that stacks them is
:func:`perfwarden.views.tui.render_frame`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from perfwarden.views.text import format_number
from perfwarden.views.tui_cells import (
    age,
    ci_bar,
    finite,
    recent_cell,
    series_label,
    state_style,
    trend_cell,
    with_unit,
)
from perfwarden.views.tui_layout import (
    INTERVAL_WIDTH,
    MEAN_WIDTH,
    SIZE_WIDTH,
    STATE_WIDTH,
    TREND_WIDTH,
    row_order,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from rich.console import RenderableType

    from perfwarden.views.tui_layout import Tier

__all__ = [
    "ALERT_ROWS",
    "actions_panel",
    "alerts_panel",
    "knobs_panel",
    "metrics_table",
    "panel_lines",
]

#: Short words for the table's fixed-width columns.
_STATE_WORDS: Final = {
    "no_data": "no data",
    "insufficient_data": "warming",
    "unconfigured": "-",
}
_VERDICT_STYLES: Final = {
    "kept": "bold green",
    "reverted": "bold red",
    "inconclusive": "yellow",
    "validating": "cyan",
}
#: Alerts the alerts panel lists (the rest are counted).
ALERT_ROWS: Final = 6
_ACTION_ROWS: Final = 5
_KNOB_ROWS: Final = 8


def _row_order(record: Mapping[str, Any]) -> tuple[bool, bool, str, str]:
    """Configured metrics first, perfwarden's own last, then by name and series."""
    configured = record.get("warning") is not None or record.get("critical") is not None
    return row_order(
        str(record.get("metric", "")),
        configured=configured,
        series=str(record.get("series", "")),
    )


def metrics_table(
    records: Sequence[Mapping[str, Any]],
    tier: Tier,
    *,
    limit: int | None = None,
    total: int | None = None,
    first: int = 0,
) -> Table:
    """One row per series; the columns that ``tier`` has room for.

    With ``limit``, at most that many lines of rows: the last says how many more.
    ``records`` may be one page of the table (the daemon sorts and pages ``stats``
    for ``top``): ``first`` is the index of its first row in the whole table of
    ``total`` rows, and the last line says where the page is.
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
    count = len(rows) + first if total is None else max(total, first + len(rows))
    if limit is not None and (count - first > limit or first):
        rows = rows[: max(0, limit - 1)]  # one line says where the page is
    hidden = count - first - len(rows)
    for record in rows:
        status = str(record.get("status") or "-")
        row: list[RenderableType] = [
            series_label(record),
            Text(_STATE_WORDS.get(status, status), style=state_style(status)),
        ]
        if tier.sample_size:
            row.append(str(record.get("sample_size", "-")))
        row.append(with_unit(record.get("mean"), record.get("unit")))
        if tier.interval:
            low, high = finite(record.get("ci_low")), finite(record.get("ci_high"))
            row.append(
                "-"
                if low is None or high is None
                else f"[{format_number(low)}, {format_number(high)}]"
            )
        if tier.bar_width:
            row.append(ci_bar(record, tier.bar_width))
        if tier.spark_width:
            row.append(recent_cell(record, tier.spark_width))
        if tier.trend:
            row.append(trend_cell(record.get("trend")))
        table.add_row(*row)
    if first or hidden:
        table.add_row(
            Text(
                _page_line(first, len(rows), hidden, paged=total is not None),
                style="dim",
            )
        )
    return table


def _page_line(first: int, shown: int, hidden: int, *, paged: bool) -> str:
    """The table's last line: how many more rows, and the paging keys."""
    if not first:
        line = f"+{hidden} more series"
        return f"{line}  (n: next page)" if paged else line
    line = f"series {first + 1}-{first + shown} of {first + shown + hidden}  (p: back"
    return line + (", n: next page)" if hidden else ")")


def alerts_panel(
    alerts: Sequence[Mapping[str, Any]],
    now: float,
    *,
    compact: bool = False,
    total: int | None = None,
    firing: int | None = None,
) -> Panel:
    """Active alerts, worst first (the daemon's order), with level colours.

    ``alerts`` may be the first few of a longer list (``top`` asks for a page):
    ``total`` and ``firing`` then count the whole list.
    """
    count = len(alerts) if total is None else max(total, len(alerts))
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
        for alert in alerts[:ALERT_ROWS]:
            level = str(alert.get("level") or alert.get("state") or "-")
            name = series_label(alert) + (
                " (silenced)" if alert.get("silenced") else ""
            )
            row: list[RenderableType] = [
                Text(level.upper(), style=state_style(level)),
                name,
                with_unit(alert.get("value"), alert.get("unit")),
            ]
            if not compact:
                threshold = finite(alert.get("threshold"))
                since = finite(alert.get("since"))
                row.append(
                    f"vs {format_number(threshold)}" if threshold is not None else ""
                )
                row.append(age(now - since) if since is not None else "")
            table.add_row(*row)
        if count > ALERT_ROWS:
            table.add_row("", Text(f"+{count - ALERT_ROWS} more", style="dim"))
        body = table
    if firing is None:
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
    """The optimizer's recent actions, newest first, with their verdicts
    (``validating`` for one still awaiting it).

    One line each: verdict, effect, age, then what was changed (cut at the edge).
    """
    lines: list[Text] = []
    for action in list(reversed(actions))[:_ACTION_ROWS]:
        verdict = str(action.get("verdict", "-"))
        line = _line()
        line.append(f"{verdict:<12}", style=_VERDICT_STYLES.get(verdict, ""))
        if not compact:
            effect = finite(action.get("effect_percent"))
            at = finite(action.get("at"))
            line.append(f"{effect:+.1f}%" if effect is not None else "-", style="bold")
            line.append(f"  {age(now - at)} ago  " if at is not None else "  ")
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


def panel_lines(
    alerts: Sequence[Mapping[str, Any]],
    actions: Sequence[Mapping[str, Any]],
    knobs: Mapping[str, Any],
    *,
    side_by_side: bool,
    alert_total: int | None = None,
) -> tuple[int, int]:
    """Lines of the alerts panel and of the actions + knobs panels.

    ``knobs`` is the ``knobs`` command's answer, as :func:`knobs_panel` takes it;
    ``alert_total`` counts the alerts when ``alerts`` is the first page of them.
    """
    alert_count = len(alerts) if alert_total is None else alert_total
    knob_count = len(knobs.get("knobs") or {})
    alert_lines = 2 + max(1, min(alert_count, ALERT_ROWS) + (alert_count > ALERT_ROWS))
    action_lines = 2 + max(1, min(len(actions), _ACTION_ROWS))
    knob_lines = 2 + max(1, min(knob_count, _KNOB_ROWS) + (knob_count > _KNOB_ROWS))
    if side_by_side:
        return alert_lines, max(action_lines, knob_lines)
    return alert_lines, action_lines + knob_lines
