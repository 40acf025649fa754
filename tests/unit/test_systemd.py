"""perfwarden.systemd: sd_notify datagrams, abstract addresses, watchdog settings."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from typing import TYPE_CHECKING

import pytest

from perfwarden.systemd import Notifier

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture(name="listener")
def _listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A bound datagram socket standing in for the service manager's."""
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(10)
        yield sock, str(path)


class TestNotify:
    """Messages reach a real socket, one datagram per call."""

    @pytest.mark.parametrize(
        "fields",
        [
            ("READY=1",),
            ("READY=1", "STATUS=3 series, 7 lines accepted"),
            ("STOPPING=1",),
        ],
    )
    def test_message_reaches_socket(
        self, listener: tuple[socket.socket, str], fields: tuple[str, ...]
    ) -> None:
        """The fields arrive as one newline-joined datagram."""
        sock, path = listener
        notifier = Notifier({"NOTIFY_SOCKET": path})
        assert notifier.enabled
        notifier.notify(*fields)
        assert sock.recv(4096).decode() == "\n".join(fields)

    def test_messages_in_order(self, listener: tuple[socket.socket, str]) -> None:
        """A lifecycle arrives in the order it was sent, each its own datagram."""
        sock, path = listener
        notifier = Notifier({"NOTIFY_SOCKET": path})
        sequence = ["READY=1", "STATUS=ok", "RELOADING=1", "READY=1", "STOPPING=1"]
        for message in sequence:
            notifier.notify(message)
        assert [sock.recv(4096).decode() for _ in sequence] == sequence

    def test_abstract_address(self) -> None:
        """``@name`` means the abstract namespace (a leading NUL byte)."""
        name = f"perfwarden-test-{uuid.uuid4().hex}"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind("\0" + name)
            sock.settimeout(10)
            Notifier({"NOTIFY_SOCKET": "@" + name}).notify("READY=1")
            assert sock.recv(4096) == b"READY=1"

    def test_unicode_status(self, listener: tuple[socket.socket, str]) -> None:
        """STATUS= text is sent as UTF-8."""
        sock, path = listener
        Notifier({"NOTIFY_SOCKET": path}).notify("STATUS=p99 ≤ 300 ms")
        assert sock.recv(4096).decode("utf-8") == "STATUS=p99 ≤ 300 ms"

    def test_full_queue_never_blocks(self, listener: tuple[socket.socket, str]) -> None:
        """A manager that does not read (its queue full) cannot stall the sender."""
        _, path = listener
        notifier = Notifier({"NOTIFY_SOCKET": path})
        done = threading.Event()

        def flood() -> None:
            for _ in range(200):  # far beyond any max_dgram_qlen default
                notifier.notify("STATUS=flood")
            done.set()

        # A daemon thread: if notify() blocks, closing the listener (fixture
        # teardown) wakes it with ECONNREFUSED, which notify() swallows.
        threading.Thread(target=flood, daemon=True).start()
        assert done.wait(3), "notify() blocked on a full notify socket"


class TestNoManager:
    """Without a service manager everything is a silent no-op."""

    def test_disabled_without_notify_socket(self) -> None:
        """No NOTIFY_SOCKET: disabled, and notify() does nothing."""
        notifier = Notifier({})
        assert not notifier.enabled
        notifier.notify("READY=1")

    def test_empty_notify_socket(self) -> None:
        """An empty NOTIFY_SOCKET counts as unset."""
        assert not Notifier({"NOTIFY_SOCKET": ""}).enabled

    def test_missing_socket_never_raises(self, tmp_path: Path) -> None:
        """A socket path that does not exist (manager gone) is swallowed."""
        notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
        assert notifier.enabled
        notifier.notify("WATCHDOG=1")

    def test_reads_process_environment_by_default(
        self, monkeypatch: pytest.MonkeyPatch, listener: tuple[socket.socket, str]
    ) -> None:
        """With no mapping given, os.environ is used."""
        sock, path = listener
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        Notifier().notify("READY=1")
        assert sock.recv(4096) == b"READY=1"


class TestWatchdog:
    """WATCHDOG_USEC / WATCHDOG_PID give the ping interval: half the timeout."""

    def test_interval_is_half_the_timeout(self) -> None:
        """30 s watchdog: ping every 15 s."""
        notifier = Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "30000000"})
        assert notifier.watchdog_interval == 15.0

    def test_pid_matches(self) -> None:
        """WATCHDOG_PID naming this process enables the watchdog."""
        env = {"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid())}
        assert Notifier(env).watchdog_interval == 0.5

    def test_pid_of_another_process(self) -> None:
        """WATCHDOG_PID naming another process (our parent) disables it."""
        env = {"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid() + 1)}
        assert Notifier(env).watchdog_interval is None

    @pytest.mark.parametrize("usec", ["", "abc", "-5", "1.5", " 10"])
    def test_malformed_usec(self, usec: str) -> None:
        """Anything but a plain non-negative integer disables the watchdog."""
        assert Notifier({"WATCHDOG_USEC": usec}).watchdog_interval is None

    def test_unset(self) -> None:
        """No WATCHDOG_USEC: no watchdog."""
        assert Notifier({"NOTIFY_SOCKET": "/x"}).watchdog_interval is None
