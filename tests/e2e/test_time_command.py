"""End-to-end tests of ``perfwarden time`` against a real daemon."""

from __future__ import annotations

import signal
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import psutil
import pytest

from perfwarden.testing import wait_until

if TYPE_CHECKING:
    from pathlib import Path

    from perfwarden.testing import DaemonProcess

# Records the first SIGTERM in argv[1] and exits 7; says it is ready in argv[2].
TRAP = """
import signal, sys, time
def on_term(signum, frame):
    open(sys.argv[1], "w").write(str(signum))
    sys.exit(7)
signal.signal(signal.SIGTERM, on_term)
open(sys.argv[2], "w").write("ready")
time.sleep(60)
"""

# Touches argv[1] MiB, sleeps argv[2] s, then writes its own VmHWM (KiB) to argv[3].
ALLOCATE_AND_REPORT = """
import sys, time
b = bytearray(int(sys.argv[1]) << 20); b[::4096] = b"x" * len(b[::4096])
time.sleep(float(sys.argv[2]))
status = open("/proc/self/status").read()
hwm = status.split("VmHWM:")[1].split()[0]
open(sys.argv[3], "w").write(hwm)
"""


def time_command(
    socket_dir: Path, *command: str, options: tuple[str, ...] = ()
) -> list[str]:
    """The argv of ``perfwarden time`` on ``socket_dir``."""
    return [
        sys.executable,
        "-m",
        "perfwarden",
        "time",
        "--socket-dir",
        str(socket_dir),
        *options,
        "--",
        *command,
    ]


def series(daemon: DaemonProcess, metric: str) -> list[dict[str, Any]]:
    """The stats records of one metric (empty until it has samples)."""
    records: list[dict[str, Any]] = daemon.request("stats", metrics=[metric])["series"]
    return records


class TestTime:
    """Wall time, peak memory and exit status of a timed command."""

    def test_exit_status_and_wall_time(self, daemon: DaemonProcess) -> None:
        """The command's status is returned and its wall time (>= 300 ms) arrives."""
        result = subprocess.run(
            time_command(daemon.socket_dir, "sh", "-c", "sleep 0.3; exit 3"),
            check=False,
            timeout=60,
        )
        assert 3 == result.returncode
        records = wait_until(lambda: series(daemon, "command_execution_time"))
        assert 1 == len(records)
        assert records[0]["last"] >= 300.0
        assert "ms" == records[0]["type"]
        assert {"command": "sh"} == records[0]["tags"]

    def test_peak_memory(self, daemon: DaemonProcess, tmp_path: Path) -> None:
        """A 64 MiB command's peak arrives as a gauge in MiB: its own, to 5%."""
        own = tmp_path / "hwm"
        result = subprocess.run(
            time_command(
                daemon.socket_dir,
                sys.executable,
                "-c",
                ALLOCATE_AND_REPORT,
                "64",
                "0",
                str(own),
                options=("--metric", "build_time", "--tag", "stage:test"),
            ),
            check=False,
            timeout=60,
        )
        assert 0 == result.returncode
        records = wait_until(lambda: series(daemon, "build_time.peak_memory_mb"))
        assert "g" == records[0]["type"]
        assert {"command": sys.executable.rsplit("/", 1)[-1], "stage": "test"} == (
            records[0]["tags"]
        )
        own_mb = int(own.read_text()) / 1024
        assert 64.0 <= records[0]["last"]
        assert own_mb == pytest.approx(records[0]["last"], rel=0.05)
        assert 1 == len(series(daemon, "build_time"))

    def test_small_command_without_launcher_memory(self, daemon: DaemonProcess) -> None:
        """A small command reports its own megabyte or two, not perfwarden's ~18 MB."""
        result = subprocess.run(
            time_command(daemon.socket_dir, "sleep", "0.05"), check=False, timeout=60
        )
        assert 0 == result.returncode
        metric = "command_execution_time.peak_memory_mb"
        records = wait_until(lambda: series(daemon, metric))
        assert 0.1 < records[0]["last"] < 5.0

    def test_sampled_peak_matches_the_commands_own(
        self, daemon: DaemonProcess, tmp_path: Path
    ) -> None:
        """A command smaller than perfwarden is sampled: its own VmHWM, to 15%."""
        own = tmp_path / "hwm"
        result = subprocess.run(
            time_command(
                daemon.socket_dir,
                sys.executable,
                "-c",
                ALLOCATE_AND_REPORT,
                "1",
                "0.3",
                str(own),
            ),
            check=False,
            timeout=60,
        )
        assert 0 == result.returncode
        metric = "command_execution_time.peak_memory_mb"
        records = wait_until(lambda: series(daemon, metric))
        own_mb = int(own.read_text()) / 1024
        assert own_mb == pytest.approx(records[0]["last"], rel=0.15)

    def test_instant_command_reports_no_floor(self, daemon: DaemonProcess) -> None:
        """``true`` sends its wall time; a peak, if it was seen at all, is tiny."""
        result = subprocess.run(
            time_command(daemon.socket_dir, "true"), check=False, timeout=60
        )
        assert 0 == result.returncode
        wait_until(lambda: series(daemon, "command_execution_time"))
        peaks = series(daemon, "command_execution_time.peak_memory_mb")
        assert all(record["last"] < 5.0 for record in peaks), peaks

    def test_runs_without_daemon(self, tmp_path: Path) -> None:
        """With no daemon the command still runs and its status is returned; a
        warning says the measurement was not sent."""
        marker = tmp_path / "ran"
        result = subprocess.run(
            time_command(tmp_path, "sh", "-c", f"touch {marker}; exit 5"),
            check=False,
            timeout=60,
            capture_output=True,
            text=True,
        )
        assert 5 == result.returncode
        assert marker.exists()
        assert "no perfwarden daemon listens" in result.stderr
        assert "the measurement was not sent" in result.stderr

    def test_command_not_found(self, tmp_path: Path) -> None:
        """A missing command exits 127 with a message, like a shell."""
        result = subprocess.run(
            time_command(tmp_path, "pw-no-such-command-xyz"),
            check=False,
            timeout=60,
            capture_output=True,
            text=True,
        )
        assert 127 == result.returncode
        assert "pw-no-such-command-xyz: command not found" in result.stderr

    def test_no_command_is_usage(self, tmp_path: Path) -> None:
        """Without a command: usage and exit 2."""
        result = subprocess.run(
            time_command(tmp_path),
            check=False,
            timeout=60,
            capture_output=True,
            text=True,
        )
        assert 2 == result.returncode
        assert "usage: perfwarden time" in result.stderr

    def test_killed_by_signal(self, tmp_path: Path) -> None:
        """A command killed by signal N exits 128+N."""
        result = subprocess.run(
            time_command(tmp_path, "sh", "-c", "kill -KILL $$"),
            check=False,
            timeout=60,
        )
        assert 128 + signal.SIGKILL == result.returncode


class TestSignals:
    """Signals sent to ``perfwarden time`` reach the command."""

    def test_sigterm_forwarded(self, tmp_path: Path) -> None:
        """SIGTERM is forwarded; the command records it and its status is returned."""
        record, ready = tmp_path / "signal", tmp_path / "ready"
        process = subprocess.Popen(
            time_command(tmp_path, sys.executable, "-c", TRAP, str(record), str(ready)),
            stdin=subprocess.DEVNULL,
        )
        try:
            wait_until(ready.exists)
            process.send_signal(signal.SIGTERM)
            assert 7 == process.wait(30)
        finally:
            process.kill()
            process.wait()
        assert str(int(signal.SIGTERM)) == record.read_text()

    def test_sigint_forwarded_off_terminal(self, tmp_path: Path) -> None:
        """Off a terminal, SIGINT is forwarded too (a plain sleep dies of it)."""
        ready = tmp_path / "ready"
        process = subprocess.Popen(
            time_command(tmp_path, "sh", "-c", f"touch {ready}; exec sleep 30"),
            stdin=subprocess.DEVNULL,
        )
        try:
            wait_until(ready.exists)
            wait_until(lambda: _is_sleeping(process.pid))
            process.send_signal(signal.SIGINT)
            assert 128 + signal.SIGINT == process.wait(30)
        finally:
            process.kill()
            process.wait()


def _is_sleeping(pid: int) -> bool:
    """The timed shell has exec'd ``sleep`` (so SIGINT reaches sleep, not sh)."""
    return any(child.name() == "sleep" for child in psutil.Process(pid).children())
