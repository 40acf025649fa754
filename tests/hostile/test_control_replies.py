"""Large replies: ``stats`` at 10k series comes in pages, and clients that leave
their replies unread are dropped instead of growing the daemon."""

from __future__ import annotations

import json
import socket
from typing import TYPE_CHECKING, Any

import pytest

from perfwarden.control.protocol import MAX_LINE
from perfwarden.testing import wait_until

if TYPE_CHECKING:
    from collections.abc import Callable

    from perfwarden.testing import DaemonProcess

pytestmark = pytest.mark.slow

SERIES = 9_900  # the daemon's own self-monitor series take a few of the 10k slots
CONFIG = "version: 1\ncontrol: {send_timeout: 1s}\n"


def many_series(make_daemon: Callable[..., DaemonProcess]) -> DaemonProcess:
    daemon = make_daemon(CONFIG).start()
    lines = [f"s:{i}|g|#id:{i}" for i in range(SERIES)]
    daemon.send_datagrams(
        ["\n".join(lines[i : i + 100]) for i in range(0, SERIES, 100)]
    )
    daemon.wait_received(SERIES, timeout=60)
    return daemon


def raw_lines(daemon: DaemonProcess, request: dict[str, Any]) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(60)
        sock.connect(str(daemon.control_path))
        sock.sendall(json.dumps(request).encode() + b"\n")
        return sock.makefile("rb").readline(MAX_LINE + 1)


class TestLargeReplies:
    def test_stats_comes_in_pages(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """Each reply stays far under MAX_LINE; the client joins every page."""
        daemon = many_series(make_daemon)
        line = raw_lines(daemon, {"id": 1, "command": "stats", "args": {}})
        assert len(line) < MAX_LINE // 2
        page = json.loads(line)["data"]
        assert page["total"] >= SERIES
        assert 0 < len(page["series"]) == page["next_offset"] < SERIES
        records = daemon.request("stats", metrics=["s"])["series"]
        assert SERIES == len({r["series"] for r in records})
        result = daemon.cli("stats", "s")
        assert 0 == result.returncode
        assert SERIES + 1 == len(result.stdout.splitlines())  # and a header

    def test_unread_replies_are_dropped(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """8 clients pipelining stats without reading: dropped, memory bounded."""
        daemon = many_series(make_daemon)
        request = json.dumps({"command": "stats", "args": {"recent": 1}}).encode()
        stuck = []
        for _ in range(8):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(str(daemon.control_path))
            sock.sendall((request + b"\n") * 20)
            stuck.append(sock)
        try:
            control = wait_until(
                lambda: (
                    (c := daemon.request("status")["control"])["slow_readers"] >= 8
                    and c
                ),
                timeout=120,
            )
            assert control["open"] <= 1
            assert daemon.request("status")["memory"]["rss_mb"] < 400
        finally:
            for sock in stuck:
                sock.close()

    def test_report_of_9000_long_names_comes_in_pages(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """report over 9,000 long metric names (once a too_large): every name, in
        pages the client joins."""
        daemon = make_daemon(CONFIG).start()
        lines = [f"name{i}.{'x' * 80}:{i}|g" for i in range(9_000)]
        daemon.send_datagrams(
            ["\n".join(lines[i : i + 100]) for i in range(0, 9_000, 100)]
        )
        daemon.wait_received(9_000, timeout=60)
        result = daemon.cli("report", timeout=120)
        assert 0 == result.returncode, result.stderr
        assert all(f"name{i}.x" in result.stdout for i in range(0, 9_000, 331))
        assert 0 == daemon.cli("report", f"name7.{'x' * 80}").returncode

    def test_long_silences_come_in_pages(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """Silences with 60 KB comments, 20 of them (once a too_large reply):
        alerts lists every one, in pages under the line cap."""
        daemon = make_daemon(CONFIG).start()
        for i in range(20):
            daemon.request("silence", metric=f"m{i}", comment=f"{i}" + "c" * 60_000)
        line = raw_lines(daemon, {"id": 1, "command": "alerts", "args": {}})
        assert len(line) < MAX_LINE // 2
        assert 20 == json.loads(line)["data"]["total"]
        data = daemon.cli_json("alerts")
        assert {f"m{i}" for i in range(20)} == {s["metric"] for s in data["silences"]}
        result = daemon.cli("alerts")
        assert 0 == result.returncode, result.stderr
        assert 20 == result.stdout.count("c" * 60_000)
