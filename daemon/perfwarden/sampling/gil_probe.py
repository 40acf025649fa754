"""Whether some thread holds the GIL: a thread that only sleeps, and is late when
it cannot get it back.

The loop watch (:mod:`.loop_watch`) uses it to tell a stall caused by a thread
holding the GIL (the probe is as late as the loop) from one in which the loop
thread was blocked some other way, in a system call with the GIL free (the probe
is on time). It runs only while wanted (:meth:`GilProbe.want`, by the plugin
runtime for as long as a plain plugin call runs in a worker thread), so an idle
daemon pays nothing for it (bench/hostile.md: 2 ms of CPU per second while on).
A hung call abandoned at its timeout keeps it on: that thread may still take the
GIL.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["NAP", "GilProbe"]

#: How long the probe sleeps at a time (seconds).
NAP: Final = 0.02


class GilProbe:
    """A thread that naps :data:`NAP` at a time while wanted, noting how late it
    wakes; :meth:`late_since` is the longest it was kept waiting."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._wanted = 0
        self._running = False
        #: When the current nap began, None when the probe is not running (the
        #: loop reads it: a probe still waiting for the GIL has not noted its
        #: lateness yet).
        self._asleep_since: float | None = None
        self._latest = (0.0, 0.0)  # (woke at, late by)

    def want(self) -> None:
        """Probe until a matching :meth:`unwant`; call it before starting the
        thread to watch, since nothing can start the probe while that thread
        holds the GIL."""
        with self._lock:
            self._wanted += 1
            if self._running:
                return
            self._running = True
            self._asleep_since = self._clock()
        threading.Thread(
            target=self._run, name="perfwarden-gil-probe", daemon=True
        ).start()

    def unwant(self) -> None:
        """One wanter less: the probe stops after its current nap when none is left."""
        with self._lock:
            self._wanted -= 1

    @property
    def running(self) -> bool:
        return self._running

    def _run(self) -> None:
        while True:
            started = self._clock()
            self._asleep_since = started
            time.sleep(NAP)
            woke = self._clock()
            self._latest = (woke, woke - started - NAP)
            with self._lock:
                if self._wanted <= 0:
                    self._running = False
                    self._asleep_since = None
                    return

    def late_since(self, since: float) -> float:
        """The longest the probe was kept from running since ``since`` (a clock
        value): its last noted lateness, or how overdue its current nap is."""
        woke, late = self._latest
        asleep_since = self._asleep_since
        overdue = 0.0 if asleep_since is None else self._clock() - asleep_since - NAP
        return max(late if woke >= since else 0.0, overdue)
