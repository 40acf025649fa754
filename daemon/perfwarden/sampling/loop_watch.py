"""The event loop's own health: how late it wakes, and who held it when it stalled.

:class:`LoopWatch` is a task that sleeps :data:`TICK` and measures how late it
wakes: that lateness is the longest any callback held the loop meanwhile. A
lateness over :data:`STALL` is a stall: counted, logged as ``loop.stalled`` with
the culprit when one is known (the plugin runtime names a coroutine plugin whose
step ran that long; see :mod:`perfwarden.optimize.plugin_runtime`), and shown in
``perfwarden status`` under ``loop``.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Final

from perfwarden.logs.setup import get_logger

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["STALL", "TICK", "LoopWatch"]

#: How often the watch wakes (seconds).
TICK: Final = 0.02
#: A lateness past this is a stall (seconds).
STALL: Final = 0.1
_log = get_logger("perfwarden")


class LoopWatch:
    """Measures the loop's lateness; ``culprit(since)`` names who stalled it."""

    def __init__(
        self,
        culprit: Callable[[float], str | None] = lambda _: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._culprit = culprit
        self._clock = clock
        self.max_lag = 0.0
        self.stalls = 0
        self.last_stall: dict[str, Any] | None = None

    async def run(self) -> None:
        """Watch until cancelled."""
        while True:
            before = self._clock()
            await asyncio.sleep(TICK)
            now = self._clock()
            self.observe(now - before - TICK, now)

    def observe(self, lag: float, now: float) -> None:
        """Record one wake-up ``lag`` seconds late, at ``now``."""
        self.max_lag = max(self.max_lag, lag)
        if lag <= STALL:
            return
        self.stalls += 1
        culprit = self._culprit(now - lag - TICK)
        self.last_stall = {"seconds": round(lag, 3), "plugin": culprit}
        _log.warning("loop.stalled", seconds=round(lag, 3), plugin=culprit)

    def status(self) -> dict[str, Any]:
        """For ``perfwarden status``."""
        return {
            "max_lag_ms": round(self.max_lag * 1000, 1),
            "stalls": self.stalls,
            "stall_threshold_ms": STALL * 1000,
            "last_stall": self.last_stall,
        }
