"""A reload that says "applied" has applied: socket access and ingest bounds."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from perfwarden.testing import wait_until

from .conftest import as_nobody

if TYPE_CHECKING:
    from collections.abc import Callable

    from perfwarden.testing import DaemonProcess

pytestmark = pytest.mark.slow


def reload_with(daemon: DaemonProcess, text: str) -> list[str]:
    assert daemon.config_path is not None
    daemon.config_path.write_text(text)
    changes: list[str] = daemon.request("reload")["changes"]
    return changes


def send_as_nobody(path: Path, line: bytes) -> object:
    def send() -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(line, str(path))
        return "sent"

    return as_nobody(send)


class TestReloadApplies:
    def test_metrics_access_follows_a_reload(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """private -> world lets another uid send; world -> private stops it."""
        if os.getuid() != 0:
            pytest.skip("acting as another user needs root")
        daemon = make_daemon("version: 1\n")
        Path(daemon.base_dir).chmod(0o755)
        daemon.start()
        metrics = daemon.socket_dir / "metrics.sock"
        assert "error" == send_as_nobody(metrics, b"a:1|g")[0]
        changes = reload_with(daemon, "version: 1\nsockets: {metrics_access: world}\n")
        assert any(change.startswith("sockets:") for change in changes)
        assert 0o666 == stat.S_IMODE(metrics.stat().st_mode)
        assert "sent" == send_as_nobody(metrics, b"a:1|g")
        daemon.wait_received(1)
        reload_with(daemon, "version: 1\n")
        assert "error" == send_as_nobody(metrics, b"a:2|g")[0]
        assert 0o600 == stat.S_IMODE(daemon.control_path.stat().st_mode)

    def test_unknown_group_rejects_the_reload(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """A group that does not exist: rejected, naming sockets, old modes kept."""
        daemon = make_daemon("version: 1\n").start()
        assert daemon.config_path is not None
        daemon.config_path.write_text(
            "version: 1\nsockets: {metrics_access: group, group: no-such-group}\n"
        )
        result = daemon.cli("reload")
        assert 1 == result.returncode
        assert "sockets: cannot apply" in result.stderr
        metrics = daemon.socket_dir / "metrics.sock"
        assert 0o600 == stat.S_IMODE(metrics.stat().st_mode)

    def test_ingest_bounds_follow_a_reload(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """max_connections and max_datagram_bytes take effect on reload."""
        daemon = make_daemon("version: 1\n").start()
        reload_with(
            daemon,
            "version: 1\ningest: {max_connections: 3, max_datagram_bytes: 1024}\n",
        )
        path = str(daemon.socket_dir / "metrics.stream.sock")
        held = []
        for _ in range(5):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(path)
            held.append(sock)
        counts = wait_until(
            lambda: (c := daemon.ingest()["connections"])["refused"] >= 2 and c
        )
        assert 3 == counts["open"]
        for sock in held:
            sock.close()
        daemon.send_datagrams(["\n".join(f"big:{i}|g" for i in range(200))])
        counters = daemon.wait_received(200)
        assert {"oversize_datagram": 200} == counters["dropped_by_reason"]
