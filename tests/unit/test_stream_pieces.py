"""perfwarden.ingest.stream: a huge stream read is parsed and committed a
piece at a time, over several loop turns, every line kept, in order."""

from __future__ import annotations

import asyncio
import socket
import struct
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from hypothesis import given, settings
from hypothesis import strategies as st

from perfwarden.config.model import IngestConfig
from perfwarden.ingest import stream as receivers
from perfwarden.ingest.receivers import Ingestor
from perfwarden.ingest.stream import StreamIngestServer
from perfwarden.series.store import MetricStore

if TYPE_CHECKING:
    import pytest

SERIES = 50
#: The shortest line these tests send: ``seq:0|g|#id:0`` and its newline.
SHORTEST = 14


def text(count: int, *, last_newline: bool = True) -> bytes:
    """Line i: the value i for series ``id:i % SERIES`` (each series' values rise)."""
    body = "\n".join(f"seq:{i}|g|#id:{i % SERIES}" for i in range(count))
    return (body + "\n" if last_newline else body).encode()


def frames(count: int, per_frame: int) -> bytes:
    """The same lines in DogStatsD's stream framing, ``per_frame`` lines a frame."""
    out = []
    for first in range(0, count, per_frame):
        ids = range(first, min(first + per_frame, count))
        body = "\n".join(f"seq:{i}|g|#id:{i % SERIES}" for i in ids).encode()
        out.append(struct.pack("<I", len(body)) + body)
    return b"".join(out)


def expected(count: int) -> dict[int, list[float]]:
    return {
        ident: [float(i) for i in range(ident, count, SERIES)]
        for ident in range(min(SERIES, count))
    }


class Receiver:
    """A real stream ingest socket on the running loop: what each commit
    added, and whether a connection ever left data for a later loop turn."""

    def __init__(self, directory: Path) -> None:
        self.path = str(directory / "stream.sock")
        self.store = MetricStore(lambda _: 100_000, 10_000)
        self.ingestor = Ingestor(self.store, 8192)
        self.counters = self.ingestor.counters
        self.commits: list[int] = [0]
        self.ingestor.on_commit = self._committed
        self.server = StreamIngestServer(self.ingestor, IngestConfig)
        self.deferred = False

    def _committed(self) -> None:
        if self.counters.received > self.commits[-1]:
            self.commits.append(self.counters.received)

    def values(self) -> dict[int, list[float]]:
        found = {}
        for series in self.store:
            window = series.window
            found[int(series.tag_dict["id"])] = window.tail(len(window)).tolist()
        return found

    def largest_commit(self) -> int:
        return max(b - a for a, b in zip(self.commits, self.commits[1:], strict=False))

    async def send(self, payload: bytes, write: int) -> None:
        """Write ``payload`` on one connection in ``write``-byte sends (from a
        thread), close it, and wait until the daemon side closed it too."""
        loop = asyncio.get_running_loop()
        protocols = []

        def factory() -> receivers.StreamIngestProtocol:
            protocols.append(self.server.protocol_factory())
            return protocols[-1]

        server = await loop.create_unix_server(factory, self.path)
        async with server:
            sending = asyncio.ensure_future(
                asyncio.to_thread(_send, self.path, payload, write)
            )
            for _ in range(30_000):  # 30 s at most
                self.deferred |= any(protocol.pending for protocol in protocols)
                closed = (
                    self.counters.connections_accepted
                    and not self.counters.connections_open
                )
                if sending.done() and closed:
                    break
                await asyncio.sleep(0.001)
            await sending


def _send(path: str, payload: bytes, write: int) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        for start in range(0, len(payload), write):
            sock.sendall(payload[start : start + write])


def received(payload: bytes, write: int) -> Receiver:
    with tempfile.TemporaryDirectory(prefix="pw-pieces-") as directory:
        receiver = Receiver(Path(directory))
        asyncio.run(receiver.send(payload, write))
    return receiver


class TestStreamPieces:
    def test_a_huge_read_is_committed_in_pieces_in_order(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """70,000 lines in 256 KiB writes: every line kept in order, no commit
        larger than a piece, the rest of a read left for the next loop turns."""
        monkeypatch.setattr(receivers, "STREAM_SLICE", 0.0)  # a piece a turn
        receiver = received(text(70_000), 256 << 10)
        assert 70_000 == receiver.counters.accepted
        assert expected(70_000) == receiver.values()
        assert receiver.largest_commit() <= receivers.STREAM_MIN_PIECE // SHORTEST + 1
        assert receiver.deferred

    def test_frames_are_committed_in_pieces_in_order(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(receivers, "STREAM_SLICE", 0.0)
        receiver = received(frames(40_000, 30), 256 << 10)
        assert 40_000 == receiver.counters.accepted
        assert expected(40_000) == receiver.values()
        # A piece ends after the frame that crosses STREAM_MIN_PIECE bytes.
        assert receiver.largest_commit() <= receivers.STREAM_MIN_PIECE // SHORTEST + 30
        assert receiver.deferred

    @settings(max_examples=25, deadline=None)
    @given(
        count=st.integers(1, 6_000),
        write=st.sampled_from([7, 1000, 4096, 65536, 1 << 20]),
        slice_seconds=st.sampled_from([0.0, receivers.STREAM_SLICE]),
        framed=st.booleans(),
        last_newline=st.booleans(),
    )
    def test_every_line_in_order_however_it_is_read(
        self,
        count: int,
        write: int,
        slice_seconds: float,
        framed: bool,
        last_newline: bool,
    ) -> None:
        """However the writes split the data and the slices fall, each line is
        counted once and each series gets its values in the order sent."""
        original = receivers.STREAM_SLICE
        receivers.STREAM_SLICE = slice_seconds  # type: ignore[misc]
        try:
            payload = (
                frames(count, 7) if framed else text(count, last_newline=last_newline)
            )
            receiver = received(payload, write)
        finally:
            receivers.STREAM_SLICE = original  # type: ignore[misc]
        assert (count, count) == (
            receiver.counters.received,
            receiver.counters.accepted,
        )
        assert expected(count) == receiver.values()
