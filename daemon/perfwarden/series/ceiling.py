"""The memory ceiling: past it, lines for new series are shed instead of the host
swapping.

The series cap bounds how many series there are, not how large they grow (long tag
sets, many sets), so the daemon also watches its own resident memory once per
evaluation tick (``/proc/self/statm``: one small read). Above
``statistics.max_memory_mb`` the store stops creating series: lines for new series
are dropped and counted (``dropped_by_reason.memory_limit``) while every existing
series goes on. ``series.shedding`` is logged when it starts and
``series.shedding_ended`` when memory is back below 90% of the ceiling (the margin
keeps it from flapping), so a flood is two log lines, not one per line.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Final

from perfwarden.logs.setup import get_logger

if TYPE_CHECKING:
    from collections.abc import Callable

    from perfwarden.series.store import MetricStore

__all__ = ["MemoryCeiling", "resident_mb"]

_log = get_logger("perfwarden.series")
_PAGE_MB: Final = os.sysconf("SC_PAGE_SIZE") / 2**20
#: Shedding ends below this fraction of the ceiling.
_RESUME_AT: Final = 0.9


def resident_mb() -> float:
    """This process's resident memory in MiB (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_MB
    except (OSError, IndexError, ValueError):
        return 0.0


class MemoryCeiling:
    """Turns :attr:`MetricStore.shedding` on above the ceiling and off below 90%."""

    def __init__(
        self,
        store: MetricStore,
        limit_mb: Callable[[], int],
        measure: Callable[[], float] = resident_mb,
    ) -> None:
        self._store = store
        self._limit_mb = limit_mb
        self._measure = measure
        #: Times shedding started since the daemon started.
        self.episodes = 0

    def check(self) -> None:
        """Measure once and switch shedding on or off (logged at each switch)."""
        limit = self._limit_mb()
        store = self._store
        if limit <= 0:
            if store.shedding:
                self._end(self._measure(), limit)
            return
        rss = self._measure()
        if not store.shedding and rss > limit:
            store.shedding = True
            self.episodes += 1
            _log.warning(
                "series.shedding",
                rss_mb=round(rss, 1),
                limit_mb=limit,
                series=len(store),
                message="memory past statistics.max_memory_mb: lines for new "
                "series are dropped (memory_limit) until it falls below 90%",
            )
        elif store.shedding and rss < limit * _RESUME_AT:
            self._end(rss, limit)

    def _end(self, rss: float, limit: int) -> None:
        self._store.shedding = False
        _log.info(
            "series.shedding_ended",
            rss_mb=round(rss, 1),
            limit_mb=limit,
            shed_lines=self._store.shed_lines,
        )
