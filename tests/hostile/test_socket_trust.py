"""Socket directories that someone else could have planted (needs root to chown)."""

from __future__ import annotations

import os
import socket
import threading
from typing import TYPE_CHECKING

import pytest

from perfwarden.control.channel import request
from perfwarden.errors import UntrustedDirectoryError
from perfwarden.ownership import check_client_directory, check_daemon_directory
from perfwarden.testing import DaemonProcess

from .conftest import as_nobody

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.skipif(os.getuid() != 0, reason="chown needs root")

NOBODY = 65534  # the uid a "local user" plants directories as


def planted(parent: Path) -> Path:
    """A directory a local user created first, as ``/tmp/perfwarden-0``."""
    path = parent / "perfwarden-0"
    path.mkdir(mode=0o755)
    os.chown(path, NOBODY, NOBODY)
    return path


@pytest.fixture(name="fake_daemon")
def _fake_daemon(tmp_path: Path) -> Iterator[tuple[Path, list[bytes]]]:
    """A listener posing as a daemon in a nobody-owned directory; records requests."""
    directory = planted(tmp_path)
    received: list[bytes] = []
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(directory / "control.sock"))
    server.listen(4)
    server.settimeout(30)

    def serve() -> None:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        with conn:
            line = conn.makefile("rb").readline()
            received.append(line)
            conn.sendall(b'{"id": 1, "ok": true, "data": {"pong": true}}\n')

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield directory, received
    server.close()
    thread.join(5)


class TestDaemonSide:
    def test_root_refuses_a_directory_a_user_created(self, tmp_path: Path) -> None:
        """Even root's daemon does not serve from a nobody-owned socket directory."""
        tmp_path.chmod(0o1777)
        daemon = DaemonProcess("version: 1\n", base_dir=tmp_path)
        (tmp_path / "run").mkdir(mode=0o755)
        os.chown(tmp_path / "run", NOBODY, NOBODY)
        try:
            daemon.start(wait_ready=False)
            assert daemon.process is not None
            assert 1 == daemon.process.wait(60)
        finally:
            daemon.close()
        log = daemon.log_text()
        assert "refusing socket directory" in log
        assert f"belongs to uid {NOBODY}" in log
        assert not (tmp_path / "run" / "control.sock").exists()

    def test_ancestor_writable_by_others_is_refused(self, tmp_path: Path) -> None:
        """A directory under a world-writable, non-sticky one could be swapped."""
        tmp_path.chmod(0o777)
        own = tmp_path / "run"
        own.mkdir(mode=0o700)
        with pytest.raises(UntrustedDirectoryError, match="not sticky"):
            check_daemon_directory(own)

    def test_own_directory_under_sticky_tmp_is_fine(self, tmp_path: Path) -> None:
        """The usual /tmp/perfwarden-$UID layout passes."""
        tmp_path.chmod(0o1777)
        own = tmp_path / "run"
        own.mkdir(mode=0o700)
        check_daemon_directory(own)


class TestClientSide:
    def test_cli_refuses_a_planted_control_socket(
        self, fake_daemon: tuple[Path, list[bytes]], tmp_path: Path
    ) -> None:
        """Root's CLI never sends a request to a socket in a user's planted dir."""
        directory, received = fake_daemon
        tmp_path.chmod(0o1777)  # like /tmp: anyone may create a directory here
        with pytest.raises(UntrustedDirectoryError, match="may not be the daemon's"):
            request(directory / "control.sock", "knobs")
        assert [] == received

    def test_service_account_directory_is_trusted(
        self, fake_daemon: tuple[Path, list[bytes]], tmp_path: Path
    ) -> None:
        """A service user's directory in a root-owned 0755 parent (/run) is trusted."""
        directory, received = fake_daemon
        tmp_path.chmod(0o755)
        assert {"pong": True} == request(directory / "control.sock", "ping")
        assert 1 == len(received)

    def test_group_writable_directory_is_refused(self, tmp_path: Path) -> None:
        """A socket directory others may write to is never trusted."""
        directory = tmp_path / "run"
        directory.mkdir()
        directory.chmod(0o770)
        with pytest.raises(UntrustedDirectoryError, match="writable by others"):
            check_client_directory(directory)


class TestUnreachable:
    def test_unreachable_directory_fails_as_before(self, tmp_path: Path) -> None:
        """A directory nobody may even look into: "not allowed", no traceback."""
        hidden = tmp_path / "private"
        (hidden / "run").mkdir(parents=True)
        hidden.chmod(0o700)
        tmp_path.chmod(0o755)

        def call() -> object:
            return request(hidden / "run" / "control.sock", "ping")

        outcome = as_nobody(call)
        assert ("error", "DaemonUnreachableError") == outcome[:2]
