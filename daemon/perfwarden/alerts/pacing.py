"""When the evaluator judges freshly ingested series: at most once per short interval.

Responsibility: turn "a batch was committed" into evaluation passes, coalesced so
that their number does not grow with the number of batches.

Every ingest commit calls :meth:`EvaluationPacer.request`. A request after a quiet
spell (no pass within the last ``gap`` seconds) runs a pass on the next loop turn,
right after the batches of that turn, as before there was any pacing: a lone
crossing is judged at once. Under a steady stream of batches passes run at most
once per ``gap`` and each judges every series updated since the previous one, so
a series is evaluated at most once per ``gap`` however many batches fed it.
``gap = 0`` is one pass per loop turn.

An *urgent* request (the batch carried a value at or past a level of its series,
see :meth:`~perfwarden.series.store.MetricStore.take_urgent`) runs the pass on
the next loop turn whatever the gap: a crossing is not kept waiting behind the
coalescing. Any other change of judgement waits at most ``gap``.

:meth:`EvaluationPacer.flush` runs a due pass at once (the control server calls it
before a command, so ``stats`` and friends see every committed sample judged).

Imports only the standard library.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable

__all__ = ["EvaluationPacer"]


class EvaluationPacer:
    """Coalesces evaluation requests into passes at most ``gap`` seconds apart."""

    def __init__(
        self,
        run: Callable[[], None],
        loop: asyncio.AbstractEventLoop,
        gap: Callable[[], float],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``run`` is one evaluation pass; ``gap`` is read at every request, so a
        config reload changes it."""
        self._run = run
        self._loop = loop
        self._gap = gap
        self._clock = clock
        self._handle: asyncio.Handle | None = None
        self._soon = False  # the scheduled pass runs on the next loop turn
        self._last = -float("inf")
        #: Passes run, and requests folded into an already scheduled pass.
        self.passes = 0
        self.coalesced = 0

    @property
    def due(self) -> bool:
        """Is a pass scheduled and not yet run?"""
        return self._handle is not None

    def request(self, *, urgent: bool = False) -> None:
        """Ask for a pass that sees everything committed so far; ``urgent``: on
        the next loop turn, whatever the gap (a value past a level arrived)."""
        handle = self._handle
        if handle is not None:
            if not urgent or self._soon:
                self.coalesced += 1
                return
            handle.cancel()
        wait = -1.0 if urgent else self._last + self._gap() - self._clock()
        self._soon = wait <= 0
        if self._soon:
            self._handle = self._loop.call_soon(self._pass)
        else:
            self._handle = self._loop.call_later(wait, self._pass)

    def flush(self) -> None:
        """Run a scheduled pass now instead of at its time."""
        handle = self._handle
        if handle is not None:
            handle.cancel()
            self._pass()

    def cancel(self) -> None:
        """Drop a scheduled pass (shutdown)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _pass(self) -> None:
        self._handle = None
        self._last = self._clock()
        self.passes += 1
        self._run()
