"""perfwarden.logs.writer and perfwarden.logs.setup: queued lines, drops counted and
announced, bounded flush, closed outputs, fork, the rendered format."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import select
import sys
import threading
import time
import warnings
from typing import TYPE_CHECKING, Any

import pytest
import structlog

from perfwarden.logs import setup as logs
from perfwarden.logs.writer import SHUTDOWN_RESERVE, QueuedLineWriter, StdoutLines

if TYPE_CHECKING:
    from collections.abc import Iterator


def render(count: int, reason: str) -> str:
    """A stand-in for the ``log.dropped`` line."""
    return f"DROPPED {count} {reason}"


class GateStream(io.StringIO):
    """A stream without a descriptor whose writes wait until ``gate`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.gate = threading.Event()

    def write(self, s: str) -> int:
        self.entered.set()
        self.gate.wait(30)
        return super().write(s)


class FailingStream(io.StringIO):
    """A stream whose first ``failures`` writes fail with ENOSPC."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def write(self, s: str) -> int:
        if self.failures:
            self.failures -= 1
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(s)


def read_all(fd: int) -> str:
    """Everything readable from ``fd`` until EOF."""
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks).decode()


@pytest.fixture(name="pipe")
def _pipe() -> Iterator[tuple[int, io.TextIOWrapper]]:
    """A pipe: the read descriptor and the write end as a text stream."""
    read_fd, write_fd = os.pipe()
    stream = os.fdopen(write_fd, "w")
    yield read_fd, stream
    for close in (stream.close, lambda: os.close(read_fd)):
        with contextlib.suppress(OSError):
            close()


@pytest.fixture(name="configured")
def _configured() -> Iterator[None]:
    """Restore structlog's configuration and stop perfwarden's writer afterwards."""
    saved = structlog.get_config()
    yield
    logs.shutdown_logging(5)
    logs._writer = None
    structlog.configure(**saved)


class TestQueuedLineWriter:
    """Lines leave in order from the writer thread; the caller never waits."""

    def test_lines_written_in_order(self, pipe: tuple[int, io.TextIOWrapper]) -> None:
        """Every line arrives once, in order, newline-terminated."""
        read_fd, stream = pipe
        writer = QueuedLineWriter(stream, render)
        for i in range(1000):
            writer.msg(f"line {i}")
        assert writer.close(10)
        stream.close()
        assert [f"line {i}" for i in range(1000)] == read_all(read_fd).splitlines()
        assert 1000 == writer.stats()["written"]
        assert 0 == writer.stats()["dropped"]

    def test_full_queue_drops_counts_and_announces(self) -> None:
        """Past ``max_queued`` lines are counted; the next line that fits is
        preceded by one marker with the count."""
        stream = GateStream()
        writer = QueuedLineWriter(stream, render, max_queued=3)
        writer.msg("a")
        assert stream.entered.wait(10)  # the writer holds "a", stuck on the output
        for line in "bcdef":
            writer.msg(line)
        stats = writer.stats()
        assert (3, 2) == (stats["queued"], stats["dropped_by_reason"]["queue_full"])
        stream.gate.set()
        assert writer.flush(10)
        writer.msg("g")
        assert writer.close(10)
        assert "a\nb\nc\nd\nDROPPED 2 queue_full\ng\n" == stream.getvalue()
        assert 6 == writer.stats()["written"]  # a b c d, the marker, g

    def test_flush_and_close_bounded_when_output_stalls(self) -> None:
        """A stalled output makes flush and close give up at their deadline."""
        stream = GateStream()
        writer = QueuedLineWriter(stream, render)
        writer.msg("stuck")
        assert stream.entered.wait(10)
        started = time.monotonic()
        assert not writer.flush(0.2)
        assert not writer.close(0.2)
        assert time.monotonic() - started < 5
        writer.msg("after close")
        assert 1 == writer.stats()["dropped_by_reason"]["stopped"]
        stream.gate.set()  # let the thread finish

    def test_shutdown_reserve(self) -> None:
        """After ``begin_shutdown`` the last lines get in past a full queue."""
        stream = GateStream()
        writer = QueuedLineWriter(stream, render, max_queued=2)
        writer.msg("held")
        assert stream.entered.wait(10)
        writer.msg("q1")
        writer.msg("q2")
        writer.msg("lost")
        writer.begin_shutdown()
        writer.msg("daemon.stopped")
        assert 2 + 2 == writer.stats()["queued"]  # q1 q2, the marker, stopped
        assert SHUTDOWN_RESERVE > 1
        stream.gate.set()
        assert writer.close(10)
        assert stream.getvalue().endswith("q2\nDROPPED 1 queue_full\ndaemon.stopped\n")

    def test_broken_pipe_counts_and_never_raises(
        self, pipe: tuple[int, io.TextIOWrapper], capfd: pytest.CaptureFixture[str]
    ) -> None:
        """With the reader gone, lines are discarded and counted; one note on
        stderr says so; the caller sees nothing."""
        read_fd, stream = pipe
        os.close(read_fd)
        writer = QueuedLineWriter(stream, render)
        for i in range(50):
            writer.msg(f"line {i}")
        assert writer.close(10)
        stats = writer.stats()
        assert ("closed", 0, 50) == (
            stats["output"],
            stats["written"],
            stats["dropped_by_reason"]["closed"],
        )
        assert 1 == capfd.readouterr().err.count("log output closed")

    def test_write_error_announced_when_output_recovers(self) -> None:
        """Lines lost to a failed write are counted and announced before the next."""
        stream = FailingStream(failures=1)
        writer = QueuedLineWriter(stream, render)
        writer.msg("lost")
        assert writer.flush(10)
        writer.msg("next")
        assert writer.close(10)
        assert "DROPPED 1 write_error\nnext\n" == stream.getvalue()
        assert 1 == writer.stats()["dropped_by_reason"]["write_error"]

    def test_fork_child_writes_its_own_lines_once(
        self, pipe: tuple[int, io.TextIOWrapper]
    ) -> None:
        """A forked child writes its lines itself; the parent's queued lines are
        written once, by the parent."""
        read_fd, stream = pipe
        writer = QueuedLineWriter(stream, render)
        for i in range(200):
            writer.msg(f"parent {i}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # 3.12: fork + threads
            pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 0
            try:
                writer.msg("child line")
                writer.close(1)
            except BaseException:  # noqa: BLE001 - report through the exit status
                code = 1
            os._exit(code)
        # Read while the child writes: the pipe must not fill up.
        out: list[str] = []
        reader = threading.Thread(target=lambda: out.append(read_all(read_fd)))
        reader.start()
        assert 0 == os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        writer.msg("parent last")
        assert writer.close(10)
        stream.close()
        reader.join(10)
        lines = out[0].splitlines()
        assert 1 == lines.count("child line")
        expected = [f"parent {i}" for i in range(200)] + ["parent last"]
        assert expected == [line for line in lines if line.startswith("parent")]

    def test_marker_survives_a_failing_renderer(self) -> None:
        """A renderer that raises still leaves a ``log.dropped`` line."""

        def broken(count: int, reason: str) -> str:
            raise RuntimeError(count, reason)

        stream = GateStream()
        writer = QueuedLineWriter(stream, broken, max_queued=1)
        writer.msg("a")
        assert stream.entered.wait(10)
        writer.msg("b")
        writer.msg("c")
        stream.gate.set()
        assert writer.flush(10)
        writer.msg("d")
        assert writer.close(10)
        lines = stream.getvalue().splitlines()
        assert ["a", "b"] == lines[:2]
        assert {"event": "log.dropped", "count": 1, "reason": "queue_full"} == (
            json.loads(lines[2])
        )
        assert "d" == lines[3]


class TestStdoutLines:
    """``print()`` to the daemon's stdout goes through the queue as whole lines."""

    def test_whole_lines_only(self) -> None:
        """Text waits for its newline; each line is queued once."""
        stream = io.StringIO()
        writer = QueuedLineWriter(stream, render)
        out = StdoutLines(writer, stream)
        out.write("a")
        out.write("b\nc")
        print("d", file=out)
        out.flush()
        assert writer.close(10)
        assert "ab\ncd\n" == stream.getvalue()


class TestConfigureLogging:
    """The rendered format is the contract's; the console renderer on a terminal."""

    def test_json_format_unchanged(
        self, configured: None, pipe: tuple[int, io.TextIOWrapper]
    ) -> None:
        """One JSON object per line with event, level and a UTC ISO timestamp."""
        read_fd, stream = pipe
        logs.configure_logging("info", stream=stream)
        log = logs.get_logger("test")
        log.debug("test.hidden")
        log.info("test.event", metric="m", value=1.5)
        log.warning("test.warned")
        assert logs.shutdown_logging(10)
        stream.close()
        records = [json.loads(line) for line in read_all(read_fd).splitlines()]
        assert ["test.event", "test.warned"] == [r["event"] for r in records]
        first = records[0]
        assert {"event", "level", "timestamp", "metric", "value"} == set(first)
        assert ("info", 1.5) == (first["level"], first["value"])
        assert first["timestamp"].endswith("Z")

    def test_dropped_event_rendered_like_the_others(self, configured: None) -> None:
        """``log.dropped`` is a JSON line with level warning, count and reason."""
        stream = GateStream()
        writer = logs.configure_logging("info", stream=stream, json=True, max_queued=1)
        log = logs.get_logger("test")
        log.info("test.first")
        assert stream.entered.wait(10)
        for _ in range(4):
            log.info("test.flood")  # one queued, three dropped
        stream.gate.set()
        assert writer.flush(10)
        log.info("test.after")
        assert logs.shutdown_logging(10)
        records = [json.loads(line) for line in stream.getvalue().splitlines()]
        events = [r["event"] for r in records]
        assert ["test.first", "test.flood", "log.dropped", "test.after"] == events
        dropped = records[2]
        assert (3, "queue_full", "warning") == (
            dropped["count"],
            dropped["reason"],
            dropped["level"],
        )
        assert "timestamp" in dropped
        assert 3 == logs.log_stats()["dropped"]

    def test_console_renderer_on_a_terminal(self, configured: None) -> None:
        """On a TTY the console renderer is used, through the same writer."""
        master, slave = os.openpty()
        stream = os.fdopen(slave, "w")
        try:
            logs.configure_logging("info", stream=stream)
            logs.get_logger("test").info("test.console", key="value")
            assert logs.flush_logging(10)
            assert select.select([master], [], [], 10)[0]
            text = os.read(master, 65536).decode()
        finally:
            logs.shutdown_logging(5)
            stream.close()
            os.close(master)
        assert "test.console" in text
        assert "key" in text
        assert not text.lstrip().startswith("{")

    def test_closed_stdout_at_start(
        self, configured: None, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Started with stdout closed (``sys.stdout`` is None): logging still works."""
        monkeypatch.setattr(sys, "stdout", None)
        logs.configure_logging("info", json=True)
        logs.get_logger("test").info("test.nowhere")
        assert logs.shutdown_logging(10)
        assert 0 == logs.log_stats()["dropped"]

    def test_capture_stdout_keeps_lines_whole(
        self,
        configured: None,
        pipe: tuple[int, io.TextIOWrapper],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A stray ``print()`` lands between log lines, never inside one."""
        read_fd, stream = pipe
        monkeypatch.setattr(sys, "stdout", stream)
        logs.configure_logging("info", json=True, capture_stdout=True)
        assert isinstance(sys.stdout, StdoutLines)
        log = logs.get_logger("test")
        log.info("test.before")
        print("plugin says", end=" ")
        print("hello")
        log.info("test.after")
        assert logs.shutdown_logging(10)
        stream.close()
        lines = read_all(read_fd).splitlines()
        assert "plugin says hello" == lines[1]
        records: list[dict[str, Any]] = [json.loads(lines[0]), json.loads(lines[2])]
        assert ["test.before", "test.after"] == [r["event"] for r in records]
