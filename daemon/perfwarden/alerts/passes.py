"""Evaluation passes judged a slice per loop turn: thousands of series do not
hold the loop.

Responsibility: judge the series updated since the previous pass, in the order
the store reports them, spending at most :data:`SLICE` seconds of loop time per
loop turn. :class:`~perfwarden.alerts.pacing.EvaluationPacer` decides when a
pass starts; this decides how much of it runs at once.

A pass queues the updated series and judges them a chunk at a time until its
slice is spent; the rest follows on the next loop turns, a slice each (a pass
that starts while a slice is due adds its series to the queue and leaves the
judging to that slice). A pass that starts
while another is unfinished queues behind it (a series already queued keeps its
place and is judged once, with every sample that arrived meanwhile), so each
series is still judged in order, once per pass, and every transition is the one
an all-at-once pass would make. Each series is judged whole, so the alert states
are consistent at every loop turn; what a command must see judged it waits for
with :meth:`SlicedPasses.settled` (every series queued before it was judged),
and :meth:`SlicedPasses.finish` judges the rest at once (shutdown).

The evaluation tick (every series judged: hold times elapse, silent series
become ``no_data``) takes its place in the same queue (:meth:`SlicedPasses.tick`):
it is judged a chunk at a time, in the store's order, as of the time its first
chunk ran, so it makes the transitions of an all-at-once tick in the same order;
passes that start meanwhile queue behind it, and a command waits for the whole
tick (it never sees one half ticked).

A pass across 5,000 series firing at once took 120-250 ms of loop time in one
piece, the tick over them 70-350 ms (bench/hostile.md); in slices the loop runs
at least every few ms.

Imports only the standard library (and the evaluator's and store's types).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import math
import time
from typing import TYPE_CHECKING, Final, TypeAlias

if TYPE_CHECKING:
    from collections.abc import Callable

    from perfwarden.alerts.evaluator import Evaluator
    from perfwarden.series.store import MetricStore, Series

__all__ = ["CHUNK", "SLICE", "SlicedPasses"]

#: Loop time spent judging before the loop runs again (seconds).
SLICE: Final = 0.005
#: Series judged between two looks at the clock.
CHUNK: Final = 64


class _Tick:
    """An evaluation tick in the queue: every series of the store, a chunk at a time."""

    def __init__(self, done: asyncio.Future[None]) -> None:
        self.done = done
        #: The store's series and the tick's time, taken when its first chunk runs.
        self.series: list[Series] | None = None
        self.now = 0.0
        self.next = 0


#: The queue's parts, in order: series of passes (by key: queued once per part)
#: and ticks.
_Part: TypeAlias = "dict[str, Series] | _Tick"


class SlicedPasses:
    """Runs evaluation passes and ticks, a slice per loop turn."""

    def __init__(
        self,
        store: MetricStore,
        evaluator: Evaluator,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._store = store
        self._evaluator = evaluator
        self._clock = clock
        #: What waits to be judged, in order.
        self._queue: collections.deque[_Part] = collections.deque()
        self._handle: asyncio.Handle | None = None
        #: Commands waiting for what was queued before them: (target, future).
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        #: Called with a tick's time as the tick takes it (its first chunk): the
        #: recording's tick mark, in order with the batches the tick judges.
        self.on_tick: Callable[[float], None] | None = None
        #: Series (a tick counts as one) ever queued and ever judged (or
        #: dropped); FIFO, so a command that arrived when ``queued`` was N is
        #: served once ``judged`` reaches N.
        self.queued = 0
        self.judged = 0
        #: Passes started, loop turns they (and the ticks) took, loop time they
        #: held (seconds).
        self.passes = 0
        self.slices = 0
        self.seconds = 0.0

    @property
    def waiting(self) -> int:
        """Series (a tick counts as one) queued and not yet judged."""
        return self.queued - self.judged

    def start(self) -> None:
        """A pass: queue the series updated since the last one; judge a slice now."""
        self.passes += 1
        updated = self._store.take_updated()
        if updated:
            if not self._queue or isinstance(self._queue[-1], _Tick):
                self._queue.append({})
            part = self._queue[-1]
            assert isinstance(part, dict)  # noqa: S101 - just made so
            for series in updated:
                if series.key not in part:
                    part[series.key] = series
                    self.queued += 1
        self._slice_unless_scheduled()

    async def tick(self) -> None:
        """Queue an evaluation tick behind what waits; return once it is done."""
        done = asyncio.get_running_loop().create_future()
        self._queue.append(_Tick(done))
        self.queued += 1
        self._slice_unless_scheduled()
        await done

    def finish(self) -> None:
        """Judge everything queued now (shutdown)."""
        if self._queue:
            self._slice(math.inf)

    async def settled(self) -> None:
        """Wait until everything queued so far has been judged."""
        if self.judged >= self.queued:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append((self.queued, waiter))
        await waiter

    def _slice_unless_scheduled(self) -> None:
        """Judge a slice now, unless one is due this loop turn (one slice a
        turn, however many passes start in it)."""
        if self._handle is None:
            self._slice(SLICE)

    def _slice(self, budget: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        started = self._clock()
        ends = started + budget
        queue = self._queue
        while queue:
            part = queue[0]
            if isinstance(part, _Tick):
                self._tick_chunk(part)
            else:
                self._pass_chunk(part)
            if self._clock() >= ends:
                break
        self.slices += 1
        self.seconds += self._clock() - started
        if queue:
            self._handle = asyncio.get_running_loop().call_soon(self._next_slice)
        self._tell()

    def _pass_chunk(self, part: dict[str, Series]) -> None:
        keys = list(itertools.islice(part, CHUNK))
        chunk = [part.pop(key) for key in keys]
        if not part:
            self._queue.popleft()
        self.judged += len(chunk)
        # A series that left the store meanwhile (a reload) is not judged.
        store = self._store
        self._evaluator.evaluate([s for s in chunk if store.get(s.key) is s])

    def _tick_chunk(self, tick: _Tick) -> None:
        if tick.series is None:
            tick.series = list(self._store)
            tick.now = self._evaluator.now()
            if self.on_tick is not None:
                self.on_tick(tick.now)
        chunk = tick.series[tick.next : tick.next + CHUNK]
        tick.next += CHUNK
        store = self._store
        present = [s for s in chunk if store.get(s.key) is s]
        self._evaluator.tick_series(present, tick.now)
        if tick.next >= len(tick.series):
            self._queue.popleft()
            self.judged += 1
            if not tick.done.done():  # its waiter was cancelled (shutdown)
                tick.done.set_result(None)

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
