"""The log stream of a real daemon whose stdout is a pipe: unread, read late, closed.

The pipe is shrunk to one page, so that a few dozen lines fill it; each
``knobs.set`` request makes one ``knob.changed`` line, whose ``reason`` names it.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import signal
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

from perfwarden.logs.setup import FLUSH_SECONDS
from perfwarden.testing import DaemonProcess, wait_until

from .conftest import BASE_CONFIG

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

CONFIG = BASE_CONFIG + "knobs:\n  batch.size: {min: 1, max: 100000, initial: 16}\n"


class StdoutPipe:
    """The daemon's stdout: a one-page pipe that the test reads only when told."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        fcntl.fcntl(self.read_fd, fcntl.F_SETPIPE_SZ, 4096)
        self._data = bytearray()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None
        self.eof = threading.Event()

    def handed_over(self) -> None:
        """The daemon has the write end now; drop ours (so EOF means it exited)."""
        os.close(self.write_fd)

    def resume(self) -> None:
        """Start reading everything, in a thread, until EOF."""
        self._reader = threading.Thread(target=self._read, name="test-stdout-reader")
        self._reader.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            if not select.select([self.read_fd], [], [], 0.1)[0]:
                continue
            chunk = os.read(self.read_fd, 65536)
            if not chunk:
                self.eof.set()
                return
            with self._lock:
                self._data += chunk

    def close_reader(self) -> None:
        """Close the read end: the reader went away."""
        os.close(self.read_fd)
        self.read_fd = -1

    def lines(self) -> list[str]:
        """The complete lines read so far."""
        with self._lock:
            text = self._data.decode()
        return text.split("\n")[:-1]

    def records(self) -> list[dict[str, Any]]:
        """The lines read so far, each decoded (every one must be JSON)."""
        return [json.loads(line) for line in self.lines()]

    def close(self) -> None:
        """Stop the reader thread and close what is still open."""
        self._stop.set()
        if self._reader is not None:
            self._reader.join(10)
        if self.read_fd >= 0:
            os.close(self.read_fd)


@pytest.fixture(name="stdout_pipe")
def _stdout_pipe() -> Iterator[StdoutPipe]:
    pipe = StdoutPipe()
    yield pipe
    pipe.close()


def start(
    make_daemon: Callable[..., DaemonProcess],
    pipe: StdoutPipe,
    *args: str,
    extra_env: dict[str, str] | None = None,
) -> DaemonProcess:
    daemon = make_daemon(CONFIG, stdout=pipe.write_fd, args=args, extra_env=extra_env)
    try:
        daemon.start()
    finally:
        pipe.handed_over()
    return daemon


def log_line(daemon: DaemonProcess, reason: str, value: int = 2) -> None:
    """Make the daemon log one ``knob.changed`` line with this ``reason``."""
    daemon.request("knobs.set", name="batch.size", value=value, reason=reason)


def log_stats(daemon: DaemonProcess) -> dict[str, Any]:
    stats: dict[str, Any] = daemon.request("status")["log"]
    return stats


def reasons(records: list[dict[str, Any]]) -> list[str]:
    return [r["reason"] for r in records if r["event"] == "knob.changed"]


class TestStalledReader:
    """A stdout nobody reads stalls the log, never the daemon."""

    def test_daemon_serves_while_stdout_is_full_then_reports_the_gap(
        self, make_daemon: Callable[..., DaemonProcess], stdout_pipe: StdoutPipe
    ) -> None:
        """With the pipe full and unread the daemon still answers ``perfwarden
        status``, ingests and pings the watchdog; once read again, one
        ``log.dropped`` stands where the lines are missing, and later lines arrive."""
        daemon = start(
            make_daemon,
            stdout_pipe,
            "--log-buffer",
            "20",
            extra_env={"WATCHDOG_USEC": "1000000"},  # a ping every 0.5 s
        )
        sent = 0

        def flood() -> bool:
            nonlocal sent
            log_line(daemon, f"flood-{sent}", value=sent + 1)
            sent += 1
            return log_stats(daemon)["dropped_by_reason"]["queue_full"] >= 10

        wait_until(flood, timeout=60, interval=0)
        stats = log_stats(daemon)
        assert (20, "open") == (stats["queued"], stats["output"])

        # The loop is free: the real CLI, a control request, ingest, the watchdog.
        pings = daemon.notifications.count("WATCHDOG=1")
        started = time.monotonic()
        status = daemon.cli("status", timeout=30)
        assert 0 == status.returncode, status.stderr
        assert "dropped queue_full" in status.stdout
        daemon.send_datagrams(["context_loading_time:87|ms"] * 50)
        assert 50 == daemon.wait_received(50)["accepted"]
        wait_until(lambda: daemon.notifications.count("WATCHDOG=1") >= pings + 2)
        assert time.monotonic() - started < 20
        assert "open" == log_stats(daemon)["output"]

        stdout_pipe.resume()
        # A line logged while the queue is still full would be dropped too: let
        # the writer drain it first.
        wait_until(lambda: log_stats(daemon)["queued"] == 0)
        log_line(daemon, "after-resume")
        wait_until(lambda: "after-resume" in reasons(stdout_pipe.records()))
        records = stdout_pipe.records()
        events = [r["event"] for r in records]
        assert "daemon.started" in events
        gaps = [r for r in records if r["event"] == "log.dropped"]
        assert 1 == len(gaps)
        gap = gaps[0]
        assert ("warning", "queue_full") == (gap["level"], gap["reason"])
        assert gap["count"] == log_stats(daemon)["dropped_by_reason"]["queue_full"]
        # Nothing lost silently: the flood lines that arrived are the first ones,
        # in order, and with the gap they account for every one sent.
        before = reasons(records[: records.index(gap)])
        assert [f"flood-{i}" for i in range(len(before))] == before
        assert sent == len(before) + gap["count"]
        assert ["after-resume"] == reasons(records[records.index(gap) + 1 :])

    def test_sigterm_writes_the_queued_and_final_lines(
        self, make_daemon: Callable[..., DaemonProcess], stdout_pipe: StdoutPipe
    ) -> None:
        """Lines queued behind an unread stdout, and daemon.stopping / stopped,
        all arrive when the reader comes back during the shutdown."""
        daemon = start(make_daemon, stdout_pipe)
        for i in range(60):
            log_line(daemon, f"line-{i}", value=i + 1)
        wait_until(lambda: log_stats(daemon)["queued"] > 0)
        daemon.signal(signal.SIGTERM)
        daemon.wait_notification("STOPPING=1")
        stdout_pipe.resume()
        assert daemon.process is not None
        assert 0 == daemon.process.wait(30)
        assert stdout_pipe.eof.wait(10)
        records = stdout_pipe.records()
        assert [f"line-{i}" for i in range(60)] == reasons(records)
        events = [r["event"] for r in records]
        assert "log.dropped" not in events
        assert "daemon.stopping" in events
        assert "daemon.stopped" == events[-1]

    def test_exit_is_bounded_when_nobody_ever_reads(
        self, make_daemon: Callable[..., DaemonProcess], stdout_pipe: StdoutPipe
    ) -> None:
        """SIGTERM with a stdout that is never read again: the daemon waits for
        its log at most the flush deadline, then exits 0."""
        daemon = start(make_daemon, stdout_pipe)
        for i in range(60):
            log_line(daemon, f"line-{i}", value=i + 1)
        wait_until(lambda: log_stats(daemon)["queued"] > 0)
        started = time.monotonic()
        assert 0 == daemon.stop(timeout=FLUSH_SECONDS + 30)
        assert time.monotonic() - started < FLUSH_SECONDS + 15
        assert "Traceback" not in daemon.log_text()


class TestClosedReader:
    """A stdout whose reader exited does not stop the daemon."""

    def test_daemon_runs_on_and_exits_0(
        self, make_daemon: Callable[..., DaemonProcess], stdout_pipe: StdoutPipe
    ) -> None:
        """Lines are discarded and counted, one note goes to stderr, everything
        else works, and SIGTERM still ends in exit status 0."""
        daemon = start(make_daemon, stdout_pipe)
        stdout_pipe.close_reader()
        for i in range(20):
            log_line(daemon, f"line-{i}", value=i + 1)
        stats = wait_until(lambda: (s := log_stats(daemon))["output"] == "closed" and s)
        wait_until(lambda: log_stats(daemon)["dropped_by_reason"]["closed"] >= 20)
        assert 0 == stats["dropped_by_reason"]["queue_full"]
        daemon.send_datagrams(["context_loading_time:87|ms"] * 10)
        assert 10 == daemon.wait_received(10)["accepted"]
        result = daemon.cli("status", timeout=30)
        assert 0 == result.returncode, result.stderr
        assert "output closed" in result.stdout
        assert 0 == daemon.stop()
        stderr = daemon.log_text()
        assert 1 == stderr.count("log output closed")
        for bad in ("Traceback", "Exception ignored", "BrokenPipeError"):
            assert bad not in stderr
