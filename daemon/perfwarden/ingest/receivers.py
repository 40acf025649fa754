"""Metric ingest: the datagram and stream sockets, framing, and line accounting.

``metrics.sock`` (SOCK_DGRAM) is drained on every wake-up of the event loop: the
kernel queues only ``net.unix.max_dgram_qlen`` (10 by default) datagrams per Unix
socket and DogStatsD clients drop on EAGAIN, so taking one datagram per loop turn
would lose data before it is ever seen.

``metrics.stream.sock`` (SOCK_STREAM) carries either newline-delimited lines (socat,
``nc -U``) or DogStatsD's stream framing (each payload prefixed by its length as a
4-byte little-endian integer). The first bytes of a connection decide: a text line
never contains a NUL byte, and a length prefix below 16 MiB always does.

Stream connections are bounded in number, in all and per uid (SO_PEERCRED), so that
one sender cannot take every slot; a connection that completes no line (or frame)
for ``ingest.idle_timeout`` is closed, so idle or trickling clients give their slots
back. The limits are read when they apply, so a reload changes them.

Every line is accounted: ``received = accepted + malformed + ignored + dropped``.
"""

from __future__ import annotations

import asyncio
import mmap
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from perfwarden.config.model import IngestConfig
from perfwarden.ingest.statsd import Batch, parse
from perfwarden.logs.setup import RateLimiter, get_logger

if TYPE_CHECKING:
    from collections.abc import Callable

    from perfwarden.series.store import MetricStore

__all__ = [
    "DatagramReceiver",
    "IngestCounters",
    "Ingestor",
    "StreamIngestProtocol",
]

#: Large enough for any Unix datagram the kernel will deliver (wmem_max * 2 cap),
#: so that no datagram is ever truncated unseen.
_RECV_BUFFER: Final = 1 << 20
#: Datagrams taken per wake-up before yielding to the rest of the loop.
_DRAIN_LIMIT: Final = 512
#: A stream connection's first buffer: a read takes at most what is free of it.
#: Pages a read touched stay resident while the connection lasts, so this bounds
#: what busy connections hold: 32 MiB at the default 512 connections.
_STREAM_BUFFER: Final = 1 << 16
_RCVBUF_BYTES: Final = 8 << 20
#: Linux's SO_RCVBUFFORCE (not exported by Python's socket module): lets a
#: privileged daemon exceed net.core.rmem_max.
_SO_RCVBUFFORCE: Final = 33

#: The default ``ingest.max_timestamp_age``: ``|T`` stamps older than this many
#: seconds are dropped as ``late_timestamp``. Ten minutes covers a client's retry
#: buffer.
STAMP_MAX_AGE: Final = IngestConfig().max_timestamp_age
#: The default ``ingest.max_timestamp_ahead``: stamps further ahead are dropped as
#: ``future_timestamp``; a minute covers NTP-less clock drift.
STAMP_MAX_AHEAD: Final = IngestConfig().max_timestamp_ahead

_log = get_logger("perfwarden.ingest")


@dataclass(slots=True)
class IngestCounters:
    """Cumulative ingest accounting, as shown by ``status --json`` under ``ingest``."""

    received: int = 0
    accepted: int = 0
    ignored: int = 0
    malformed: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    datagrams: int = 0
    bytes: int = 0
    connections_accepted: int = 0
    connections_refused: int = 0
    connections_refused_per_uid: int = 0
    connections_idle_closed: int = 0
    connections_open: int = 0

    def drop(self, reason: str, lines: int) -> None:
        """Count ``lines`` received and dropped for ``reason``."""
        if lines:
            self.received += lines
            self.dropped[reason] = self.dropped.get(reason, 0) + lines

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (totals next to the per-reason breakdowns)."""
        return {
            "received": self.received,
            "accepted": self.accepted,
            "malformed": sum(self.malformed.values()),
            "ignored": self.ignored,
            "dropped": sum(self.dropped.values()),
            "malformed_by_reason": dict(sorted(self.malformed.items())),
            "dropped_by_reason": dict(sorted(self.dropped.items())),
            "datagrams": self.datagrams,
            "bytes": self.bytes,
            "connections": {
                "accepted": self.connections_accepted,
                "refused": self.connections_refused,
                "refused_per_uid": self.connections_refused_per_uid,
                "idle_closed": self.connections_idle_closed,
                "open": self.connections_open,
            },
        }


def count_lines(data: bytes | bytearray | memoryview) -> int:
    """Lines in a payload that will not be parsed (empty lines are not lines)."""
    return sum(1 for line in bytes(data).split(b"\n") if line.strip(b"\r"))


class Ingestor:
    """Parses payloads into a batch and commits batches to the store.

    ``on_commit`` is called after each commit (the evaluator hooks in there so that a
    violation is judged right after the batch that carries it).
    """

    def __init__(
        self,
        store: MetricStore,
        max_line: int,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.max_line = max_line
        #: ``ingest.signed_gauges: delta``: signed gauge values are changes.
        self.gauge_deltas = False
        #: ``ingest.max_timestamp_age`` / ``max_timestamp_ahead`` (seconds): the
        #: skew a ``|T`` stamp may have, applied from the next batch on.
        self.max_timestamp_age = STAMP_MAX_AGE
        self.max_timestamp_ahead = STAMP_MAX_AHEAD
        self.counters = IngestCounters()
        self.on_commit: Callable[[], None] | None = None
        self._batch = Batch()
        self._clock = clock
        self._wall = wall
        self._malformed_log = RateLimiter(1.0, clock)

    def _set_stamp_bounds(self) -> None:
        wall = self._wall()
        self._batch.stamp_bounds = (
            wall - self.max_timestamp_age,
            wall + self.max_timestamp_ahead,
        )

    def feed(self, payload: bytes | bytearray | memoryview) -> None:
        """Parse one payload (a datagram, a frame, or a chunk of whole lines)."""
        self.counters.bytes += len(payload)
        if not self._batch.received:  # the first payload of a batch
            self._set_stamp_bounds()
        parse(payload, self._batch, self.max_line, gauge_deltas=self.gauge_deltas)

    def commit(self) -> None:
        """Move the parsed batch into the store and the counters."""
        batch = self._batch
        if not batch.received:
            return
        counters = self.counters
        store = self.store
        before, shed_before = store.dropped_lines, store.shed_lines
        now = self._clock()
        offset = now - self._wall() if batch.stamped else 0.0
        store.ingest(batch, now, offset, owned=True)  # the batch is cleared below
        dropped = store.dropped_lines - before
        shed = store.shed_lines - shed_before
        counters.received += batch.received
        counters.accepted += batch.accepted - dropped - shed
        counters.ignored += batch.ignored
        if dropped:
            counters.dropped["series_limit"] = (
                counters.dropped.get("series_limit", 0) + dropped
            )
        for reason, count in batch.skewed.items():
            counters.dropped[reason] = counters.dropped.get(reason, 0) + count
        if shed:
            counters.dropped["memory_limit"] = (
                counters.dropped.get("memory_limit", 0) + shed
            )
        if batch.malformed:
            for reason, count in batch.malformed.items():
                counters.malformed[reason] = counters.malformed.get(reason, 0) + count
            bad = batch.malformed_total
            if batch.example is not None and self._malformed_log.allow(bad):
                reason, line = batch.example
                _log.warning(
                    "ingest.malformed",
                    reason=reason,
                    line=line,
                    suppressed=self._malformed_log.take_suppressed(),
                    malformed_total=sum(counters.malformed.values()),
                )
        batch.clear()
        if self.on_commit is not None:
            self.on_commit()


class DatagramReceiver:
    """Drains ``metrics.sock`` on every readiness callback."""

    def __init__(
        self,
        sock: socket.socket,
        ingestor: Ingestor,
        max_datagram: Callable[[], int],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._sock = sock
        self._ingestor = ingestor
        self._max_datagram = max_datagram
        self._loop = loop
        # Anonymous mmap, not bytearray: a bytearray is zero-filled, so all 1 MiB
        # is resident from the start; these pages become resident only as far as
        # the largest datagram yet received reaches.
        self._buffer = mmap.mmap(-1, _RECV_BUFFER)
        self._view = memoryview(self._buffer)
        sock.setblocking(False)
        try:
            sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, _RCVBUF_BYTES)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF_BYTES)
        loop.add_reader(sock.fileno(), self.drain_now)

    def close(self) -> None:
        """Stop reading (the socket itself is closed by its owner)."""
        self._loop.remove_reader(self._sock.fileno())

    def drain_now(self) -> None:
        """Take every datagram queued now (bounded per call) and commit them."""
        ingestor = self._ingestor
        counters = ingestor.counters
        recv_into = self._sock.recv_into
        view = self._view
        max_datagram = self._max_datagram()
        for _ in range(_DRAIN_LIMIT):
            try:
                size = recv_into(self._buffer)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                _log.error("ingest.recv_failed", error=str(exc))
                break
            counters.datagrams += 1
            if size > max_datagram:
                counters.bytes += size
                counters.drop("oversize_datagram", count_lines(view[:size]))
                continue
            ingestor.feed(view[:size])
        ingestor.commit()


class StreamIngestProtocol(asyncio.BufferedProtocol):
    """One stream connection: detects its framing, then splits it into payloads.

    A buffered protocol: the transport reads straight into this connection's
    buffer (64 KiB), so a read allocates nothing (a plain protocol gets a new
    ``bytes`` of up to 256 KiB per read and copies it into its own buffer). The
    buffer is an anonymous mmap, as the datagram receiver's: only the pages a
    connection's reads reach become resident. It is replaced (never resized: the
    transport may still hold a view of it) by a larger one when a line or a frame
    does not fit, and what follows the last complete line or frame moves to its
    start.
    """

    def __init__(self, ingestor: Ingestor, server: StreamIngestServer) -> None:
        self._ingestor = ingestor
        self._server = server
        self._buffer = mmap.mmap(-1, _STREAM_BUFFER)
        self._view = memoryview(self._buffer)
        self._filled = 0  # bytes of self._buffer not yet taken
        self._frame_bytes = 0  # the size of the frame being received, prefix included
        self._framed: bool | None = None
        self._discarding = False  # inside an over-long line, until its newline
        self._transport: asyncio.Transport | None = None
        self.uid = -1
        #: Loop time of the last completed line or frame (or of the connection).
        self.progress = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # noqa: S101 - stream server
        self._transport = transport
        self.uid = _peer_uid(transport)
        if not self._server.admit(self):
            transport.abort()
            return
        self._ingestor.counters.connections_accepted += 1
        loop = asyncio.get_running_loop()
        self.progress = loop.time()
        self._idle_timer = loop.call_later(self._server.idle_timeout(), self._idle)

    def _idle(self) -> None:
        """Close the connection if it completed nothing for the idle timeout."""
        loop = asyncio.get_running_loop()
        timeout = self._server.idle_timeout()
        quiet = loop.time() - self.progress
        if quiet < timeout:
            self._idle_timer = loop.call_later(timeout - quiet, self._idle)
            return
        self._idle_timer = None
        self._ingestor.counters.connections_idle_closed += 1
        assert self._transport is not None  # noqa: S101 - set before the timer
        self._transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        self._server.release(self)
        filled = self._filled
        if filled and not self._framed and not self._discarding:
            self._ingestor.feed(self._view[:filled])  # a last line without its newline
        elif filled and self._framed:
            self._ingestor.counters.drop("truncated_frame", 1)
        self._filled = 0
        self._ingestor.commit()

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._filled == len(self._buffer):  # a line or frame longer than it
            self._grow(2 * len(self._buffer))
        return self._view[self._filled :]

    def _grow(self, size: int) -> None:
        """Move to a larger buffer (the old one may still be exported)."""
        larger = mmap.mmap(-1, size)
        larger[: self._filled] = self._view[: self._filled]
        self._buffer = larger
        self._view = memoryview(larger)

    def buffer_updated(self, nbytes: int) -> None:
        filled = self._filled + nbytes
        self._filled = filled
        if self._framed is None:
            if filled < 4 and self._buffer.find(b"\n", 0, filled) < 0:
                return
            self._framed = 0 in self._buffer[: min(filled, 4)]
        take = self._take_frames if self._framed else self._take_lines
        taken = take(filled)
        left = filled - taken
        if taken and left:
            self._buffer.move(0, taken, left)
        self._filled = left
        if self._frame_bytes > len(self._buffer):
            self._grow(self._frame_bytes)
        self._ingestor.commit()

    def _take_lines(self, filled: int) -> int:
        """Feed the complete lines of the buffer; how many bytes were taken."""
        buffer = self._buffer
        ingestor = self._ingestor
        start = 0
        if self._discarding:
            newline = buffer.find(b"\n", 0, filled)
            if newline < 0:
                return filled
            start = newline + 1
            self._discarding = False
        end = buffer.rfind(b"\n", start, filled)
        if end >= 0:
            ingestor.feed(self._view[start : end + 1])
            start = end + 1
            self.progress = asyncio.get_running_loop().time()
        if filled - start > ingestor.max_line:
            # An endless line: count it once as too long, then skip to its end.
            ingestor.counters.received += 1
            malformed = ingestor.counters.malformed
            malformed["too_long"] = malformed.get("too_long", 0) + 1
            self._discarding = True
            return filled
        return start

    def _take_frames(self, filled: int) -> int:
        """Feed the complete frames of the buffer; how many bytes were taken."""
        max_frame = self._server.max_frame
        view = self._view
        offset = 0
        self._frame_bytes = 0
        while filled - offset >= 4:
            size = int.from_bytes(view[offset : offset + 4], "little")
            if size > max_frame:
                self._ingestor.counters.drop("oversize_frame", 1)
                assert self._transport is not None  # noqa: S101
                self._transport.abort()
                return filled
            if filled - offset - 4 < size:
                self._frame_bytes = 4 + size
                break
            self._ingestor.feed(view[offset + 4 : offset + 4 + size])
            offset += 4 + size
        if offset:
            self.progress = asyncio.get_running_loop().time()
        return offset


def _peer_uid(transport: asyncio.Transport) -> int:
    sock = transport.get_extra_info("socket")
    try:
        raw = sock.getsockopt(
            socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")
        )
    except OSError:
        return -1
    return int(struct.unpack("3i", raw)[1])


class StreamIngestServer:
    """Admission control for stream connections: a cap in all and one per uid."""

    def __init__(self, ingestor: Ingestor, limits: Callable[[], IngestConfig]) -> None:
        self._ingestor = ingestor
        self._limits = limits
        self._open: set[StreamIngestProtocol] = set()
        self._per_uid: dict[int, int] = {}

    @property
    def max_frame(self) -> int:
        """The largest frame a framed connection may send (``max_datagram_bytes``)."""
        return self._limits().max_datagram_bytes

    def idle_timeout(self) -> float:
        """Seconds a connection may go without completing a line or frame."""
        return self._limits().idle_timeout

    def protocol_factory(self) -> StreamIngestProtocol:
        """A protocol for a new connection (pass to ``create_unix_server``)."""
        return StreamIngestProtocol(self._ingestor, self)

    def admit(self, protocol: StreamIngestProtocol) -> bool:
        """Register a new connection unless a cap is reached (counted)."""
        limits = self._limits()
        counters = self._ingestor.counters
        if len(self._open) >= limits.max_connections:
            counters.connections_refused += 1
            return False
        held = self._per_uid.get(protocol.uid, 0)
        if held >= limits.max_connections_per_uid:
            counters.connections_refused += 1
            counters.connections_refused_per_uid += 1
            return False
        self._open.add(protocol)
        self._per_uid[protocol.uid] = held + 1
        counters.connections_open = len(self._open)
        return True

    def release(self, protocol: StreamIngestProtocol) -> None:
        """Forget a closed connection."""
        if protocol not in self._open:
            return
        self._open.discard(protocol)
        left = self._per_uid[protocol.uid] - 1
        if left:
            self._per_uid[protocol.uid] = left
        else:
            del self._per_uid[protocol.uid]
        self._ingestor.counters.connections_open = len(self._open)
