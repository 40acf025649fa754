"""The stream ingest socket under idle, trickling and greedy senders; fd exhaustion."""

from __future__ import annotations

import os
import resource
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from perfwarden.testing import wait_until

from .conftest import held_as_nobody

if TYPE_CHECKING:
    from collections.abc import Callable

    from perfwarden.testing import DaemonProcess

pytestmark = pytest.mark.slow

SLOTS = """\
version: 1
sockets: {metrics_access: world}
ingest:
  max_connections: 40
  max_connections_per_uid: 20
  idle_timeout: 1s
"""


def connections(daemon: DaemonProcess) -> dict[str, int]:
    counts: dict[str, int] = daemon.ingest()["connections"]
    return counts


def stream_path(daemon: DaemonProcess) -> str:
    return str(daemon.socket_dir / "metrics.stream.sock")


class TestStreamSlots:
    def test_one_sender_cannot_lock_out_another(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """A uid holding 500 connections gets its 20 slots; another uid still sends."""
        if os.getuid() != 0:
            pytest.skip("acting as another user needs root")
        daemon = make_daemon(SLOTS.replace("1s", "1h"))
        Path(daemon.base_dir).chmod(0o755)
        daemon.start()
        with held_as_nobody(Path(stream_path(daemon)), 500):
            wait_until(lambda: connections(daemon)["refused_per_uid"] >= 480)
            daemon.send_stream("other.sender:1|g\n")
            daemon.wait_received(1)
            assert 20 == connections(daemon)["open"]
        assert 1 == daemon.ingest()["accepted"]

    def test_idle_and_trickling_connections_are_closed(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """Idle clients, and one trickling a line byte by byte, lose their slots."""
        daemon = make_daemon(SLOTS).start()
        idle = []
        for _ in range(10):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(stream_path(daemon))
            idle.append(sock)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as slow:
            slow.connect(stream_path(daemon))
            deadline = time.monotonic() + 30
            closed = False
            while time.monotonic() < deadline and not closed:
                try:
                    slow.sendall(b"x")
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                time.sleep(0.2)  # the trickle itself: a byte every 200 ms
            assert closed
        counts = wait_until(lambda: (c := connections(daemon))["open"] == 0 and c)
        assert counts["idle_closed"] >= 11
        for sock in idle:
            sock.close()

    def test_descriptor_exhaustion_is_logged_once(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """Out of fds, accepting backs off and logs once; afterwards all is served."""
        config = SLOTS.replace("1s", "1h").replace(": 40", ": 500")
        daemon = make_daemon(config.replace(": 20", ": 500")).start()
        assert daemon.process is not None
        resource.prlimit(daemon.process.pid, resource.RLIMIT_NOFILE, (64, 64))
        held = []
        try:
            for _ in range(80):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(stream_path(daemon))
                held.append(sock)
            daemon.wait_log("daemon.fd_exhausted")
            time.sleep(3)  # three more of asyncio's 1 s back-offs, all suppressed
            assert 1 == len(daemon.log_events("daemon.fd_exhausted"))
        finally:
            for sock in held:
                sock.close()
        wait_until(lambda: daemon.request("ping")["pong"])
        daemon.send_stream("after.exhaustion:1|g\n")
        daemon.wait_received(1)
        assert "Traceback" not in daemon.log_text()
