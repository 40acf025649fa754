"""Hostile input: the daemon stays up, bounded, answering, and accounts every line."""

from __future__ import annotations

import random
import resource
import socket
from typing import TYPE_CHECKING

import pytest

from perfwarden.testing import DaemonProcess, wait_until

if TYPE_CHECKING:
    from collections.abc import Callable

pytestmark = pytest.mark.slow

LIMITED = """\
version: 1
ingest:
  max_line_bytes: 512
  max_datagram_bytes: 4096
  max_connections: 100
"""


def balanced(counters: dict[str, int]) -> bool:
    parts = counters["accepted"] + counters["malformed"] + counters["ignored"]
    return counters["received"] == parts + counters["dropped"]


def rss_mb(daemon: DaemonProcess) -> float:
    return float(daemon.request("status")["memory"]["rss_mb"])


class TestHostileInput:
    def test_random_byte_flood(self, daemon: DaemonProcess) -> None:
        """Thousands of random datagrams: nothing fatal, everything accounted."""
        rng = random.Random(1)
        payloads = [rng.randbytes(rng.randint(1, 4096)) for _ in range(3000)]
        payloads += [b"after.flood:1|g"]
        daemon.send_datagrams(payloads)
        counters = wait_until(
            lambda: (
                (c := daemon.ingest())["accepted"] >= 1
                and daemon.request("stats", metrics=["after.flood"])["series"]
                and c
            )
        )
        assert balanced(counters)
        assert counters["malformed"] > 0
        assert daemon.request("ping")["pong"]
        assert rss_mb(daemon) < 150

    def test_oversize_datagrams_dropped_and_counted(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """A datagram over the limit is dropped whole, each of its lines counted."""
        daemon = make_daemon(LIMITED).start()
        big = "\n".join(f"big:{i}|g" for i in range(1000))  # ~9 KB > 4096
        daemon.send_datagrams([big, "small:1|g"])
        counters = daemon.wait_received(1001)
        assert {"oversize_datagram": 1000} == counters["dropped_by_reason"]
        assert 1 == counters["accepted"]
        assert balanced(counters)

    def test_endless_line_on_stream(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """A line without end is counted once as too long; the connection goes on."""
        daemon = make_daemon(LIMITED).start()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(daemon.socket_dir / "metrics.stream.sock"))
            chunk = b"x" * 65536
            for _ in range(160):  # 10 MiB without a newline
                sock.sendall(chunk)
            sock.sendall(b"\nafter.endless:1|g\n")
        counters = daemon.wait_received(2)
        assert {"too_long": 1} == counters["malformed_by_reason"]
        assert 1 == counters["accepted"]
        assert rss_mb(daemon) < 150

    def test_many_idle_connections(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """Connections beyond the cap are refused; control and ingest still answer."""
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
        daemon = make_daemon(LIMITED).start()
        path = str(daemon.socket_dir / "metrics.stream.sock")
        idle: list[socket.socket] = []
        try:
            for _ in range(1500):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(path)
                idle.append(sock)
            status = wait_until(
                lambda: (
                    (s := daemon.request("status"))["ingest"]["connections"]["refused"]
                    >= 1400
                    and s
                )
            )
            assert 100 == status["ingest"]["connections"]["open"]
            daemon.send_datagrams(["while.idle:1|g"])
            daemon.wait_received(1)
        finally:
            for sock in idle:
                sock.close()
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        wait_until(
            lambda: daemon.request("status")["ingest"]["connections"]["open"] == 0
        )


LARGE = """\
version: 1
ingest:
  max_line_bytes: 1048576
  max_datagram_bytes: 2097152
"""


class TestStreamBuffer:
    """A stream connection's buffer (64 KiB at first) grows for a line or a frame
    that does not fit, and keeps every line exact across its reads."""

    def test_frame_larger_than_the_first_buffer(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        daemon = make_daemon(LARGE).start()
        lines = [f"big.frame:{i}|ms" for i in range(60_000)]  # ~1 MiB in one frame
        body = "\n".join(lines).encode()
        small = b"after.frame:7|g"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(daemon.socket_dir / "metrics.stream.sock"))
            for payload in (body, small):
                sock.sendall(len(payload).to_bytes(4, "little") + payload)
        counters = daemon.wait_received(60_001)
        assert 60_001 == counters["accepted"]
        assert balanced(counters)
        record = daemon.cli_json("stats", "big.frame")["series"][0]
        assert 1000 == record["sample_size"]  # the window's newest 1000
        assert (59_000 + 59_999) / 2 == record["mean"]

    def test_line_longer_than_the_first_buffer(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        daemon = make_daemon(LARGE).start()
        tags = ",".join(f"t{i}" for i in range(20))
        long_line = f"long.line:{'0' * 600_000}5|g|#{tags}\n".encode()
        payload = b"before.long:1|g\n" + long_line + b"after.long:2|g\n"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(daemon.socket_dir / "metrics.stream.sock"))
            for start in range(0, len(payload), 100_003):
                sock.sendall(payload[start : start + 100_003])
        counters = daemon.wait_received(3)
        assert 3 == counters["accepted"]
        assert balanced(counters)
        assert 2.0 == daemon.cli_json("stats", "after.long")["series"][0]["mean"]
        assert 5.0 == daemon.cli_json("stats", "long.line")["series"][0]["mean"]
