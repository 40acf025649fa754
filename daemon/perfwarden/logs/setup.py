"""structlog configuration: JSON lines on stdout, the console renderer on a TTY.

Every event carries ``event``, ``level`` and an ISO ``timestamp`` (UTC). Event names
are the contract's dotted names (``daemon.started``, ``ingest.malformed`` ...).

Events are rendered on the calling thread and written by the writer thread of
:mod:`perfwarden.logs.writer`: a stdout that nobody reads (a paused pager, a hung log
shipper) or that was closed never blocks or stops the event loop. Lines it cannot
hold are counted (:func:`log_stats`) and announced by one ``log.dropped`` event
(``count``, ``reason``) where they are missing; :func:`shutdown_logging` writes what
is queued within a deadline.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any, Final, TextIO, cast

import structlog

from perfwarden.logs.writer import DEFAULT_MAX_QUEUED, QueuedLineWriter, StdoutLines

__all__ = [
    "FLUSH_SECONDS",
    "RateLimiter",
    "begin_shutdown",
    "configure_logging",
    "flush_logging",
    "get_logger",
    "log_stats",
    "shutdown_logging",
]

FLUSH_SECONDS: Final = 3.0
"""How long the last lines may take to leave at exit before they are given up."""

_LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

_writer: QueuedLineWriter | None = None
_owned: list[TextIO] = []  # streams opened here, closed by shutdown_logging


def configure_logging(
    level: str = "info",
    *,
    stream: TextIO | None = None,
    json: bool | None = None,
    max_queued: int = DEFAULT_MAX_QUEUED,
    capture_stdout: bool = False,
) -> QueuedLineWriter:
    """Configure structlog once for the process; return the line writer.

    ``json=None`` picks JSON unless ``stream`` is a terminal. ``max_queued`` lines
    are held while the output does not take them; more are dropped and counted.
    ``capture_stdout`` replaces ``sys.stdout`` by :class:`StdoutLines`, so that a
    stray ``print()`` goes through the same queue as whole lines.
    """
    global _writer  # noqa: PLW0603 - structlog's configuration is process-wide too
    out = stream if stream is not None else sys.stdout
    if isinstance(out, StdoutLines):
        out = out.original
    if out is None:  # started with stdout closed: the lines go nowhere
        out = _devnull()
    if json is None:
        json = not out.isatty()
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=True)
    )
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        renderer,
    ]
    if _writer is not None:
        _writer.close(FLUSH_SECONDS)
    writer = _writer = QueuedLineWriter(
        out, _dropped_renderer(processors), max_queued=max_queued
    )
    if capture_stdout:
        sys.stdout = cast("TextIO", StdoutLines(writer, out))
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=lambda *_args: writer,
        cache_logger_on_first_use=True,
    )
    return writer


def _devnull() -> TextIO:
    stream = open(os.devnull, "w")  # noqa: SIM115 - closed by shutdown_logging
    _owned.append(stream)
    return stream


def _dropped_renderer(processors: list[Any]) -> Any:
    """``render(count, reason)``: the ``log.dropped`` line, through ``processors``."""

    def render(count: int, reason: str) -> str:
        event: Any = {"event": "log.dropped", "count": count, "reason": reason}
        for processor in processors:
            event = processor(None, "warning", event)
        return str(event)

    return render


def log_stats() -> dict[str, Any]:
    """The writer's counters (``written``, ``dropped``, ``queued`` ...); ``{}`` if
    logging was not configured."""
    return _writer.stats() if _writer is not None else {}


def flush_logging(timeout: float = FLUSH_SECONDS) -> bool:
    """Wait until the lines logged so far are written; False after ``timeout``."""
    return _writer.flush(timeout) if _writer is not None else True


def begin_shutdown() -> None:
    """Let the last lines of a stopping daemon in even if the queue is full."""
    if _writer is not None:
        _writer.begin_shutdown()


def shutdown_logging(timeout: float = FLUSH_SECONDS) -> bool:
    """Write what is queued within ``timeout`` seconds, then stop the writer; later
    lines are counted as dropped. False if the output did not take them in time."""
    done = _writer.close(timeout) if _writer is not None else True
    while done and _owned:
        _owned.pop().close()
    return done


def get_logger(name: str | None = None) -> Any:
    """A bound structlog logger (typed ``Any``: structlog's proxies are dynamic)."""
    return structlog.get_logger(name)


class RateLimiter:
    """Allows at most one event per ``period`` seconds; counts what it suppressed."""

    def __init__(self, period: float, clock: Any = time.monotonic) -> None:
        self._period = period
        self._clock = clock
        self._next = 0.0
        self.suppressed = 0

    def allow(self, events: int = 1) -> bool:
        """True when one of ``events`` (say, the bad lines of one batch) may be
        logged now; the others, or all of them when not, count as suppressed."""
        now = self._clock()
        if now >= self._next:
            self._next = now + self._period
            self.suppressed += events - 1
            return True
        self.suppressed += events
        return False

    def take_suppressed(self) -> int:
        """How many events were suppressed since the last allowed one (and reset)."""
        count, self.suppressed = self.suppressed, 0
        return count
