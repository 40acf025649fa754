"""structlog configuration: JSON lines on stdout, the console renderer on a TTY.

Every event carries ``event``, ``level`` and an ISO ``timestamp`` (UTC). Event names
are the contract's dotted names (``daemon.started``, ``ingest.malformed`` ...).

Events are rendered on the calling thread and written by the writer thread of
:mod:`perfwarden.logs.writer`: a stdout that nobody reads (a paused pager, a hung log
shipper) or that was closed never blocks or stops the event loop. Lines it cannot
hold are counted (:func:`log_stats`) and announced by one ``log.dropped`` event
(``count``, ``reason``) where they are missing; :func:`shutdown_logging` writes what
is queued within a deadline.

Under systemd, when ``$JOURNAL_STREAM`` names the stream stdout is connected to, each
line starts with its syslog priority (``<4>{"event": ...}`` for a warning, sd-daemon's
``<N>`` prefix): journald strips it and files the line at that priority, so
``journalctl -p warning`` works and ``journalctl -o cat`` still shows one JSON object
per line.

The level is ``--log-level`` when given (pinned for the daemon's life), else
``logging.level`` of the config, changed by a reload (:func:`set_log_level`).
"""

from __future__ import annotations

import io
import logging
import os
import sys
import time
from typing import TYPE_CHECKING, Any, Final, TextIO, cast

import structlog

from perfwarden.logs.writer import DEFAULT_MAX_QUEUED, QueuedLineWriter, StdoutLines

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "FLUSH_SECONDS",
    "RateLimiter",
    "begin_shutdown",
    "configure_logging",
    "flush_logging",
    "get_logger",
    "log_stats",
    "set_log_level",
    "shutdown_logging",
    "stdout_is_journal",
]

FLUSH_SECONDS: Final = 3.0
"""How long the last lines may take to leave at exit before they are given up."""

_LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
#: Level of each structlog method name, for the filter and the syslog priority.
_METHOD_LEVELS: Final = {
    **_LEVELS,
    "warn": logging.WARNING,
    "exception": logging.ERROR,
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}
#: sd-daemon(3) priorities: <7> debug, <6> info, <4> warning, <3> err, <2> crit.
_SYSLOG_PRIORITY: Final = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}
DEFAULT_LEVEL: Final = "info"

_writer: QueuedLineWriter | None = None
# The level filter reads these on every call, so that a reload can change them.
_threshold = logging.INFO
_pinned = False
_owned: list[TextIO] = []  # streams opened here, closed by shutdown_logging


def configure_logging(
    level: str | None = DEFAULT_LEVEL,
    *,
    stream: TextIO | None = None,
    json: bool | None = None,
    max_queued: int = DEFAULT_MAX_QUEUED,
    capture_stdout: bool = False,
    journal: bool | None = None,
) -> QueuedLineWriter:
    """Configure structlog once for the process; return the line writer.

    A ``level`` is pinned: :func:`set_log_level` leaves it alone; ``None`` means
    ``info`` until the config says otherwise. ``json=None`` picks JSON unless
    ``stream`` is a terminal. ``max_queued`` lines are held while the output does
    not take them; more are dropped and counted. ``capture_stdout`` replaces
    ``sys.stdout`` by :class:`StdoutLines`, so that a stray ``print()`` goes through
    the same queue as whole lines. ``journal=None`` prefixes syslog priorities when
    :func:`stdout_is_journal` says the output is journald's stream.
    """
    global _writer, _threshold, _pinned  # noqa: PLW0603 - structlog's configuration is process-wide too
    _threshold = _LEVELS[level or DEFAULT_LEVEL]
    _pinned = level is not None
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
    if journal is None:
        journal = stdout_is_journal(out, os.environ)
    if journal:
        renderer = _SyslogPrefixed(renderer)
    processors: list[Any] = [
        _filter_by_level,
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
        # Everything reaches _filter_by_level, which a reload can retune.
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        logger_factory=lambda *_args: writer,
        cache_logger_on_first_use=True,
    )
    return writer


def set_log_level(level: str | None) -> bool:
    """Filter at *level* from now on (``None``: the default), unless ``--log-level``
    pinned it. True when the level changed."""
    global _threshold  # noqa: PLW0603 - read by _filter_by_level
    wanted = _LEVELS[level or DEFAULT_LEVEL]
    if _pinned or wanted == _threshold:
        return False
    _threshold = wanted
    return True


def stdout_is_journal(stream: TextIO, environ: Mapping[str, str]) -> bool:
    """Whether *stream* is the journald stream ``$JOURNAL_STREAM`` (``dev:inode``)
    names: set by systemd for ``StandardOutput=journal``, inherited by children
    whose output goes elsewhere, hence the comparison."""
    device, _, inode = environ.get("JOURNAL_STREAM", "").partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        status = os.fstat(stream.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        return False
    return (status.st_dev, status.st_ino) == (int(device), int(inode))


def _filter_by_level(_logger: Any, method_name: str, event: Any) -> Any:
    if _METHOD_LEVELS.get(method_name, logging.INFO) < _threshold:
        raise structlog.DropEvent
    return event


class _SyslogPrefixed:
    """Wraps a renderer: ``<priority>`` before each line, for journald."""

    def __init__(self, renderer: Any) -> None:
        self._renderer = renderer

    def __call__(self, logger: Any, method_name: str, event: Any) -> str:
        level = _METHOD_LEVELS.get(method_name, logging.INFO)
        line = self._renderer(logger, method_name, event)
        return f"<{_SYSLOG_PRIORITY[level]}>{line}"


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
