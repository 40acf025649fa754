"""Which plugin call runs in which worker thread, and the CPU each has used.

A plain (synchronous) plugin method runs in a thread of its own
(:func:`.plugin_calls.in_daemon_thread`), which shares one GIL with the event
loop. Pure Python gives the GIL up every few milliseconds, but one long C call that
does not release it (a regular expression that backtracks, ``sum`` over a huge
range, sorting millions of items) holds the loop for its whole length, and nothing
on the loop can notice until it ends. So each such call is a :class:`ThreadCall`
that notes its thread's CPU clock; the loop watch
(:mod:`perfwarden.sampling.loop_watch`) reads every clock on each tick
(:meth:`ThreadCalls.clocks`) and, after a stall, blames the thread that was on the
CPU for it, while a :class:`~perfwarden.sampling.gil_probe.GilProbe` (running
while any such call does) could not get the GIL either
(:meth:`ThreadCalls.blame`). The runtime then counts the stall toward
the plugin's circuit breaker (:func:`.plugin_breaker.held_loop`).

Thread CPU clocks come from ``pthread_getcpuclockid``; where Python lacks it no
thread is ever blamed.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import TYPE_CHECKING, Any, Final

from perfwarden.sampling.gil_probe import GilProbe

if TYPE_CHECKING:
    from collections.abc import Callable

    from perfwarden.optimize.plugin_handle import PluginHandle

__all__ = ["ThreadCall", "ThreadCalls"]

#: Ended calls kept past this many when no loop watch prunes them.
_UNWATCHED: Final = 256


class ThreadCall:
    """One plugin call made in a worker thread: call it (in that thread) as the
    function it wraps; its CPU time is then readable from any thread."""

    __slots__ = (
        "_calls",
        "_clock",
        "_function",
        "_key",
        "_started",
        "counted",
        "final",
        "owner",
        "reported",
        "stalled",
        "what",
    )

    def __init__(
        self,
        calls: ThreadCalls,
        key: int,
        owner: PluginHandle,
        what: str,
        function: Callable[..., Any],
    ) -> None:
        self._calls = calls
        self._key = key
        self._function = function
        self._clock: int | None = None
        self._started = 0.0
        self.owner = owner
        self.what = what
        #: The thread's CPU seconds for the whole call, once it has ended.
        self.final: float | None = None
        #: Whether :meth:`ThreadCalls.clocks` has shown :attr:`final` once.
        self.reported = False
        #: The longest stall of the event loop blamed on this call (seconds).
        self.stalled = 0.0
        #: Whether the call's one failure has been counted (:meth:`first_count`).
        self.counted = False

    def first_count(self) -> bool:
        """True the first time only: the call's failure is counted once, whether
        it stalled the loop, timed out or raised, in whatever order."""
        first, self.counted = not self.counted, True
        return first

    def __call__(self, *args: object) -> Any:
        getcpuclockid = getattr(time, "pthread_getcpuclockid", None)
        if getcpuclockid is not None:
            self._clock = getcpuclockid(threading.get_ident())
        self._started = time.thread_time()
        self._calls.running[self._key] = self
        try:
            return self._function(*args)
        finally:
            self.final = time.thread_time() - self._started
            self._calls.probe.unwant()

    def cpu(self) -> float | None:
        """CPU seconds the call has used so far; None if unknown (no clock, or
        its thread ended between two looks)."""
        if self.final is not None:
            return self.final
        if self._clock is None:
            return None
        try:
            used = time.clock_gettime(self._clock) - self._started
        except OSError:  # the thread ended just now
            return self.final
        return used


class ThreadCalls:
    """The plugin calls running in worker threads (and those that ended since the
    loop watch last looked), keyed by a serial number: thread idents are reused."""

    def __init__(
        self,
        on_blame: Callable[[ThreadCall, float], None],
        probe: GilProbe | None = None,
    ) -> None:
        self._on_blame = on_blame
        self.probe = GilProbe() if probe is None else probe
        self._serial = itertools.count()
        #: Written by worker threads (one insertion each, atomic under the GIL),
        #: read and pruned by the loop thread.
        self.running: dict[int, ThreadCall] = {}

    def track(
        self, owner: PluginHandle, what: str, function: Callable[..., Any]
    ) -> ThreadCall:
        """``function`` wrapped to be run in a worker thread as ``owner``'s
        ``what`` call; the result tells whether a stall was blamed on it. The
        GIL probe runs from now until the call has run (so call the result)."""
        if len(self.running) > _UNWATCHED:
            # Nobody reads the clocks (a runtime without a loop watch): forget
            # the calls that ended.
            for key in [k for k, c in self.running.items() if c.final is not None]:
                del self.running[key]
        self.probe.want()
        return ThreadCall(self, next(self._serial), owner, what, function)

    def clocks(self) -> dict[int, float]:
        """CPU seconds used by each call, by key: the running ones, and once more
        each one that ended since the last look (so its last stretch is seen)."""
        seen: dict[int, float] = {}
        for key, call in list(self.running.items()):
            if call.final is not None:
                if call.reported:
                    del self.running[key]
                    continue
                call.reported = True
            used = call.cpu()
            if used is not None:
                seen[key] = used
        return seen

    def gil_wait(self, since: float) -> float:
        """How long the GIL probe was kept waiting since ``since``."""
        return self.probe.late_since(since)

    def blame(self, key: int, seconds: float) -> str | None:
        """The call ``key`` held the event loop for ``seconds``: recorded on it,
        and the first time, passed to ``on_blame``; its plugin's name, if the
        call is still known."""
        call = self.running.get(key)
        if call is None:
            return None
        first = call.stalled == 0.0
        call.stalled = max(call.stalled, seconds)
        if first:
            self._on_blame(call, seconds)
        return call.owner.name
