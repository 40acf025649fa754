"""The daemon watching itself: its own memory, CPU, ingest rate and evaluation time.

:class:`SelfMonitor` samples the daemon's own process every second:
``perfwarden.self.memory_mb``, ``perfwarden.self.cpu_percent`` and, from the cumulative
counters it is given, ``perfwarden.self.ingest_lines_per_s`` and
``perfwarden.self.evaluation_ms`` (mean milliseconds per evaluation in the period).
The samples go, untagged, to the same :data:`~perfwarden.sampling.sink.Sink` as the
process sampler's (:mod:`.sampler`).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import TYPE_CHECKING, Final

from perfwarden.logs.setup import get_logger
from perfwarden.sampling.process_source import PsutilSource

if TYPE_CHECKING:
    from collections.abc import Callable

    from perfwarden.sampling.process_source import ProcessHandle
    from perfwarden.sampling.sink import Sink

__all__ = ["SelfMonitor"]

_log = get_logger("perfwarden.sampler")

_MIB: Final = float(2**20)


class SelfMonitor:
    """The daemon's own memory, CPU, ingest rate and evaluation time, every second.

    ``ingest_lines`` returns the cumulative number of lines received;
    ``evaluation`` returns ``(evaluations, seconds spent evaluating)`` so far. Both
    are optional; the rates are computed here from consecutive readings.
    """

    def __init__(
        self,
        sink: Sink,
        *,
        ingest_lines: Callable[[], int] | None = None,
        evaluation: Callable[[], tuple[int, float]] | None = None,
        interval: float = 1.0,
        process: ProcessHandle | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sink = sink
        self._ingest_lines = ingest_lines
        self._evaluation = evaluation
        self.interval = interval
        self._process = process or PsutilSource().open(os.getpid())
        self._clock = clock
        self._previous: tuple[float, int, tuple[int, float]] | None = None
        self._process.cpu_percent()  # prime
        #: Seconds the last :meth:`sample` took (its own cost).
        self.last_cost = 0.0

    async def run(self) -> None:
        """Sample every ``interval`` seconds until cancelled."""
        next_at = self._clock()
        while True:
            next_at = max(next_at + self.interval, self._clock())
            await asyncio.sleep(next_at - self._clock())
            try:
                self.sample()
            except Exception as exc:  # noqa: BLE001 - self-monitoring is best effort
                _log.warning("sampler.self_failed", error=repr(exc))

    def sample(self) -> None:
        """Send one reading of each self metric (a few /proc reads: µs)."""
        started = time.perf_counter()
        sink = self._sink
        tags: dict[str, str] = {}
        sink("perfwarden.self.memory_mb", tags, self._process.rss_bytes() / _MIB)
        sink("perfwarden.self.cpu_percent", tags, self._process.cpu_percent())
        now = self._clock()
        lines = self._ingest_lines() if self._ingest_lines else 0
        evaluation = self._evaluation() if self._evaluation else (0, 0.0)
        if self._previous is not None:
            before, lines_before, (count_before, seconds_before) = self._previous
            span = now - before
            if self._ingest_lines is not None and span > 0:
                rate = max(lines - lines_before, 0) / span
                sink("perfwarden.self.ingest_lines_per_s", tags, rate)
            evaluations = evaluation[0] - count_before
            if self._evaluation is not None and evaluations > 0:
                mean_ms = (evaluation[1] - seconds_before) / evaluations * 1000.0
                sink("perfwarden.self.evaluation_ms", tags, mean_ms)
        self._previous = (now, lines, evaluation)
        self.last_cost = time.perf_counter() - started
