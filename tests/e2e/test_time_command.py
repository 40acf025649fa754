"""End-to-end tests of ``perfwarden time`` against a real daemon."""

from __future__ import annotations

import signal
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import psutil

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

ALLOCATE_64_MB = "b = bytearray(64 << 20); b[::4096] = b'x' * len(b[::4096])"


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

    def test_peak_memory(self, daemon: DaemonProcess) -> None:
        """The peak RSS of the command (64 MiB touched) arrives as a gauge in MiB."""
        result = subprocess.run(
            time_command(
                daemon.socket_dir,
                sys.executable,
                "-c",
                ALLOCATE_64_MB,
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
        assert 64.0 <= records[0]["last"] <= 200.0
        assert 1 == len(series(daemon, "build_time"))

    def test_runs_without_daemon(self, tmp_path: Path) -> None:
        """With no daemon the command still runs and its status is returned."""
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
        assert "" == result.stderr

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
