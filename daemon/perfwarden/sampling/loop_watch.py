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
:class:`GilProbe`, a thread that only sleeps, woke as late as the loop did, so the
GIL itself was taken (a loop blocked in a system call leaves the GIL free and the
probe on time, and a thread computing meanwhile is innocent). A stall in which no
thread ran much is the machine's (the daemon was not scheduled) and names nobody.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import TYPE_CHECKING, Any, Final, Protocol

from perfwarden.logs.setup import get_logger

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = [
    "HELD_SHARE",
    "STALL",
    "TICK",
    "GilProbe",
    "LoopWatch",
    "ThreadSuspects",
    "gil_holder",
]

#: How often the watch wakes (seconds).
TICK: Final = 0.02
#: A lateness past this is a stall (seconds).
STALL: Final = 0.1
#: The share of a stall a thread must have spent on the CPU to be blamed for it.
#: A thread holding the GIL runs for all of it on an idle machine, and for 40-60 %
#: of it on a 2-core machine at load 5 (bench/hostile.md); threads merely running
#: beside a stall the machine caused used 5 % of it.
HELD_SHARE: Final = 0.25
_log = get_logger("perfwarden")


class ThreadSuspects(Protocol):
    """Worker threads running code for the daemon, whose CPU clocks can be read."""

    def clocks(self) -> Mapping[int, float]:
        """CPU seconds each thread's call has used so far, by a key of its own."""
        ...

    def blame(self, key: int, seconds: float) -> str | None:
        """The call ``key`` held the loop ``seconds``; the name of whose call it
        was, or None if it is gone."""
        ...


class _NoThreads:
    def clocks(self) -> Mapping[int, float]:
        return {}

    def blame(self, key: int, seconds: float) -> str | None:
        return None


class GilProbe:
    """A thread that sleeps :data:`TICK` at a time and notes how late it wakes.

    Waking needs the GIL: while another thread holds it, the probe is as late as
    the loop. Its wake-ups are only kept for the last stretch, so it costs a
    wake-up per tick and no memory.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: When the current sleep began (the loop reads it: a probe still
        #: waiting for the GIL has not recorded its lateness yet).
        self._asleep_since = clock()
        self._latest: tuple[float, float] = (0.0, 0.0)  # (woke at, late by)

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name="perfwarden-gil-probe", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1)

    def _run(self) -> None:
        while True:
            self._asleep_since = started = self._clock()
            if self._stop.wait(TICK):
                return
            woke = self._clock()
            self._latest = (woke, woke - started - TICK)

    def late_since(self, since: float) -> float:
        """The longest the probe has been kept from running since ``since``:
        its last recorded lateness, or how overdue its current sleep is."""
        woke, late = self._latest
        overdue = self._clock() - self._asleep_since - TICK
        return max(late if woke >= since else 0.0, overdue)


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
    ``probe_late`` how late the :class:`GilProbe` was meanwhile.
    """
    if probe_late < lag / 2:
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
        self._probe = GilProbe(clock) if threads is not None else None
        self.max_lag = 0.0
        self.stalls = 0
        self.last_stall: dict[str, Any] | None = None

    async def run(self) -> None:
        """Watch until cancelled."""
        probe = self._probe
        if probe is not None:
            probe.start()
        try:
            clocks = self._threads.clocks()
            while True:
                before, loop_cpu = self._clock(), self._cpu_clock()
                await asyncio.sleep(TICK)
                now = self._clock()
                lag = now - before - TICK
                after = self._threads.clocks()
                holder = None
                if lag > STALL and probe is not None:
                    used = self._cpu_clock() - loop_cpu
                    late = probe.late_since(before)
                    holder = gil_holder(lag, used, late, clocks, after)
                clocks = after
                self.observe(lag, now, holder)
        finally:
            if probe is not None:
                probe.stop()

    def observe(self, lag: float, now: float, holder: int | None = None) -> None:
        """Record one wake-up ``lag`` seconds late, at ``now``; ``holder`` is the
        key of the thread that held the GIL meanwhile, if one did."""
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
        _log.warning("loop.stalled", seconds=seconds, plugin=culprit, via=via)

    def status(self) -> dict[str, Any]:
        """For ``perfwarden status``."""
        return {
            "max_lag_ms": round(self.max_lag * 1000, 1),
            "stalls": self.stalls,
            "stall_threshold_ms": STALL * 1000,
            "last_stall": self.last_stall,
        }
