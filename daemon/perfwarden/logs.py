"""structlog configuration: JSON lines on stdout, the console renderer on a TTY.

Every event carries ``event``, ``level`` and an ISO ``timestamp`` (UTC). Event names
are the contract's dotted names (``daemon.started``, ``ingest.malformed`` ...).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, Final, TextIO

import structlog

__all__ = ["RateLimiter", "configure_logging", "get_logger"]

_LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def configure_logging(
    level: str = "info", *, stream: TextIO | None = None, json: bool | None = None
) -> None:
    """Configure structlog once for the process.

    ``json=None`` picks JSON unless ``stream`` is a terminal.
    """
    out = stream if stream is not None else sys.stdout
    if json is None:
        json = not out.isatty()
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=True)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.WriteLoggerFactory(out),
        cache_logger_on_first_use=True,
    )


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

    def allow(self) -> bool:
        """True when an event may be logged now (then ``suppressed`` restarts at 0)."""
        now = self._clock()
        if now >= self._next:
            self._next = now + self._period
            return True
        self.suppressed += 1
        return False

    def take_suppressed(self) -> int:
        """How many events were suppressed since the last allowed one (and reset)."""
        count, self.suppressed = self.suppressed, 0
        return count
