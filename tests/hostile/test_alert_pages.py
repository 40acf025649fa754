"""An incident across thousands of series: ``alerts`` and ``report`` answer in
pages that the CLI joins, while the daemon goes on answering everyone else."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest

from perfwarden.control.channel import ControlChannel
from perfwarden.control.protocol import MAX_LINE
from perfwarden.testing import wait_until

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from perfwarden.testing import DaemonProcess

pytestmark = pytest.mark.slow

ALERTS = 5_000
CONFIG = """\
version: 1
statistics: {min_samples: 2}
evaluation: {interval: 0.5s, basis: sample, window: 2}
metrics:
  lat: {unit: ms, bound: upper, warning: 10, critical: 20}
http: {listen: "127.0.0.1:0"}
"""
#: Optimizer plugins would get 5,000 violations: not what this is about.
NO_PLUGINS = {"PERFWARDEN_DISABLE_PLUGIN_AUTOLOAD": "1"}


def incident(make_daemon: Callable[..., DaemonProcess]) -> DaemonProcess:
    """A daemon with ALERTS critical alerts firing, fed in one stream write."""
    daemon = make_daemon(CONFIG, extra_env=NO_PLUGINS).start()
    daemon.send_stream("".join(f"lat:250|ms|#id:{i}\n" for i in range(ALERTS)) * 2)
    wait_until(
        lambda: daemon.request("status")["evaluation"]["alerts_firing"] >= ALERTS,
        timeout=120,
    )
    return daemon


def first_page(daemon: DaemonProcess, command: str) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(60)
        sock.connect(str(daemon.control_path))
        request = {"id": 1, "command": command, "args": {}}
        sock.sendall(json.dumps(request).encode() + b"\n")
        return sock.makefile("rb").readline(MAX_LINE + 1)


def cli(daemon: DaemonProcess, output: Path, *args: str) -> subprocess.Popen[bytes]:
    """The CLI in the background, printing to ``output`` (a pipe left unread while
    the test polls would block it)."""
    command = [sys.executable, "-m", "perfwarden", *args]
    command += ["--socket-dir", str(daemon.socket_dir)]
    with output.open("w") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)


def answered_during(
    daemon: DaemonProcess, start: Callable[[], subprocess.Popen[bytes]]
) -> tuple[subprocess.Popen[bytes], int]:
    """Start a process with ``start()`` once ours is the daemon's only control
    connection; count the ``status`` requests answered while the process had its
    own connection open too (``control.open`` counts it beside ours)."""
    during = 0
    with ControlChannel(daemon.control_path, timeout=60) as channel:
        wait_until(lambda: channel.call("status")["control"]["open"] == 1)
        process = start()
        while process.poll() is None:
            status: dict[str, Any] = channel.call("status")
            if status["control"]["open"] >= 2 and process.poll() is None:
                during += 1
    return process, during


class TestAlertPages:
    def test_every_alert_printed_while_status_answers(
        self, make_daemon: Callable[..., DaemonProcess], tmp_path: Path
    ) -> None:
        """5,000 firing alerts: pages under the line cap, all of them printed."""
        daemon = incident(make_daemon)
        line = first_page(daemon, "alerts")
        assert len(line) < MAX_LINE // 2
        page = json.loads(line)["data"]
        assert ALERTS == page["total"]
        assert 0 < len(page["alerts"]) == page["next_offset"] < ALERTS
        assert page["report"].startswith("🚨 Performance Alert Summary")

        output = tmp_path / "alerts.json"
        process, during = answered_during(
            daemon, lambda: cli(daemon, output, "alerts", "--json")
        )
        assert 0 == process.wait(timeout=120), output.read_text()
        assert during >= 1
        data = json.loads(output.read_text())
        assert ALERTS == len({a["series"] for a in data["alerts"]})
        assert {"critical"} == {a["level"] for a in data["alerts"]}
        assert ALERTS == data["report"].count("CRITICAL: lat{id=")

        result = daemon.cli("alerts", timeout=120)
        assert 0 == result.returncode, result.stderr
        shown = [x for x in result.stdout.splitlines() if x.startswith("CRITICAL: ")]
        assert ALERTS == len(set(shown))
        assert 1 == result.stdout.count("Performance Alert Summary")

        port = int(daemon.wait_log("http.started")["port"])
        url = f"http://127.0.0.1:{port}/api/state"
        with urllib.request.urlopen(url, timeout=60) as response:
            state = json.loads(response.read())
        assert ALERTS == state["alerts_total"]
        assert 0 < len(state["alerts"]) < ALERTS  # the first page: bounded


class TestReportPages:
    def test_thousands_of_metrics_reported(
        self, make_daemon: Callable[..., DaemonProcess]
    ) -> None:
        """2,000 metrics of long names (over 1 MiB of dashboard): every one shown."""
        daemon = make_daemon(CONFIG, extra_env=NO_PLUGINS).start()
        names = [f"m{i:04d}_" + "x" * 600 for i in range(2_000)]
        daemon.send_stream("".join(f"{name}:1|g\n" for name in names))
        daemon.wait_received(len(names), timeout=60)
        page = json.loads(first_page(daemon, "report"))["data"]
        assert page["next_offset"] is not None
        data = daemon.cli_json("report")
        assert set(names) <= set(data["monitoring_dashboard"]["metrics"])
        result = daemon.cli("report", timeout=120)
        assert 0 == result.returncode, result.stderr
        assert "next_offset" not in result.stdout
        assert all(f"m{i:04d}_" in result.stdout for i in range(0, 2_000, 97))
