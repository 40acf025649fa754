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

A stream read (up to 256 KiB: 10,000 lines, perhaps as many new series) is parsed
and committed in pieces of whole lines (or frames), at most :data:`STREAM_SLICE`
seconds a loop turn; past that the connection stops reading and takes the rest on
the next turns, in order (bench/hostile.md). A piece is what fits in the rest of
the slice at the connection's last cost per byte (at least
:data:`STREAM_MIN_PIECE`): an ordinary read is one piece, one commit.

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
    "STREAM_MIN_PIECE",
    "STREAM_SLICE",
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
_RCVBUF_BYTES: Final = 8 << 20
#: Linux's SO_RCVBUFFORCE (not exported by Python's socket module): lets a
#: privileged daemon exceed net.core.rmem_max.
_SO_RCVBUFFORCE: Final = 33

#: Loop time a stream connection's data may take before the loop runs again.
STREAM_SLICE: Final = 0.005
#: The least bytes of whole lines (or frames) parsed and committed at a time.
STREAM_MIN_PIECE: Final = 2 << 10
#: A new connection's guess at its seconds per byte (a first piece of ~12 KiB).
_FIRST_BYTE_COST: Final = 4e-7

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


class StreamIngestProtocol(asyncio.Protocol):
    """One stream connection: detects its framing, then splits it into payloads."""

    def __init__(self, ingestor: Ingestor, server: StreamIngestServer) -> None:
        self._ingestor = ingestor
        self._server = server
        self._buffer = bytearray()
        self._framed: bool | None = None
        self._discarding = False  # inside an over-long line, until its newline
        self._transport: asyncio.Transport | None = None
        self.uid = -1
        #: Loop time of the last completed line or frame (or of the connection).
        self.progress = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None
        #: The next loop turn's share of what was read (reading paused till then).
        self._next_piece: asyncio.Handle | None = None
        #: Loop seconds per byte parsed and committed, as last measured.
        self._byte_cost = _FIRST_BYTE_COST

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

    @property
    def pending(self) -> bool:
        """Is read data waiting for the next loop turn?"""
        return self._next_piece is not None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if self._next_piece is not None:  # what was read is taken now, in order
            self._next_piece.cancel()
            self._next_piece = None
            while self._take_piece(len(self._buffer)):
                self._ingestor.commit()
        self._server.release(self)
        if self._buffer and not self._framed and not self._discarding:
            self._ingestor.feed(self._buffer)  # a last line without its newline
        elif self._buffer and self._framed:
            self._ingestor.counters.drop("truncated_frame", 1)
        self._buffer.clear()
        self._ingestor.commit()

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        if self._framed is None:
            if len(buffer) < 4 and b"\n" not in buffer:
                return
            self._framed = 0 in buffer[:4]
        if self._next_piece is None:  # else the next turn takes it, in order
            self._take()

    def _take(self) -> None:
        """Parse and commit what was read in pieces; past the slice, pause."""
        self._next_piece = None
        clock = time.perf_counter
        started = clock()
        ends = started + STREAM_SLICE
        while True:
            size = max(STREAM_MIN_PIECE, int((ends - started) / self._byte_cost))
            before = len(self._buffer)
            more = self._take_piece(size)
            self._ingestor.commit()
            now = clock()
            taken = before - len(self._buffer)
            if taken >= STREAM_MIN_PIECE:  # smaller ones time the clock
                self._byte_cost = max((now - started) / taken, 1e-9)
            started = now
            if not more:
                break
            if now >= ends:
                if self._transport is not None:
                    self._transport.pause_reading()
                loop = asyncio.get_running_loop()
                self._next_piece = loop.call_soon(self._take)
                return
        if self._transport is not None:
            self._transport.resume_reading()  # nothing if it was not paused

    def _take_piece(self, size: int) -> bool:
        """Feed about ``size`` bytes of whole lines or frames (at least one);
        is there more to take now?"""
        return self._take_frames(size) if self._framed else self._take_lines(size)

    def _take_lines(self, size: int) -> bool:
        buffer = self._buffer
        ingestor = self._ingestor
        max_line = ingestor.max_line
        if self._discarding:
            newline = buffer.find(b"\n")
            if newline < 0:
                buffer.clear()
                return False
            del buffer[: newline + 1]
            self._discarding = False
        end = buffer.rfind(b"\n", 0, size)
        if end < 0:  # a line longer than a piece, or no whole line
            end = buffer.find(b"\n")
        if end >= 0:
            ingestor.feed(memoryview(buffer)[: end + 1])
            del buffer[: end + 1]
            self.progress = asyncio.get_running_loop().time()
            if b"\n" in buffer:
                return True
        if len(buffer) > max_line:
            # An endless line: count it once as too long, then skip to its end.
            ingestor.counters.received += 1
            malformed = ingestor.counters.malformed
            malformed["too_long"] = malformed.get("too_long", 0) + 1
            buffer.clear()
            self._discarding = True
        return False

    def _take_frames(self, size: int) -> bool:
        buffer = self._buffer
        max_frame = self._server.max_frame
        offset = 0
        view = memoryview(buffer)
        try:
            while len(buffer) - offset >= 4 and offset < size:
                size = int.from_bytes(view[offset : offset + 4], "little")
                if size > max_frame:
                    self._ingestor.counters.drop("oversize_frame", 1)
                    assert self._transport is not None  # noqa: S101
                    self._transport.abort()
                    offset = len(buffer)
                    break
                if len(buffer) - offset - 4 < size:
                    break
                self._ingestor.feed(view[offset + 4 : offset + 4 + size])
                offset += 4 + size
        finally:
            view.release()
        if offset:
            self.progress = asyncio.get_running_loop().time()
        del buffer[:offset]
        return offset >= size and len(buffer) >= 4


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
