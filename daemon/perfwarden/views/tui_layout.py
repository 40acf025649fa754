"""How much of the ``perfwarden top`` dashboard fits a terminal width.

One job: :func:`tier_for` picks a :class:`Tier` for a number of columns (which table
columns and panels are shown, and how wide the series names, CI bar and sparkline
are); the column widths it counts with are the ones :mod:`perfwarden.views.tui_panels`
gives the metrics table.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Final

__all__ = [
    "INTERVAL_WIDTH",
    "MEAN_WIDTH",
    "SIZE_WIDTH",
    "STATE_WIDTH",
    "TREND_WIDTH",
    "Tier",
    "row_order",
    "tier_for",
]


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


def row_order(
    metric: str, *, configured: bool, series: str
) -> tuple[bool, bool, str, str]:
    """Where a series' row goes in the metrics table: configured metrics first,
    perfwarden's own last, then by name and series. The daemon sorts ``stats``
    with it for ``top`` (``order: top``), so a page it sends is a page of the table.
    """
    return metric.startswith("perfwarden."), not configured, metric, series
