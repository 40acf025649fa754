"""Tests for perfwarden.sampling's matching over time, on real processes: a process
that starts later, a long name, an ``exec`` in place, a pid another process takes."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import psutil
import pytest

from perfwarden.sampling.match_memory import RECHECK_EVERY
from perfwarden.testing import wait_until

from .conftest import Harness, Spawner, entry

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path


class ManualClock:
    """The sampler's clock, moved by the test: an entry is scanned only when the
    clock has moved past its next due time."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def readings(harness: Harness, metric: str, pid: int) -> int:
    """How many values of ``metric`` ``pid`` has sent."""
    return len(harness.values(metric, pid))


class TestStartsLater:
    """A process that starts after the sampler is found at a later scan."""

    def test_by_cmdline(self, sample: Callable[..., Harness], spawner: Spawner) -> None:
        """Matched by command line from a later scan on, dropped when it exits."""
        harness = sample(entry(cmdline=spawner.marker))
        harness.wait_scans(3)
        assert 0 == harness.entry()["matched"]
        process = spawner.sleeper()
        wait_until(lambda: [process.pid] == harness.entry()["pids"])
        wait_until(lambda: harness.values("memory_usage_mb", process.pid))
        process.kill()
        process.wait()
        wait_until(lambda: [] == harness.entry()["pids"])

    @pytest.mark.parametrize("length", [12, 40])
    def test_by_name(
        self,
        sample: Callable[..., Harness],
        spawner: Spawner,
        tmp_path: Path,
        length: int,
    ) -> None:
        """Matched by name, also a name longer than the 15 bytes the kernel keeps
        (psutil completes it from the command line)."""
        name = f"pw{uuid.uuid4().hex}"[:length]
        harness = sample(entry(name=name))
        harness.wait_scans(2)
        program = tmp_path / name
        program.symlink_to(psutil.Process().exe())
        process = spawner.sleeper(str(program))
        wait_until(lambda: [process.pid] == harness.entry()["pids"])
        assert name == psutil.Process(process.pid).name()


class TestSamePid:
    """A pid's process changes: ``exec`` in place, or another process takes it."""

    def test_exec_in_place(
        self, sample: Callable[..., Harness], spawner: Spawner, tmp_path: Path
    ) -> None:
        """A process that runs ``exec`` into a matching command line under its pid,
        long after it started, is matched by the rolling re-read (every process
        at each scan for an entry scanned every RECHECK_EVERY)."""
        clock = ManualClock()
        go = tmp_path / "go"
        process = spawner.exec_later(go)
        harness = sample(
            entry(interval=RECHECK_EVERY, cmdline=spawner.marker), clock=clock
        )
        wait_until(lambda: harness.entry().get("scans", 0) >= 1)
        clock.now += RECHECK_EVERY  # past the second look at new processes
        wait_until(lambda: harness.entry().get("scans", 0) >= 2)
        assert [] == harness.entry()["pids"]
        go.touch()
        wait_until(lambda: spawner.marker in psutil.Process(process.pid).cmdline())
        clock.now += RECHECK_EVERY
        wait_until(lambda: [process.pid] == harness.entry()["pids"])

    @pytest.mark.parametrize("marked", [True, False])
    def test_reused_pid_is_another_process(
        self, sample: Callable[..., Harness], spawner: Spawner, marked: bool
    ) -> None:
        """A pid another process takes between two scans is judged again, and when
        it matches it is sampled as a new process: its first reading sends no
        ``cpu_percent`` (that would be against the old process's CPU times)."""
        clock = ManualClock()
        first = spawner.sleeper()
        pid = first.pid
        harness = sample(entry(interval=1.0, cmdline=spawner.marker), clock=clock)
        wait_until(lambda: 1 == readings(harness, "process.threads", pid))
        clock.now += 1.0
        wait_until(lambda: 2 == readings(harness, "process.threads", pid))
        assert 1 == readings(harness, "process.cpu_percent", pid)
        spawner.replace(first, marked=marked)
        clock.now += 1.0
        if marked:
            wait_until(lambda: 3 == readings(harness, "process.threads", pid))
            assert 1 == readings(harness, "process.cpu_percent", pid)
            clock.now += 1.0
            wait_until(lambda: 4 == readings(harness, "process.threads", pid))
            assert 2 == readings(harness, "process.cpu_percent", pid)
        else:
            wait_until(lambda: [] == harness.entry()["pids"])
            assert 2 == readings(harness, "process.threads", pid)
