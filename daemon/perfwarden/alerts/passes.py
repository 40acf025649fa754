"""Evaluation passes judged a slice per loop turn: thousands of series do not
hold the loop.

Responsibility: judge the series updated since the previous pass, in the order
the store reports them, spending at most :data:`SLICE` seconds of loop time per
loop turn. :class:`~perfwarden.alerts.pacing.EvaluationPacer` decides when a
pass starts; this decides how much of it runs at once.

A pass queues the updated series and judges them a chunk at a time until its
slice is spent; the rest follows on the next loop turns. A pass that starts
while another is unfinished queues behind it (a series already queued keeps its
place and is judged once, with every sample that arrived meanwhile), so each
series is still judged in order, once per pass, and every transition is the one
an all-at-once pass would make. Each series is judged whole, so the alert states
are consistent at every loop turn; what a command must see judged it waits for
with :meth:`SlicedPasses.settled` (every series queued before it was judged),
and :meth:`SlicedPasses.finish` judges the rest at once (shutdown).

A pass across 5,000 series firing at once took 120-250 ms of loop time in one
piece (bench/hostile.md); in slices the loop runs at least every few ms.

Imports only the standard library (and the evaluator's and store's types).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Callable

    from perfwarden.alerts.evaluator import Evaluator
    from perfwarden.series.store import MetricStore, Series

__all__ = ["CHUNK", "SLICE", "SlicedPasses"]

#: Loop time spent judging before the loop runs again (seconds).
SLICE: Final = 0.005
#: Series judged between two looks at the clock.
CHUNK: Final = 64


class SlicedPasses:
    """Runs evaluation passes over the updated series, a slice per loop turn."""

    def __init__(
        self,
        store: MetricStore,
        evaluator: Evaluator,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._store = store
        self._evaluator = evaluator
        self._clock = clock
        #: Series waiting to be judged, in order (by key: queued once).
        self._queue: dict[str, Series] = {}
        self._handle: asyncio.Handle | None = None
        #: Commands waiting for the series queued before them: (target, future).
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        #: Series ever queued and ever judged (or dropped); FIFO, so a command
        #: that arrived when ``queued`` was N is served once ``judged`` reaches N.
        self.queued = 0
        self.judged = 0
        #: Passes started, loop turns they took, loop time they held (seconds).
        self.passes = 0
        self.slices = 0
        self.seconds = 0.0

    @property
    def waiting(self) -> int:
        """Series queued and not yet judged."""
        return len(self._queue)

    def start(self) -> None:
        """A pass: queue the series updated since the last one; judge a slice now."""
        self.passes += 1
        queue = self._queue
        for series in self._store.take_updated():
            if series.key not in queue:
                queue[series.key] = series
                self.queued += 1
        self._slice(SLICE)

    def finish(self) -> None:
        """Judge every queued series now (shutdown)."""
        if self._queue:
            self._slice(math.inf)

    async def settled(self) -> None:
        """Wait until every series queued so far has been judged."""
        if self.judged >= self.queued:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append((self.queued, waiter))
        await waiter

    def _slice(self, budget: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        started = self._clock()
        ends = started + budget
        queue = self._queue
        store = self._store
        while queue:
            keys = list(itertools.islice(queue, CHUNK))
            chunk = [queue.pop(key) for key in keys]
            self.judged += len(chunk)
            # A series that left the store meanwhile (a reload) is not judged.
            self._evaluator.evaluate([s for s in chunk if store.get(s.key) is s])
            if self._clock() >= ends:
                break
        self.slices += 1
        self.seconds += self._clock() - started
        if queue:
            self._handle = asyncio.get_running_loop().call_soon(self._next_slice)
        self._tell()

    def _next_slice(self) -> None:
        self._handle = None
        self._slice(SLICE)

    def _tell(self) -> None:
        """Wake the commands whose series have all been judged."""
        if not self._waiters:
            return
        waiting = []
        for target, waiter in self._waiters:
            if waiter.done():
                continue  # its command was cancelled
            if self.judged >= target:
                waiter.set_result(None)
            else:
                waiting.append((target, waiter))
        self._waiters = waiting
