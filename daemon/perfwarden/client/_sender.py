"""The client's datagram path: lines packed into datagrams, delivered without loss.

The application's thread only appends the line to a queue (``deque.append`` is
atomic: no lock, no send on the caller's thread). A background thread,
``perfwarden-client``, wakes ``flush_interval`` after the first line, or as soon as
about a datagram's worth of lines is queued, joins the queued lines with ``\n``
into datagrams of at most ``max_datagram`` bytes (8 KiB, DogStatsD's Unix-socket
default) and sends them, non-blocking::

    application thread                     flusher thread (perfwarden-client)
    -------------------------------------  --------------------------------------
    add(line): queue.append(line)           asleep until woken, then flush_interval
      flusher asleep: wake it  ---------->    (or until a datagram's worth is queued)
      a datagram's worth queued: hurry it   pack queued lines into datagrams, send
                                              EAGAIN (the daemon's queue is full):
                                                keep the datagram in the backlog,
                                                poll(POLLOUT), send them in order
                                              backlog over max_backlog bytes:
                                                drop the oldest datagram, count it
    flush(timeout): the same packing and sending on the caller's thread, then wait
      up to timeout for the backlog (and at interpreter exit)

The kernel queues only ``net.unix.max_dgram_qlen`` (10) datagrams per socket, so a
burst faster than the daemon reads would otherwise be lost. The backlog keeps the
order of lines. Lines are dropped, and counted in ``dropped``, only when the daemon
is away (no socket, connection refused: retried at most once a second) or the
backlog is over its bound.
"""

from __future__ import annotations

import atexit
import collections
import errno
import os
import threading
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket

__all__ = ["DEFAULT_MAX_BACKLOG", "DEFAULT_MAX_DATAGRAM", "DatagramSender"]

DEFAULT_MAX_DATAGRAM = 8192
#: Bytes of datagrams held while the daemon's queue is full (~1000 datagrams).
DEFAULT_MAX_BACKLOG = 8 * 1024 * 1024
EXIT_FLUSH_SECONDS = 2.0
"""How long the last datagrams may wait for the daemon at interpreter exit."""

_RETRY_AFTER = 1.0
_FIRST_GUESS = 256  # lines per datagram before any was packed (~32-byte lines)
_POLL_SECONDS = 0.05
_QUEUE_FULL = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS})


class DatagramSender:
    """Buffers lines into datagrams for one Unix datagram socket path."""

    def __init__(
        self,
        path: str,
        *,
        flush_interval: float = 0.005,
        max_datagram: int = DEFAULT_MAX_DATAGRAM,
        max_backlog: int = DEFAULT_MAX_BACKLOG,
    ) -> None:
        self._path = path
        self._flush_interval = flush_interval
        self._max_datagram = max_datagram
        self._max_backlog = max_backlog
        #: Lines that could not be delivered (daemon away, backlog over its bound).
        self.dropped = 0
        #: Lines handed to the kernel.
        self.sent = 0
        self._reset()
        os.register_at_fork(after_in_child=self._reset)
        atexit.register(self.flush, EXIT_FLUSH_SECONDS)

    def _reset(self) -> None:
        # Lines the application queued; only the flusher or flush() takes them.
        self._queue: collections.deque[str] = collections.deque()
        # Held by whoever packs and sends, so that datagrams leave in order.
        self._lock = threading.Lock()
        # (payload, lines) waiting for room in the daemon's queue, oldest first.
        self._backlog: collections.deque[tuple[bytes, int]] = collections.deque()
        self._backlog_bytes = 0
        self._sock: socket.socket | None = None
        self._retry_at = 0.0
        self._awake = False
        self._wake = threading.Event()
        # Set by add() when about a datagram's worth of lines is queued: the
        # flusher then sends before its interval is up.
        self._full = threading.Event()
        self._lines_per_datagram = _FIRST_GUESS
        self._flusher: threading.Thread | None = None

    @property
    def backlog(self) -> int:
        """Datagrams waiting for room in the daemon's queue."""
        return len(self._backlog)

    def add(self, line: str) -> None:
        """Queue one line (the per-call path: keep it short)."""
        queue = self._queue
        queue.append(line)
        if not self._awake:
            self._awake = True
            if self._flusher is None:
                self._start_flusher()
            self._wake.set()
        elif len(queue) == self._lines_per_datagram:
            self._full.set()

    def flush(self, timeout: float = 0.0) -> bool:
        """Send what is queued; wait up to *timeout* seconds for a backlog to
        drain. True when nothing is left waiting."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                self._pack_locked()
                self._drain_locked()
                sock, waiting = self._sock, bool(self._backlog)
            remaining = deadline - time.monotonic()
            if not waiting or sock is None or remaining <= 0:
                return not waiting
            _wait_writable(sock, min(remaining, _POLL_SECONDS))

    # -- under the lock ------------------------------------------------------------

    def _pack_locked(self) -> None:
        """Turn the queued lines into datagrams, each sent (or kept) in order.

        The lines are joined and encoded once and cut at newlines into datagrams of
        at most ``max_datagram`` bytes, so the work per line is one ``popleft``; a
        single line longer than that goes alone in a datagram of its own.
        """
        queue = self._queue
        count = len(queue)
        if not count:
            return
        popleft = queue.popleft
        text = "\n".join([popleft() for _ in range(count)]).encode()
        limit, start, end = self._max_datagram, 0, len(text)
        self._lines_per_datagram = max(1, limit * count // (end + 1))
        while start < end:
            stop = start + limit
            if stop >= end:
                stop = end
            else:
                cut = text.rfind(b"\n", start, stop + 1)
                if cut > start:
                    stop = cut
                else:  # one line longer than a datagram
                    cut = text.find(b"\n", stop)
                    stop = end if cut < 0 else cut
            payload = text[start:stop]
            self._send_locked(payload, payload.count(b"\n") + 1)
            start = stop + 1

    def _send_locked(self, payload: bytes, lines: int) -> None:
        if self._backlog:
            self._queue_locked(payload, lines)
            self._drain_locked()
            return
        sock = self._socket()
        if sock is None:
            self.dropped += lines
            return
        try:
            sock.send(payload)
        except OSError as exc:
            if exc.errno in _QUEUE_FULL:
                self._queue_locked(payload, lines)
                return
            self.dropped += lines  # ECONNREFUSED, ENOENT: the daemon is gone
            self._drop_socket()
            return
        self.sent += lines

    def _queue_locked(self, payload: bytes, lines: int) -> None:
        self._backlog.append((payload, lines))
        self._backlog_bytes += len(payload)
        while self._backlog_bytes > self._max_backlog:
            old, old_lines = self._backlog.popleft()
            self._backlog_bytes -= len(old)
            self.dropped += old_lines

    def _drain_locked(self) -> None:
        """Send waiting datagrams in order until the daemon's queue is full."""
        backlog = self._backlog
        while backlog:
            sock = self._socket()
            if sock is None:
                self._discard_backlog_locked()
                return
            payload, lines = backlog[0]
            try:
                sock.send(payload)
            except OSError as exc:
                if exc.errno in _QUEUE_FULL:
                    return
                self._drop_socket()
                self._discard_backlog_locked()
                return
            backlog.popleft()
            self._backlog_bytes -= len(payload)
            self.sent += lines

    def _discard_backlog_locked(self) -> None:
        self.dropped += sum(lines for _, lines in self._backlog)
        self._backlog.clear()
        self._backlog_bytes = 0

    def _socket(self) -> socket.socket | None:
        if self._sock is not None:
            return self._sock
        now = time.monotonic()
        if now < self._retry_at:
            return None
        # Imported on the first send, not with the client: socket is ~1.5 MiB of
        # the ~2.7 MiB a bare interpreter would otherwise grow by on import.
        import socket  # noqa: PLC0415

        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        sock.setblocking(False)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            self._retry_at = now + _RETRY_AFTER
            return None
        self._sock = sock
        return sock

    def _drop_socket(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._retry_at = time.monotonic() + _RETRY_AFTER

    # -- the flusher thread --------------------------------------------------------

    def _start_flusher(self) -> None:
        with self._lock:
            if self._flusher is not None:
                return
            self._flusher = threading.Thread(
                target=self._flush_loop, name="perfwarden-client", daemon=True
            )
            self._flusher.start()

    def _flush_loop(self) -> None:
        wake, queue = self._wake, self._queue
        while True:
            # Cleared before looking at the queue: add() after this line wakes us;
            # add() before it left a line that the check below sees.
            self._awake = False
            if not queue and not self._backlog:
                wake.wait()
                wake.clear()
            # The interval, or less once a datagram's worth is queued.
            self._full.wait(self._flush_interval)
            self._full.clear()
            try:  # noqa: SIM105 - no contextlib in the light client
                self.flush(_POLL_SECONDS)
            except Exception:  # noqa: BLE001, S110 - the flusher never dies
                pass


def _wait_writable(sock: socket.socket, timeout: float) -> None:
    """Until the daemon's queue has room (a connected datagram socket polls
    writable then) or *timeout*."""
    # Not contextlib.suppress here and below: contextlib would cost every
    # application ~0.3 MiB (tests/unit/test_client_import.py).
    import select  # noqa: PLC0415 - as socket in _socket()

    try:  # noqa: SIM105
        select.select([], [sock], [], timeout)
    except (OSError, ValueError):  # closed under us: the caller finds it gone
        pass
