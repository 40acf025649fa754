"""The control socket under hostile clients: bounded connections, requests, values."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from perfwarden.errors import ControlError
from perfwarden.testing import wait_until

from .conftest import NOBODY, held_as_nobody

if TYPE_CHECKING:
    from collections.abc import Callable

    from perfwarden.testing import DaemonProcess

pytestmark = pytest.mark.slow

LIMITED = """\
version: 1
control:
  max_connections: 40
  max_connections_per_uid: 10
  send_timeout: 1s
knobs:
  compression.ratio: {min: 0.1, max: 0.9, initial: 0.4}
"""


def raw_request(daemon: DaemonProcess, line: bytes) -> dict[str, Any]:
    """Send one raw line on a fresh connection; the decoded answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(str(daemon.control_path))
        sock.sendall(line)
        answer: dict[str, Any] = json.loads(sock.makefile("rb").readline())
        return answer


def open_fds(daemon: DaemonProcess) -> int:
    assert daemon.process is not None
    return len(os.listdir(f"/proc/{daemon.process.pid}/fd"))


class TestConnections:
    def test_idle_connections_cannot_exhaust_descriptors(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """1,050 idle connections: all but the cap are closed, and then served."""
        daemon = make_daemon(LIMITED).start()
        before = open_fds(daemon)
        idle: list[socket.socket] = []
        try:
            for _ in range(1050):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(str(daemon.control_path))
                idle.append(sock)
            refused = json.loads(idle[-1].makefile("rb").readline())
            assert "too_many_connections" == refused["error"]["code"]
            wait_until(lambda: open_fds(daemon) <= before + 12)
        finally:
            for sock in idle:
                sock.close()
        control = wait_until(
            lambda: (c := daemon.request("status")["control"])["open"] <= 1 and c
        )
        assert 1040 == control["refused_by_reason"]["per_uid"]
        assert 1 == len(daemon.log_events("control.refused"))  # once, not per refusal
        assert "refused 1040" in daemon.cli("status").stdout
        assert not daemon.log_events("loop.error")

    def test_one_user_cannot_lock_out_another(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """Another uid's idle connections fill its own slots; root still gets in."""
        if os.getuid() != 0:
            pytest.skip("acting as another user needs root")
        daemon = make_daemon(LIMITED + "sockets: {group: nogroup}\n")
        Path(daemon.base_dir).chmod(0o755)
        daemon.start()
        with held_as_nobody(daemon.control_path, 100):
            control = wait_until(
                lambda: (
                    (c := daemon.request("status")["control"])["refused"] >= 90 and c
                ),
                timeout=60,
            )
            assert 90 == control["refused_by_reason"]["per_uid"]
            assert daemon.request("ping")["pong"]
        event = daemon.wait_log("control.refused")
        assert NOBODY == event["uid"]


class TestRequests:
    def test_deep_nesting_is_a_bad_request(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """30,000 nested arrays get an answer, not a RecursionError traceback."""
        daemon = make_daemon(LIMITED).start()
        nested = "[" * 30000 + "]" * 30000
        line = f'{{"id": 1, "command": "ping", "args": {{"a": {nested}}}}}\n'
        answer = raw_request(daemon, line.encode())
        assert "bad_request" == answer["error"]["code"]
        assert "nested deeper than 32" in answer["error"]["message"]
        shallow = raw_request(daemon, b'{"id": 2, "command": "ping", "args": {}}\n')
        assert shallow["ok"]
        assert "Traceback" not in daemon.log_text()

    def test_oversized_request_is_refused(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """A request line past max_request_bytes is answered too_large and counted."""
        daemon = make_daemon(LIMITED).start()
        line = b'{"command": "ping", "args": {"a": "' + b"x" * 200_000 + b'"}}\n'
        answer = raw_request(daemon, line)
        assert "too_large" == answer["error"]["code"]
        assert 1 == daemon.request("status")["control"]["too_large"]


class TestValues:
    def test_bad_knob_values_are_refused(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """Booleans, 4000-digit numbers and NaN are refused with a reason."""
        daemon = make_daemon(LIMITED).start()
        cases: list[tuple[object, str]] = [
            (True, "not True"),
            (int("9" * 4000), "too many digits"),
            ("9" * 4000, "too long"),
            ("nan", "finite"),
        ]
        for value, message in cases:
            with pytest.raises(ControlError, match=message):
                daemon.request("knobs.set", name="compression.ratio", value=value)
        assert 0.4 == daemon.request("knobs")["knobs"]["compression.ratio"]["value"]
        assert not daemon.log_events("control.command_failed")

    def test_silence_for_ever_is_refused(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """``silence --for 1e300`` is refused as a usage error; a year is the limit."""
        daemon = make_daemon(LIMITED).start()
        result = daemon.cli("silence", "x", "--for", "1e300")
        assert 2 == result.returncode
        assert "at most 366 days" in result.stderr
        assert 0 == daemon.cli("silence", "x", "--for", "30m").returncode
