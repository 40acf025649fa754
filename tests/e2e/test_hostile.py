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
