"""The event loop's exception handler: errors asyncio cannot hand to a task, as
rate-limited log events instead of tracebacks on stderr.

The case that matters is running out of file descriptors (EMFILE, ENFILE): asyncio
then stops accepting on that socket for a second and calls this handler, for every
listening socket, every second, for as long as it lasts. Logged as it comes, that
fills the disk; here it is one ``daemon.fd_exhausted`` event, then at most one a
minute with the count of those suppressed, while asyncio's pause is the back-off.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any, Final

from perfwarden.logs.setup import RateLimiter, get_logger

if TYPE_CHECKING:
    import asyncio

__all__ = ["LoopErrors"]

_log = get_logger("perfwarden")
_EXHAUSTED: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_FD_LOG_PERIOD: Final = 60.0
_OTHER_LOG_PERIOD: Final = 1.0


class LoopErrors:
    """Counts and logs what reaches ``loop.set_exception_handler``."""

    def __init__(self) -> None:
        self.fd_exhausted = 0
        self.other = 0
        self._fd_log = RateLimiter(_FD_LOG_PERIOD)
        self._other_log = RateLimiter(_OTHER_LOG_PERIOD)

    def as_dict(self) -> dict[str, int]:
        """The counts, for ``status --json``."""
        return {"fd_exhausted": self.fd_exhausted, "other": self.other}

    def handle(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """The handler: one structured event, never a traceback per occurrence."""
        exc = context.get("exception")
        message = str(context.get("message", ""))
        if isinstance(exc, OSError) and exc.errno in _EXHAUSTED:
            self.fd_exhausted += 1
            if self._fd_log.allow():
                _log.error(
                    "daemon.fd_exhausted",
                    error=str(exc),
                    message=message,
                    count=self.fd_exhausted,
                    suppressed=self._fd_log.take_suppressed(),
                )
            return
        self.other += 1
        if self._other_log.allow():
            _log.error(
                "loop.error",
                message=message,
                exc_info=exc,
                suppressed=self._other_log.take_suppressed(),
            )
