"""Fixtures that run a process sampler over real processes (``test_sampler*.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
import pytest

from perfwarden.config.model import Config, ProcessConfig
from perfwarden.sampling.sampler import ProcessSampler
from perfwarden.testing import wait_until

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

MIB = 2**20
ALLOCATED_MB = 80

# Allocates and touches 80 MiB, then says so in argv[1] (a file) and sleeps.
# argv[2] is a unique marker so that a cmdline regex matches only this test's child.
ALLOCATE = f"""
import sys, time
block = bytearray({ALLOCATED_MB} * {MIB})
for i in range(0, len(block), 4096):
    block[i] = 1
open(sys.argv[1], "w").write("ready")
time.sleep(120)
"""

# Waits for the file argv[1], then becomes a sleeper with the marker (from the
# environment, so that the marker is not in its command line before).
EXEC_LATER = """
import os, sys, time
while not os.path.exists(sys.argv[1]):
    time.sleep(0.01)
code = "import time; time.sleep(120)"
os.execv(sys.executable, [sys.executable, "-c", code, os.environ["PW_MARKER"]])
"""

#: Writing ``N`` here makes ``N + 1`` the next pid (root, or CAP_CHECKPOINT_RESTORE).
NS_LAST_PID = Path("/proc/sys/kernel/ns_last_pid")

# Starts the allocating child, writes its pid to argv[1], waits for it.
PARENT = """
import subprocess, sys
pid_file, ready, marker, code = sys.argv[1:5]
child = subprocess.Popen([sys.executable, "-c", code, ready, marker])
open(pid_file, "w").write(str(child.pid))
child.wait()
"""


class Harness:
    """A ProcessSampler running on its own event loop in a thread."""

    def __init__(
        self,
        entries: Iterable[ProcessConfig],
        source: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = Config(processes=tuple(entries))
        self.samples: list[tuple[str, dict[str, str], float]] = []
        self.sampler = ProcessSampler(
            lambda: self.config, self._sink, source, clock=clock
        )
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),))

    def _sink(self, name: str, tags: dict[str, str], value: float) -> None:
        self.samples.append((name, dict(tags), value))

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._ready.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self.sampler.run()

    def start(self) -> Harness:
        """Start sampling."""
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        """Cancel the sampler and join its thread."""
        if self._loop is not None and self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(30)

    def values(self, metric: str, pid: int | None = None) -> list[float]:
        """Every value of ``metric`` sent so far (of one pid, if given)."""
        return [
            value
            for name, tags, value in list(self.samples)
            if name == metric and (pid is None or tags["pid"] == str(pid))
        ]

    def entry(self, name: str = "target") -> dict[str, Any]:
        """The status of one entry."""
        status: dict[str, Any] = self.sampler.status().get(name, {})
        return status

    def wait_scans(self, more: int, name: str = "target") -> None:
        """Wait until the entry was scanned ``more`` more times."""
        target = self.entry(name).get("scans", 0) + more
        wait_until(lambda: self.entry(name).get("scans", 0) >= target)


@pytest.fixture(name="harnesses")
def _harnesses() -> Iterator[list[Harness]]:
    """Harnesses to stop at the end of the test."""
    started: list[Harness] = []
    yield started
    for harness in started:
        harness.stop()


@pytest.fixture(name="sample")
def _sample(harnesses: list[Harness]) -> Callable[..., Harness]:
    """Start a sampler on some entries."""

    def start(
        *entries: ProcessConfig,
        source: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> Harness:
        harness = Harness(entries, source, clock)
        harnesses.append(harness)
        return harness.start()

    return start


class Spawner:
    """Starts test processes and kills whatever is left at the end."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.marker = f"pw-sampler-{uuid.uuid4().hex}"
        self.processes: list[subprocess.Popen[bytes]] = []

    def allocating(self) -> subprocess.Popen[bytes]:
        """A process holding ~80 MiB, ready when this returns."""
        ready = self.tmp_path / f"ready-{len(self.processes)}"
        process = subprocess.Popen(
            [sys.executable, "-c", ALLOCATE, str(ready), self.marker]
        )
        self.processes.append(process)
        wait_until(ready.exists)
        return process

    def sleeper(
        self, program: str = sys.executable, *, marked: bool = True
    ) -> subprocess.Popen[bytes]:
        """A sleeping Python (run as ``program``: a link gives it that name),
        with the marker in its command line if ``marked``; it has run ``exec``
        when this returns."""
        argv = [program, "-c", "import time; time.sleep(120)"]
        process = subprocess.Popen([*argv, self.marker] if marked else argv)
        self.processes.append(process)
        return process

    def exec_later(self, go: Path) -> subprocess.Popen[bytes]:
        """A Python without the marker that, once ``go`` exists, runs ``exec``
        into a marked sleeper under the same pid."""
        process = subprocess.Popen(
            [sys.executable, "-c", EXEC_LATER, str(go)],
            env={**os.environ, "PW_MARKER": self.marker},
        )
        self.processes.append(process)
        return process

    def replace(
        self, process: subprocess.Popen[bytes], *, marked: bool
    ) -> subprocess.Popen[bytes]:
        """End ``process`` and start a sleeper on its pid (``ns_last_pid`` makes
        it the next pid); skips the test where the next pid cannot be chosen."""
        pid = process.pid
        process.kill()
        process.wait()
        for _ in range(50):
            try:
                NS_LAST_PID.write_text(str(pid - 1))
            except OSError as exc:
                pytest.skip(f"choosing a pid needs root ({NS_LAST_PID}: {exc})")
            other = self.sleeper(marked=marked)
            if other.pid == pid:
                return other
            other.kill()
            other.wait()
        pytest.skip(f"another process took pid {pid}")

    def parent(self) -> tuple[subprocess.Popen[bytes], int]:
        """A process whose child holds ~80 MiB; returns (parent, child pid)."""
        pid_file = self.tmp_path / "child.pid"
        ready = self.tmp_path / "child.ready"
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                PARENT,
                str(pid_file),
                str(ready),
                self.marker,
                ALLOCATE,
            ]
        )
        self.processes.append(process)
        child_pid = int(wait_until(lambda: pid_file.exists() and pid_file.read_text()))
        return process, child_pid

    def close(self) -> None:
        for process in self.processes:
            with contextlib.suppress(psutil.Error):
                for child in psutil.Process(process.pid).children(recursive=True):
                    child.kill()
            process.kill()
            process.wait()


@pytest.fixture(name="spawner")
def _spawner(tmp_path: Path) -> Iterator[Spawner]:
    """A Spawner whose processes are killed at the end."""
    spawner = Spawner(tmp_path)
    yield spawner
    spawner.close()


def entry(interval: float = 0.1, children: bool = False, **match: Any) -> ProcessConfig:
    """A ``processes:`` entry named ``target``."""
    return ProcessConfig("target", match, interval, children)


def about_allocated(harness: Harness, pid: int) -> bool:
    """The last memory sample of ``pid`` is about the allocated size (±25%)."""
    values = harness.values("memory_usage_mb", pid)
    return bool(values) and 0.75 * ALLOCATED_MB <= values[-1] <= 1.25 * ALLOCATED_MB
