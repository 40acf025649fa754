"""Log lines for journald (syslog priority prefixes) and ``logging.level`` on reload."""

from __future__ import annotations

import json
import os
import socket
from typing import TYPE_CHECKING

from perfwarden.testing import DaemonProcess, wait_until

from .conftest import BASE_CONFIG

if TYPE_CHECKING:
    from collections.abc import Callable


def journal_daemon(make_daemon: Callable[..., DaemonProcess]) -> DaemonProcess:
    """A daemon whose stdout is the stream $JOURNAL_STREAM names, as under systemd."""
    daemon = make_daemon(BASE_CONFIG)
    daemon.log_path.touch()
    status = daemon.log_path.stat()
    daemon._extra_env["JOURNAL_STREAM"] = f"{status.st_dev}:{status.st_ino}"
    return daemon.start()


def prefixed(daemon: DaemonProcess) -> list[tuple[str, dict[str, object]]]:
    """Every log line as (priority prefix, JSON object)."""
    lines = []
    for line in daemon.log_text().splitlines():
        prefix, _, rest = line.partition(">")
        if line.startswith("<") and rest.startswith("{"):
            lines.append((prefix + ">", json.loads(rest)))
    return lines


def send(daemon: DaemonProcess, payload: bytes) -> None:
    """One datagram to metrics.sock."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(payload, str(daemon.socket_dir / "metrics.sock"))


class TestJournalPriorities:
    """Under journald each line starts with <N>, and is still one JSON object."""

    def test_info_warning_error(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """info <6>, warning <4>, error <3>; nothing without a prefix."""
        daemon = journal_daemon(make_daemon)
        send(daemon, b"not a statsd line")
        assert daemon.config_path is not None
        daemon.config_path.write_text(BASE_CONFIG.replace("upper", "sideways", 1))
        assert 1 == daemon.cli("reload").returncode

        def seen() -> dict[str, str] | None:
            found = {str(obj["event"]): prefix for prefix, obj in prefixed(daemon)}
            wanted = ("daemon.started", "ingest.malformed", "config.rejected")
            return found if all(name in found for name in wanted) else None

        found = wait_until(seen)
        assert "<6>" == found["daemon.started"]
        assert "<4>" == found["ingest.malformed"]
        assert "<3>" == found["config.rejected"]
        lines = [line for line in daemon.log_text().splitlines() if line.strip()]
        assert all(line.startswith("<") for line in lines), lines[:3]

    def test_other_stream_gets_no_prefix(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """A $JOURNAL_STREAM inherited from a parent whose output went elsewhere."""
        daemon = make_daemon(BASE_CONFIG)
        status = os.stat(daemon.base_dir)
        daemon._extra_env["JOURNAL_STREAM"] = f"{status.st_dev}:{status.st_ino}"
        daemon.start()
        daemon.wait_log("daemon.started")
        assert not daemon.log_text().startswith("<")


class TestLevelReload:
    """``logging.level`` applies at start and on reload; --log-level pins it."""

    def test_reload_changes_the_level(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """At warning no info line is written; a reload to info brings them back."""
        daemon = make_daemon(BASE_CONFIG + "logging:\n  level: warning\n").start()
        assert daemon.config_path is not None
        send(daemon, b"bad line one")
        daemon.wait_log("ingest.malformed")
        assert [] == daemon.log_events("daemon.started")
        daemon.config_path.write_text(BASE_CONFIG + "logging:\n  level: info\n")
        assert 0 == daemon.cli("reload").returncode
        reloaded = daemon.wait_log("config.reloaded")
        assert any(change.startswith("logging:") for change in reloaded["changes"])

    def test_command_line_pins_the_level(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """--log-level warning holds even though the config says info."""
        config = BASE_CONFIG + "logging:\n  level: info\n"
        daemon = make_daemon(config, args=["--log-level", "warning"]).start()
        assert daemon.config_path is not None
        daemon.config_path.write_text(config.replace("critical: 200", "critical: 250"))
        assert 0 == daemon.cli("reload").returncode
        send(daemon, b"bad line two")
        daemon.wait_log("ingest.malformed")
        assert [] == daemon.log_events("config.reloaded")
        assert [] == daemon.log_events("daemon.started")
