"""perfwarden.client's datagram path against a real socket that reads when told."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import pytest

from perfwarden.client._sender import DatagramSender
from perfwarden.testing import wait_until

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture(name="receiver")
def _receiver(tmp_path: Path) -> Iterator[socket.socket]:
    """A bound datagram socket that nobody reads until the test does."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "metrics.sock"))
    sock.setblocking(False)
    yield sock
    sock.close()


def read_lines(sock: socket.socket) -> list[str]:
    """Every line queued on *sock* now."""
    lines: list[str] = []
    while True:
        try:
            datagram = sock.recv(65536)
        except BlockingIOError:
            return lines
        lines.extend(datagram.decode().split("\n"))


def sender_for(tmp_path: Path, **kwargs: int) -> DatagramSender:
    """A sender to the receiver's path whose flusher waits an hour after the first
    line, unless a datagram's worth is queued."""
    return DatagramSender(
        str(tmp_path / "metrics.sock"), flush_interval=3600.0, **kwargs
    )


class TestPacking:
    """Lines are joined into datagrams of at most max_datagram bytes."""

    def test_datagrams_are_full(self, tmp_path: Path, receiver: socket.socket) -> None:
        """1000 lines of 20 bytes go in datagrams of at most 8 KiB, none lost."""
        sender = sender_for(tmp_path)
        lines = [f"pack.metric:{i:07d}|g" for i in range(1000)]
        for line in lines:
            sender.add(line)
        assert sender.flush(5.0)
        sizes: list[int] = []
        received: list[str] = []
        while True:
            try:
                datagram = receiver.recv(65536)
            except BlockingIOError:
                break
            sizes.append(len(datagram))
            received.extend(datagram.decode().split("\n"))
        assert lines == received
        assert max(sizes) <= 8192
        # 21 bytes a line with its newline, 390 per datagram: 3 when one flush
        # packs them all, one more if the flusher took a datagram's worth first.
        assert len(sizes) in {3, 4}

    def test_bytes_not_characters(
        self, tmp_path: Path, receiver: socket.socket
    ) -> None:
        """Datagrams are cut by encoded size; an oversized line goes alone."""
        sender = sender_for(tmp_path)
        lines = [f"utf8.metric:{i}|g|#city:Zürich-Ωmega" for i in range(600)]
        lines.insert(300, "long.metric:1|g|#k:" + "x" * 9000)
        for line in lines:
            sender.add(line)
        assert sender.flush(5.0)
        datagrams: list[bytes] = []
        while True:
            try:
                datagrams.append(receiver.recv(65536))
            except BlockingIOError:
                break
        received = [line for d in datagrams for line in d.decode().split("\n")]
        assert lines == received
        oversized = [d for d in datagrams if len(d) > 8192]
        assert [lines[300].encode()] == oversized
        assert (601, 0) == (sender.sent, sender.dropped)


class TestFlusher:
    """The background thread sends on its own, shortly after the first line."""

    def test_sends_without_flush(self, tmp_path: Path, receiver: socket.socket) -> None:
        """Lines arrive without flush(), and again after the flusher slept."""
        sender = DatagramSender(str(tmp_path / "metrics.sock"), flush_interval=0.005)
        received: list[str] = []
        for round_ in range(2):
            lines = [f"auto.metric:{round_}{i}|g" for i in range(100)]
            for line in lines:
                sender.add(line)

            def arrived(lines: list[str] = lines) -> bool:
                received.extend(read_lines(receiver))
                return received[-len(lines) :] == lines

            wait_until(arrived)
        assert (200, 0) == (sender.sent, sender.dropped)

    def test_sends_a_full_datagram_early(
        self, tmp_path: Path, receiver: socket.socket
    ) -> None:
        """A datagram's worth of lines leaves before the (hour-long) interval."""
        sender = sender_for(tmp_path)
        lines = [f"early.metric:{i:05d}|g" for i in range(2000)]
        for line in lines:
            sender.add(line)
        received: list[str] = []

        def arrived() -> bool:
            received.extend(read_lines(receiver))
            return len(received) >= 256

        wait_until(arrived)
        assert lines[: len(received)] == received


class TestBacklog:
    """A full queue keeps datagrams in order; only the bound drops."""

    def test_nothing_lost_when_the_reader_catches_up(
        self, tmp_path: Path, receiver: socket.socket
    ) -> None:
        """More than the kernel queues waits in the backlog and arrives in order."""
        sender = sender_for(tmp_path)
        lines = [f"burst.metric:{i}|ms" for i in range(20_000)]
        for line in lines:
            sender.add(line)
        assert not sender.flush()
        assert sender.backlog > 0  # the kernel took only ~10 datagrams
        assert 0 == sender.dropped
        received: list[str] = []

        def drained() -> bool:
            received.extend(read_lines(receiver))
            sender.flush()
            return len(received) == len(lines)

        wait_until(drained)
        assert lines == received
        assert (20_000, 0, 0) == (sender.sent, sender.dropped, sender.backlog)

    def test_bound_drops_the_oldest_and_counts(
        self, tmp_path: Path, receiver: socket.socket
    ) -> None:
        """Past max_backlog the oldest datagrams go; every line is accounted for."""
        sender = sender_for(tmp_path, max_backlog=64 * 1024)
        lines = [f"bound.metric:{i}|ms" for i in range(50_000)]
        for line in lines:
            sender.add(line)
        assert not sender.flush()
        assert sender.dropped > 0
        received: list[str] = []

        def drained() -> bool:
            received.extend(read_lines(receiver))
            sender.flush()
            return sender.backlog == 0 and not read_lines_pending(receiver)

        wait_until(drained)
        received.extend(read_lines(receiver))
        assert len(lines) == sender.sent + sender.dropped
        assert len(received) == sender.sent
        assert lines[-1] == received[-1]  # the newest survive
        numbers = [int(line.split(":")[1].split("|")[0]) for line in received]
        assert numbers == sorted(numbers)  # in order, with a gap where drops were

    def test_reader_gone_drops_the_backlog(
        self, tmp_path: Path, receiver: socket.socket
    ) -> None:
        """When the daemon goes away, what waited is counted as dropped."""
        sender = sender_for(tmp_path)
        for i in range(20_000):
            sender.add(f"gone.metric:{i}|ms")
        assert not sender.flush()
        assert sender.backlog > 0
        receiver.close()
        (tmp_path / "metrics.sock").unlink()
        assert sender.flush(1.0)
        assert 20_000 == sender.sent + sender.dropped
        assert 0 == sender.backlog


def read_lines_pending(sock: socket.socket) -> bool:
    """Whether a datagram is waiting on *sock* (without reading it)."""
    try:
        sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return False
    return True


class TestNoDaemon:
    """Without a socket every line is dropped and counted, nothing raises."""

    def test_counted(self, tmp_path: Path) -> None:
        """No socket file: all lines dropped."""
        sender = sender_for(tmp_path)
        for i in range(5000):
            sender.add(f"nobody.metric:{i}|g")
        assert sender.flush(1.0)
        assert (0, 5000) == (sender.sent, sender.dropped)
