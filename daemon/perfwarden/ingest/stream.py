"""The stream socket's connections: framing, admission, reads taken in slices.

``metrics.stream.sock`` (SOCK_STREAM) carries either newline-delimited lines (socat,
``nc -U``) or DogStatsD's stream framing (each payload prefixed by its length as a
4-byte little-endian integer). The first bytes of a connection decide: a text line
never contains a NUL byte, and a length prefix below 16 MiB always does.

Stream connections are bounded in number, in all and per uid (SO_PEERCRED), so that
one sender cannot take every slot; a connection that completes no line (or frame)
for ``ingest.idle_timeout`` is closed, so idle or trickling clients give their slots
back. The limits are read when they apply, so a reload changes them.

A stream read (up to 64 KiB: thousands of lines, perhaps as many new series) is
parsed and committed in pieces of whole lines (or frames), at most
:data:`STREAM_SLICE` seconds a loop turn; past that the connection stops reading
and takes the rest on the next turns, in order (bench/hostile.md). A piece is what
fits in the rest of the slice at the connection's last cost per byte (at least
:data:`STREAM_MIN_PIECE`): an ordinary read is one piece, one commit.
"""

from __future__ import annotations

import asyncio
import mmap
import socket
import struct
import time
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Callable

    from perfwarden.config.model import IngestConfig
    from perfwarden.ingest.receivers import Ingestor

__all__ = [
    "STREAM_MIN_PIECE",
    "STREAM_SLICE",
    "StreamIngestProtocol",
    "StreamIngestServer",
]

#: A stream connection's first buffer: a read takes at most what is free of it.
#: Pages a read touched stay resident while the connection lasts, so this bounds
#: what busy connections hold: 32 MiB at the default 512 connections.
_STREAM_BUFFER: Final = 1 << 16
#: Loop time a stream connection's data may take before the loop runs again.
STREAM_SLICE: Final = 0.005
#: The least bytes of whole lines (or frames) parsed and committed at a time.
STREAM_MIN_PIECE: Final = 2 << 10
#: A new connection's guess at its seconds per byte (a first piece of ~12 KiB).
_FIRST_BYTE_COST: Final = 4e-7


class StreamIngestProtocol(asyncio.BufferedProtocol):
    """One stream connection: detects its framing, then splits it into payloads.

    A buffered protocol: the transport reads straight into this connection's
    buffer (64 KiB), so a read allocates nothing (a plain protocol gets a new
    ``bytes`` of up to 256 KiB per read and copies it into its own buffer). The
    buffer is an anonymous mmap, as the datagram receiver's: only the pages a
    connection's reads reach become resident. It is replaced (never resized: the
    transport may still hold a view of it) by a larger one when a line or a frame
    does not fit. What was read is taken from ``_start`` in pieces (at most
    :data:`STREAM_SLICE` a loop turn, reading paused meanwhile); once all whole
    lines or frames are taken, what follows them moves to the buffer's start.
    """

    def __init__(self, ingestor: Ingestor, server: StreamIngestServer) -> None:
        self._ingestor = ingestor
        self._server = server
        self._buffer = mmap.mmap(-1, _STREAM_BUFFER)
        self._view = memoryview(self._buffer)
        self._start = 0  # the first byte of the buffer not yet taken
        self._filled = 0  # the end of what was read into the buffer
        self._frame_bytes = 0  # the size of the frame being received, prefix included
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
            while self._take_piece(self._filled - self._start):
                self._ingestor.commit()
        self._server.release(self)
        start, filled = self._start, self._filled
        if filled > start and not self._framed and not self._discarding:
            # A last line without its newline.
            self._ingestor.feed(self._view[start:filled])
        elif filled > start and self._framed:
            self._ingestor.counters.drop("truncated_frame", 1)
        self._start = self._filled = 0
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
            before = self._start
            more = self._take_piece(size)
            self._ingestor.commit()
            now = clock()
            taken = self._start - before
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
        self._compact()
        if self._transport is not None:
            self._transport.resume_reading()  # nothing if it was not paused

    def _compact(self) -> None:
        """Move what follows the last whole line or frame to the buffer's start
        (a larger buffer if the frame being received does not fit)."""
        start, filled = self._start, self._filled
        left = filled - start
        if start and left:
            self._buffer.move(0, start, left)
        self._start, self._filled = 0, left
        if self._frame_bytes > len(self._buffer):
            self._grow(self._frame_bytes)

    def _take_piece(self, size: int) -> bool:
        """Feed about ``size`` bytes of whole lines or frames (at least one);
        is there more to take now?"""
        return self._take_frames(size) if self._framed else self._take_lines(size)

    def _take_lines(self, size: int) -> bool:
        buffer = self._buffer
        ingestor = self._ingestor
        start, filled = self._start, self._filled
        if self._discarding:
            newline = buffer.find(b"\n", start, filled)
            if newline < 0:
                self._start = filled
                return False
            start = newline + 1
            self._discarding = False
        end = buffer.rfind(b"\n", start, min(start + size, filled))
        if end < 0:  # a line longer than a piece, or no whole line
            end = buffer.find(b"\n", start, filled)
        if end >= 0:
            ingestor.feed(self._view[start : end + 1])
            start = end + 1
            self.progress = asyncio.get_running_loop().time()
            if buffer.find(b"\n", start, filled) >= 0:
                self._start = start
                return True
        if filled - start > ingestor.max_line:
            # An endless line: count it once as too long, then skip to its end.
            ingestor.counters.received += 1
            malformed = ingestor.counters.malformed
            malformed["too_long"] = malformed.get("too_long", 0) + 1
            self._discarding = True
            start = filled
        self._start = start
        return False

    def _take_frames(self, size: int) -> bool:
        max_frame = self._server.max_frame
        view = self._view
        filled = self._filled
        offset = self._start
        limit = offset + size
        self._frame_bytes = 0
        while filled - offset >= 4 and offset < limit:
            length = int.from_bytes(view[offset : offset + 4], "little")
            if length > max_frame:
                self._ingestor.counters.drop("oversize_frame", 1)
                assert self._transport is not None  # noqa: S101
                self._transport.abort()
                self._start = filled
                return False
            if filled - offset - 4 < length:
                self._frame_bytes = 4 + length
                break
            self._ingestor.feed(view[offset + 4 : offset + 4 + length])
            offset += 4 + length
        if offset > self._start:
            self.progress = asyncio.get_running_loop().time()
        self._start = offset
        return offset >= limit and filled - offset >= 4


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
