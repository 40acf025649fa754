"""Log lines to an output without ever blocking the caller: a bounded queue drained
by one writer thread.

structlog renders each event to one string on the calling thread (the event loop,
mostly); :class:`QueuedLineWriter` is the structlog *logger* that receives it. It
only appends the string to a queue; a daemon thread, ``perfwarden-log-writer``,
drains the queue and writes whole lines to the output's file descriptor::

    caller (event loop)                      writer thread
    ---------------------------------------  -------------------------------------
    log.info(...) -> render -> msg(line)
      fewer than max_queued queued: put ---> get() plus whatever else is queued
      queue full: drop the line, count it     join, encode, os.write(fd) until done
      next line after drops: put(count) ---> count -> one ``log.dropped`` line
                                              EAGAIN: wait until writable, retry
                                              EPIPE (reader gone): discard, count
                                              other OSError: drop the batch, count,
                                                ``log.dropped`` before the next line

Nothing is lost silently: every line that is not written is counted (:meth:`stats`,
``perfwarden status`` under ``log``: ``queue_full``, ``write_error``, ``closed`` for
an output whose reader is gone, ``stopped`` for lines after :meth:`close`), and once
lines flow again one ``log.dropped`` event (``count``, ``reason``: ``queue_full`` or
``write_error``) stands where lines are missing. :meth:`close` writes what is queued
within a deadline; :meth:`begin_shutdown` lets the last lines of a stopping daemon in
past a full queue.

The writer uses ``os.write`` on the descriptor, never ``sys.stdout``'s buffer: a
daemon thread blocked inside a buffered write holds the buffer's lock, and interpreter
shutdown then aborts the process ("could not acquire lock for
<_io.BufferedWriter name='<stdout>'> at interpreter shutdown"). In a child made by
``os.fork()`` (``multiprocessing``) the writer thread does not exist: the child drops
the parent's queued lines (the parent writes them) and writes its own synchronously.
"""

from __future__ import annotations

import contextlib
import io
import os
import queue
import select
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, Final, TextIO

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["DEFAULT_MAX_QUEUED", "SHUTDOWN_RESERVE", "QueuedLineWriter", "StdoutLines"]

DEFAULT_MAX_QUEUED: Final = 4096
"""Lines held while the output does not take them (a few MB at most)."""

SHUTDOWN_RESERVE: Final = 256
"""Lines accepted past a full queue once :meth:`QueuedLineWriter.begin_shutdown`."""

_BATCH_CHARS: Final = 1024 * 1024
_METHODS: Final = (
    "msg",
    "log",
    "debug",
    "info",
    "warn",
    "warning",
    "fatal",
    "failure",
    "err",
    "error",
    "critical",
    "exception",
)
_CLOSED_NOTE: Final = (
    b"perfwarden: log output closed (broken pipe); further log lines are discarded "
    b"and counted (perfwarden status, under log)\n"
)


class _Barrier(threading.Event):
    """Queued by :meth:`QueuedLineWriter.flush`; set once the lines before are out."""


# A queue item: a line, a count of lines dropped before it, a flush barrier, or
# ``None`` (stop).
_Item = str | int | _Barrier | None

_LIVE: weakref.WeakSet[QueuedLineWriter] = weakref.WeakSet()


class QueuedLineWriter:
    """A structlog logger whose methods queue the rendered line and return at once.

    ``render_dropped(count, reason)`` renders the ``log.dropped`` line (on the writer
    thread), so that it has the format of every other line.
    """

    def __init__(
        self,
        stream: TextIO,
        render_dropped: Callable[[int, str], str],
        *,
        max_queued: int = DEFAULT_MAX_QUEUED,
    ) -> None:
        if max_queued < 1:
            msg = f"max_queued must be at least 1, not {max_queued}"
            raise ValueError(msg)
        self.max_queued = max_queued
        self._stream = stream
        self._render_dropped = render_dropped
        self._encoding = getattr(stream, "encoding", None) or "utf-8"
        self._fd: int | None
        try:
            self._fd = stream.fileno()
        except (AttributeError, OSError, ValueError):  # StringIO and friends
            self._fd = None
        with contextlib.suppress(OSError, ValueError):
            stream.flush()  # what the stream buffered before us goes out first
        self._limit = max_queued
        self._closed = False
        self._reset_queue()
        self.written = 0
        self._dropped = {"queue_full": 0, "write_error": 0, "closed": 0, "stopped": 0}
        self.output_closed = False
        self._mid_line = False  # a failed write left a partial line on the output
        self._unreported = 0  # write errors not yet announced by ``log.dropped``
        self._thread = threading.Thread(
            target=self._run, name="perfwarden-log-writer", daemon=True
        )
        self._thread.start()
        _LIVE.add(self)

    def _reset_queue(self) -> None:
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._qsize = self._queue.qsize
        self._put = self._queue.put
        self._lock = threading.Lock()
        self._pending = 0  # lines dropped since the last ``log.dropped`` marker

    # -- the caller's side (any thread, never blocks) ----------------------------------

    def msg(self, message: str) -> None:
        """Queue one rendered line; drop and count it if the queue is full."""
        if self._qsize() < self._limit:
            if self._pending:
                self._put_marker()
            self._put(message)
        else:
            self._drop()

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg

    def _drop(self) -> None:
        with self._lock:
            self._pending += 1
            self._dropped["stopped" if self._closed else "queue_full"] += 1

    def _put_marker(self) -> None:
        with self._lock:
            count, self._pending = self._pending, 0
        if count and not self._closed:
            self._put(count)

    def begin_shutdown(self) -> None:
        """Accept :data:`SHUTDOWN_RESERVE` lines past a full queue (the last ones)."""
        if not self._closed:
            self._limit = self.max_queued + SHUTDOWN_RESERVE

    def flush(self, timeout: float) -> bool:
        """Wait until every line queued so far is written (or given up as lost).

        False if ``timeout`` seconds passed first (the output is not being read).
        """
        if not self._thread.is_alive():
            return True
        self._put_marker()
        barrier = _Barrier()
        self._put(barrier)
        return barrier.wait(timeout)

    def close(self, timeout: float) -> bool:
        """Stop taking lines (later ones are counted as dropped), write what is
        queued within ``timeout`` seconds, then stop the thread.

        False if the deadline passed first; the thread, blocked on the output, is a
        daemon thread and does not hold up the process's exit.
        """
        if self._closed:
            return not self._thread.is_alive()
        deadline = time.monotonic() + timeout
        flushed = self.flush(timeout)
        self._closed = True
        self._limit = 0
        self._put(None)
        self._thread.join(max(0.0, deadline - time.monotonic()))
        return flushed and not self._thread.is_alive()

    def stats(self) -> dict[str, Any]:
        """Counters for ``perfwarden status``: lines written, dropped (by reason),
        queued now, the bound, and whether the output is still open."""
        with self._lock:
            dropped = dict(self._dropped)
        return {
            "written": self.written,
            "dropped": sum(dropped.values()),
            "dropped_by_reason": dropped,
            "queued": self._qsize(),
            "max_queued": self.max_queued,
            "output": "closed" if self.output_closed else "open",
        }

    # -- the writer thread -------------------------------------------------------------

    def _run(self) -> None:
        get, get_nowait = self._queue.get, self._queue.get_nowait
        while True:
            item = get()
            lines: list[str] = []
            barriers: list[_Barrier] = []
            size = 0
            stop = False
            while True:
                if isinstance(item, str):
                    lines.append(item)
                    size += len(item)
                elif isinstance(item, int):
                    if not self.output_closed:  # nobody would read the marker
                        lines.append(self._dropped_line(item, "queue_full"))
                elif item is None:
                    stop = True
                    break
                else:
                    barriers.append(item)
                if size >= _BATCH_CHARS:
                    break
                try:
                    item = get_nowait()
                except queue.Empty:
                    break
            if lines:
                self._write_lines(lines)
            for barrier in barriers:
                barrier.set()
            if stop:
                return

    def _dropped_line(self, count: int, reason: str) -> str:
        try:
            return self._render_dropped(count, reason)
        except Exception:  # noqa: BLE001 - the writer thread must not die of it
            return f'{{"event": "log.dropped", "count": {count}, "reason": "{reason}"}}'

    def _write_lines(self, lines: list[str]) -> None:
        if self.output_closed:
            self._count_lost(len(lines), "closed")
            return
        if self._unreported:
            lines.insert(0, self._dropped_line(self._unreported, "write_error"))
            self._unreported = 0
        text = "\n".join(lines) + "\n"
        if self._mid_line:
            text = "\n" + text
        data = text.encode(self._encoding, "backslashreplace")
        done, error = self._write_all(data)
        if error is None:
            self._mid_line = False
            self.written += len(lines)
            return
        # Lines that were not completely written are lost; the partial one (if
        # any) is ended by the next write.
        lost = data.count(b"\n", done)
        self._mid_line = done > 0 and data[done - 1 : done] != b"\n"
        self.written += len(lines) - lost
        if isinstance(error, BrokenPipeError):
            self.output_closed = True
            self._count_lost(lost, "closed")
            with contextlib.suppress(OSError):
                os.write(2, _CLOSED_NOTE)
        else:
            self._count_lost(lost, "write_error")
            self._unreported += lost

    def _count_lost(self, count: int, reason: str) -> None:
        with self._lock:
            self._dropped[reason] += count

    def _write_all(self, data: bytes) -> tuple[int, OSError | None]:
        """Write ``data``; return the bytes written and the error that stopped it."""
        fd = self._fd
        if fd is None:
            try:
                self._stream.write(data.decode(self._encoding))
                self._stream.flush()
            except ValueError:  # closed
                return 0, BrokenPipeError("stream closed")
            except OSError as exc:
                return 0, exc
            return len(data), None
        view = memoryview(data)
        done = 0
        while done < len(data):
            try:
                done += os.write(fd, view[done:])
            except BlockingIOError:  # someone made the descriptor non-blocking
                with contextlib.suppress(OSError, ValueError):
                    select.select([], [fd], [], 1.0)
            except OSError as exc:
                return done, exc
        return done, None

    # -- fork --------------------------------------------------------------------------

    def _after_fork_in_child(self) -> None:
        # The parent writes the lines it queued; this process has no writer thread
        # and is not the daemon's event loop, so it writes its own lines directly.
        self._reset_queue()
        for name in _METHODS:
            setattr(self, name, self._write_now)

    def _write_now(self, message: str) -> None:
        self._write_lines([message])


def _after_fork_in_child() -> None:
    for writer in list(_LIVE):
        writer._after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)


class StdoutLines(io.TextIOBase):
    """A ``sys.stdout`` that hands whole lines to a :class:`QueuedLineWriter`.

    Installed by ``perfwarden run`` so that a stray ``print()`` (a plugin's, say)
    neither blocks the loop nor splits a JSON log line: text is held until its
    newline, then queued like a log line. ``fileno()`` and ``isatty()`` are the real
    stdout's.
    """

    def __init__(self, writer: QueuedLineWriter, original: TextIO) -> None:
        super().__init__()
        self._writer = writer
        self.original = original
        self._partial = ""
        self._lock = threading.Lock()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        """The real stdout's encoding."""
        return self.original.encoding

    def writable(self) -> bool:
        """Always: lines are queued."""
        return True

    def write(self, s: str) -> int:
        """Queue the complete lines of ``s``; keep a trailing partial line."""
        with self._lock:
            *lines, self._partial = (self._partial + s).split("\n")
        for line in lines:
            self._writer.msg(line)
        return len(s)

    def flush(self) -> None:
        """Nothing to do: a partial line waits for its newline."""

    def fileno(self) -> int:
        """The real stdout's descriptor."""
        return self.original.fileno()

    def isatty(self) -> bool:
        """Whether the real stdout is a terminal."""
        return self.original.isatty()
