"""Alert events published in slices: an incident's thousands do not hold the loop.

Responsibility: hand the evaluator's events to its :meth:`~perfwarden.alerts.
evaluator.Evaluator.publish` (the log line, watchers, subscribers) in the order
they happened, spending at most :data:`SLICE` seconds of loop time at a stretch.

An evaluation pass changes the alert states at once (a command that reads them
after the pass sees them all); only the publishing of the transitions may trail.
While publishing keeps within the slice, events go out as they come, inside the
pass, as if there were no publisher; once a loop turn has spent its slice, the
rest wait in a queue that a task drains, a slice per loop turn, so 5,000 alerts
firing in one pass (each a JSON log line and the optimizer's, the Alertmanager
route's and the dispatcher's attention: ~40 us) cost the loop 5 ms stretches,
not a quarter of a second. Nothing is dropped: :meth:`SlicedPublisher.flush`
publishes what waits (at shutdown).

Imports only the standard library (and the event type).
"""

from __future__ import annotations

import asyncio
import collections
import time
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from perfwarden.alerts.evaluator import AlertEvent

__all__ = ["SLICE", "SlicedPublisher"]

#: Loop time spent publishing before the loop runs again (seconds).
SLICE: Final = 0.005


class SlicedPublisher:
    """Publishes events in order, at most :data:`SLICE` seconds per loop turn."""

    def __init__(
        self,
        publish: Callable[[AlertEvent], None],
        clock: Callable[[], float] = time.perf_counter,
        judged: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """``judged`` (the daemon's evaluation passes' ``settled``) is awaited
        before each slice of waiting events: judging goes first, so an incident's
        alerts all fire as soon as unsliced, and their publishing follows."""
        self._publish = publish
        self._judged = judged
        self._clock = clock
        self._waiting: collections.deque[AlertEvent] = collections.deque()
        self._drainer: asyncio.Task[None] | None = None
        #: When this loop turn's slice ends (None: no event published this turn).
        self._slice_ends: float | None = None
        #: Events that waited for a later loop turn, and drains run (for tests
        #: and ``status``).
        self.deferred = 0
        self.drains = 0

    @property
    def waiting(self) -> int:
        """Events not yet published."""
        return len(self._waiting)

    def put(self, event: AlertEvent) -> None:
        """Publish ``event`` now if this loop turn's slice allows, else queue it
        behind the events already waiting."""
        if not self._waiting:
            now = self._clock()
            if self._slice_ends is None:
                try:
                    loop = asyncio.get_running_loop()
                except RuntimeError:  # a synchronous caller: no loop to yield to
                    self._publish(event)
                    return
                self._slice_ends = now + SLICE
                loop.call_soon(self._new_turn)
            if now < self._slice_ends:
                self._publish(event)
                return
        self._waiting.append(event)
        self.deferred += 1
        if self._drainer is None or self._drainer.done():
            loop = asyncio.get_running_loop()
            self._drainer = loop.create_task(self._drain(), name="alerts:publish")

    def flush(self) -> None:
        """Publish every waiting event now (shutdown: none is lost)."""
        while self._waiting:
            self._publish(self._waiting.popleft())
        if self._drainer is not None:
            self._drainer.cancel()

    def _new_turn(self) -> None:
        self._slice_ends = None

    async def _drain(self) -> None:
        self.drains += 1
        while self._waiting:
            await asyncio.sleep(0)  # the loop runs between slices
            if self._judged is not None:
                await self._judged()
            ends = self._clock() + SLICE
            while self._waiting:  # at least one a slice, however slow the clock
                self._publish(self._waiting.popleft())
                if self._clock() >= ends:
                    break
