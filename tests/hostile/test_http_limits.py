"""The HTTP listener under clients that never read, and pages from other hosts."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import pytest

from perfwarden.testing import wait_until

if TYPE_CHECKING:
    from collections.abc import Callable

    from perfwarden.testing import DaemonProcess

pytestmark = pytest.mark.slow

HTTP = """\
version: 1
http:
  listen: "127.0.0.1:0"
  timeout: 1s
  max_connections: 4
"""


def started(make_daemon: Callable[..., DaemonProcess]) -> tuple[DaemonProcess, int]:
    daemon = make_daemon(HTTP).start()
    port = int(daemon.wait_log("http.started")["port"])
    return daemon, port


def get(port: int, path: str, host: str | None) -> tuple[int, bytes]:
    """One GET; the status code and the body."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        head = f"GET {path} HTTP/1.1\r\n"
        if host is not None:
            head += f"Host: {host}\r\n"
        sock.sendall((head + "\r\n").encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    response = b"".join(chunks)
    status = int(response.split(b" ", 2)[1])
    return status, response.partition(b"\r\n\r\n")[2]


class TestHttpLimits:
    def test_host_header(self, make_daemon: Callable[..., DaemonProcess]) -> None:
        """Names other than localhost and allowed_hosts are refused (DNS rebinding)."""
        daemon, port = started(make_daemon)
        cases = [
            ("evil.example", 421),
            ("evil.example:9464", 421),
            ("localhost", 200),
            (f"127.0.0.1:{port}", 200),
            (f"[::1]:{port}", 200),
            (None, 200),
        ]
        assert cases == [(host, get(port, "/metrics", host)[0]) for host, _ in cases]
        assert 2 == daemon.request("status")["http"]["bad_host"]

    def test_clients_that_never_read_are_dropped(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """40 scrapers that never read: dropped after the timeout; scrapes recover
        and memory grows by a few bodies at most."""
        daemon, port = started(make_daemon)
        # ~8 MB of exposition: more than the kernel's socket buffers take.
        lines = [f"wide.{i}:{i}|g|#pad:{'x' * 100}" for i in range(8000)]
        packed = ["\n".join(lines[i : i + 50]) for i in range(0, 8000, 50)]
        daemon.send_datagrams(packed)
        daemon.wait_received(8000)
        body_mb = len(get(port, "/metrics", "localhost")[1]) / 2**20
        before = daemon.request("status")["memory"]["rss_mb"]
        stuck = []
        for _ in range(40):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", port))
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            stuck.append(sock)
        try:
            http = wait_until(
                lambda: (
                    (h := daemon.request("status")["http"])["slow_readers"] >= 1 and h
                ),
                timeout=60,
            )
            assert http["busy"] >= 1
            _, body = wait_until(
                lambda: (r := get(port, "/metrics", "localhost"))[0] == 200 and r,
                timeout=60,
            )
            assert b'"wide.7999"' in body
            # At most 4 bodies are built and held (each with its intermediates:
            # ~3x); 40 were before, all held until the clients left.
            grown = daemon.request("status")["memory"]["rss_mb"] - before
            assert grown < 16 * body_mb
        finally:
            for sock in stuck:
                sock.close()
