"""Metric ingest: the datagram socket and line accounting.

``metrics.sock`` (SOCK_DGRAM) is drained on every wake-up of the event loop: the
kernel queues only ``net.unix.max_dgram_qlen`` (10 by default) datagrams per Unix
socket and DogStatsD clients drop on EAGAIN, so taking one datagram per loop turn
would lose data before it is ever seen. The stream socket's connections are in
:mod:`perfwarden.ingest.stream`; both feed an :class:`Ingestor`.

Every line is accounted: ``received = accepted + malformed + ignored + dropped``.
"""

from __future__ import annotations

import mmap
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from perfwarden.config.model import IngestConfig
from perfwarden.ingest.statsd import Batch, parse
from perfwarden.logs.setup import RateLimiter, get_logger

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable

    from perfwarden.series.store import MetricStore

__all__ = ["DatagramReceiver", "IngestCounters", "Ingestor", "count_lines"]

#: Large enough for any Unix datagram the kernel will deliver (wmem_max * 2 cap),
#: so that no datagram is ever truncated unseen.
_RECV_BUFFER: Final = 1 << 20
#: Datagrams taken per wake-up before yielding to the rest of the loop.
_DRAIN_LIMIT: Final = 512
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
        # The same objects for the store's life (emptied and refilled).
        self._sinks = store.sinks
        self._routes = store.routes
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
        parse(
            payload,
            self._batch,
            self.max_line,
            gauge_deltas=self.gauge_deltas,
            sinks=self._sinks,
            routes=self._routes,
        )

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
        try:
            store.ingest(batch, now, offset, owned=True)  # the batch is cleared below
        except Exception as exc:  # noqa: BLE001 - a bug: lose this batch, not the rest
            _log.exception("ingest.commit_failed", error=str(exc), lines=batch.received)
            counters.drop("internal_error", batch.received)
            batch.clear()
            return
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
