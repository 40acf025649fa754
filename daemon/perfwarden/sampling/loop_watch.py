"""The event loop's own health: how late it wakes, and who held it when it stalled.

:class:`LoopWatch` is a task that sleeps :data:`TICK` and measures how late it
wakes: that lateness is the longest any callback held the loop meanwhile. A
lateness over :data:`STALL` is a stall: counted, logged as ``loop.stalled`` with
the culprit when one is known, and shown in ``perfwarden status`` under ``loop``.

Two kinds of culprit are found. A coroutine plugin whose step ran that long on the
loop is named by the plugin runtime (``via: coroutine``; see
:mod:`perfwarden.optimize.plugin_runtime`). A worker thread that held the GIL (a
synchronous plugin inside one long C call) leaves the loop thread waiting, idle,
while its own CPU clock runs. Three readings together name it (:func:`gil_holder`,
``via: thread``): the CPU clocks of the threads running plugin calls, read on every
tick (:class:`ThreadSuspects`), show one on the CPU for at least
:data:`HELD_SHARE` of the stall and longer than the loop thread; and
:class:`~.gil_probe.GilProbe`, a thread that only sleeps, woke about as late as
the loop did (:data:`GIL_WAIT_SHARE`), so the GIL itself was taken (a loop
blocked in a system call leaves the GIL free and the probe on time, and a thread
computing meanwhile is innocent). A stall in which no thread ran much is the
machine's (the daemon was not scheduled) and names nobody. Each stall that had
plugin threads running logs this evidence as shares of the stall.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Final, Protocol

from perfwarden.logs.setup import get_logger

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = [
    "GIL_WAIT_SHARE",
    "HELD_SHARE",
    "STALL",
    "TICK",
    "LoopWatch",
    "ThreadSuspects",
    "gil_holder",
]

#: How often the watch wakes (seconds).
TICK: Final = 0.02
#: A lateness past this is a stall (seconds).
STALL: Final = 0.1
#: The share of a stall a thread must have spent on the CPU to be blamed for it.
#: A thread holding the GIL runs for all of it on an idle machine, and for 27-39 %
#: of it on a 2-core machine at load 5-6, preempted the rest of the time still
#: holding it (bench/hostile.md, ``bench/gil_holders.py``).
HELD_SHARE: Final = 0.2
#: The share of a stall the GIL probe must have waited to run for the GIL to
#: count as taken: 0.99 beside a thread holding it; a loop blocked in a system
#: call leaves it on time.
GIL_WAIT_SHARE: Final = 0.8
_log = get_logger("perfwarden")


class ThreadSuspects(Protocol):
    """Worker threads running code for the daemon, whose CPU clocks can be read."""

    def clocks(self) -> Mapping[int, float]:
        """CPU seconds each thread's call has used so far, by a key of its own."""
        ...

    def gil_wait(self, since: float) -> float:
        """How long a thread that only sleeps was kept from the GIL since
        ``since`` (a clock value; 0 when none was watching)."""
        ...

    def blame(self, key: int, seconds: float) -> str | None:
        """The call ``key`` held the loop ``seconds``; the name of whose call it
        was, or None if it is gone."""
        ...


class _NoThreads:
    def clocks(self) -> Mapping[int, float]:
        return {}

    def gil_wait(self, since: float) -> float:
        return 0.0

    def blame(self, key: int, seconds: float) -> str | None:
        return None


def gil_holder(
    lag: float,
    loop_cpu: float,
    probe_late: float,
    before: Mapping[int, float],
    after: Mapping[int, float],
) -> int | None:
    """The thread that held the GIL through a stall of ``lag`` seconds, if one did.

    ``before`` and ``after`` are the threads' CPU clocks at the start and end of
    the tick (a thread absent from ``before`` started meanwhile, at zero);
    ``loop_cpu`` is what the loop thread itself used in the tick, and
    ``probe_late`` how long a sleeping thread was kept from the GIL meanwhile.
    """
    if probe_late < GIL_WAIT_SHARE * lag:
        return None  # the GIL was free: the loop was blocked some other way
    used, key = max(
        ((cpu - before.get(k, 0.0), k) for k, cpu in after.items()),
        default=(0.0, None),
    )
    if key is None or used < HELD_SHARE * lag or used <= loop_cpu:
        return None
    return key


class LoopWatch:
    """Measures the loop's lateness and names who stalled it: ``culprit(since)``
    for a coroutine step, ``threads`` for a thread holding the GIL."""

    def __init__(
        self,
        culprit: Callable[[float], str | None] = lambda _: None,
        threads: ThreadSuspects | None = None,
        clock: Callable[[], float] = time.monotonic,
        cpu_clock: Callable[[], float] = time.thread_time,
    ) -> None:
        self._culprit = culprit
        self._threads: ThreadSuspects = threads or _NoThreads()
        self._clock = clock
        self._cpu_clock = cpu_clock
        self.max_lag = 0.0
        self.stalls = 0
        self.last_stall: dict[str, Any] | None = None

    async def run(self) -> None:
        """Watch until cancelled."""
        clocks = self._threads.clocks()
        while True:
            before, loop_cpu = self._clock(), self._cpu_clock()
            await asyncio.sleep(TICK)
            now = self._clock()
            lag = now - before - TICK
            after = self._threads.clocks()
            holder, shares = None, {}
            if lag > STALL and after:
                used = self._cpu_clock() - loop_cpu
                late = self._threads.gil_wait(before)
                holder = gil_holder(lag, used, late, clocks, after)
                busiest = max(cpu - clocks.get(k, 0.0) for k, cpu in after.items())
                shares = {
                    "thread_cpu_share": round(busiest / lag, 3),
                    "loop_cpu_share": round(used / lag, 3),
                    "gil_wait_share": round(late / lag, 3),
                }
            clocks = after
            self.observe(lag, now, holder, shares)

    def observe(
        self,
        lag: float,
        now: float,
        holder: int | None = None,
        shares: Mapping[str, float] | None = None,
    ) -> None:
        """Record one wake-up ``lag`` seconds late, at ``now``; ``holder`` is the
        key of the thread that held the GIL meanwhile, if one did, and
        ``shares`` the evidence (logged: the busiest plugin thread's and the
        loop thread's CPU, and the probe's wait, as shares of the stall)."""
        self.max_lag = max(self.max_lag, lag)
        if lag <= STALL:
            return
        self.stalls += 1
        seconds = round(lag, 3)
        culprit: str | None = self._culprit(now - lag - TICK)
        via = None if culprit is None else "coroutine"
        if culprit is None and holder is not None:
            culprit = self._threads.blame(holder, lag)
            via = None if culprit is None else "thread"
        self.last_stall = {"seconds": seconds, "plugin": culprit, "via": via}
        _log.warning(
            "loop.stalled", seconds=seconds, plugin=culprit, via=via, **(shares or {})
        )

    def status(self) -> dict[str, Any]:
        """For ``perfwarden status``."""
        return {
            "max_lag_ms": round(self.max_lag * 1000, 1),
            "stalls": self.stalls,
            "stall_threshold_ms": STALL * 1000,
            "last_stall": self.last_stall,
        }
