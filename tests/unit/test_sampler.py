"""Tests for perfwarden.sampling.sampler: matching and sampling real processes, and a
fake."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import psutil
import pytest
from structlog.testing import capture_logs

from perfwarden.config.model import Config, ProcessConfig
from perfwarden.sampling.sampler import ProcessHandle, ProcessInfo
from perfwarden.sampling.self_monitor import SelfMonitor
from perfwarden.testing import wait_until

from .conftest import MIB, Harness, Spawner, about_allocated, entry

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from perfwarden.sampling.process_source import MatchField


class TestMatching:
    """Each way of naming a target finds the real process and reads its memory."""

    def test_by_pid(self, sample: Callable[..., Harness], spawner: Spawner) -> None:
        """A pid match samples the process's RSS at about its allocation."""
        process = spawner.allocating()
        harness = sample(entry(pid=process.pid))
        wait_until(lambda: about_allocated(harness, process.pid), timeout=10)
        assert [process.pid] == harness.entry()["pids"]

    def test_by_cmdline(self, sample: Callable[..., Harness], spawner: Spawner) -> None:
        """A cmdline regex over the joined argv finds the process."""
        process = spawner.allocating()
        harness = sample(entry(cmdline=rf"/ready-\d+ {spawner.marker}$"))
        wait_until(lambda: about_allocated(harness, process.pid), timeout=10)

    def test_by_pidfile(
        self, sample: Callable[..., Harness], spawner: Spawner, tmp_path: Path
    ) -> None:
        """A pidfile is read at each interval, so a rewritten file is followed."""
        first = spawner.allocating()
        pidfile = tmp_path / "app.pid"
        pidfile.write_text(f"{first.pid}\n")
        harness = sample(entry(pidfile=str(pidfile)))
        wait_until(lambda: about_allocated(harness, first.pid), timeout=10)
        second = spawner.allocating()
        pidfile.write_text(f"{second.pid}\n")
        wait_until(lambda: about_allocated(harness, second.pid), timeout=10)

    def test_every_metric_is_sent(
        self, sample: Callable[..., Harness], spawner: Spawner
    ) -> None:
        """CPU, threads, fds, USS and I/O rates arrive, tagged with entry and pid."""
        process = spawner.allocating()
        harness = sample(entry(pid=process.pid))
        metrics = {
            "memory_usage_mb",
            "process.uss_mb",
            "process.cpu_percent",
            "process.threads",
            "process.open_fds",
            "process.read_bytes_per_s",
            "process.write_bytes_per_s",
        }
        wait_until(lambda: metrics <= {name for name, _, _ in harness.samples})
        tags = {"process": "target", "pid": str(process.pid)}
        assert all(tags == t for _, t, _ in harness.samples)
        assert 1.0 == harness.values("process.threads")[-1]


class TestLifecycle:
    """Processes exit, restart and have children."""

    def test_exit_logs_no_match_once(
        self, sample: Callable[..., Harness], spawner: Spawner
    ) -> None:
        """A target that exits is dropped and ``sampler.no_match`` is logged once."""
        process = spawner.allocating()
        with capture_logs() as logs:
            harness = sample(entry(pid=process.pid))
            wait_until(lambda: harness.values("memory_usage_mb"))
            process.kill()
            process.wait()
            wait_until(lambda: [] == harness.entry()["pids"])
            harness.wait_scans(5)
        no_match = [log for log in logs if log["event"] == "sampler.no_match"]
        assert 1 == len(no_match)
        assert 0 == harness.entry()["errors"]

    def test_restart_under_new_pid(
        self, sample: Callable[..., Harness], spawner: Spawner
    ) -> None:
        """A cmdline-matched process that restarts is sampled under its new pid."""
        first = spawner.allocating()
        harness = sample(entry(cmdline=spawner.marker))
        wait_until(lambda: about_allocated(harness, first.pid), timeout=10)
        first.kill()
        first.wait()
        second = spawner.allocating()
        wait_until(lambda: about_allocated(harness, second.pid), timeout=10)
        wait_until(lambda: [second.pid] == harness.entry()["pids"])

    def test_children(self, sample: Callable[..., Harness], spawner: Spawner) -> None:
        """With ``children: true`` the descendants are sampled under their own pid."""
        parent, child_pid = spawner.parent()
        harness = sample(entry(pid=parent.pid, children=True))
        wait_until(lambda: about_allocated(harness, child_pid), timeout=10)
        wait_until(lambda: harness.values("memory_usage_mb", parent.pid))

    def test_no_children_by_default(
        self, sample: Callable[..., Harness], spawner: Spawner
    ) -> None:
        """Without ``children`` only the matched process itself is sampled."""
        parent, child_pid = spawner.parent()
        harness = sample(entry(pid=parent.pid))
        harness.wait_scans(3)
        assert [parent.pid] == harness.entry()["pids"]
        assert [] == harness.values("memory_usage_mb", child_pid)

    def test_config_reload_is_followed(
        self, sample: Callable[..., Harness], spawner: Spawner
    ) -> None:
        """A new config's entries replace the old ones."""
        process = spawner.allocating()
        harness = sample(entry(pid=process.pid))
        wait_until(lambda: harness.values("memory_usage_mb"))
        other = ProcessConfig("other", {"pid": process.pid}, 0.1)
        harness.config = Config(processes=(other,))
        wait_until(lambda: ["other"] == list(harness.sampler.status()))
        wait_until(lambda: harness.entry("other").get("samples", 0) > 0)


class FakeProcess:
    """A process whose USS is not readable (another user's process)."""

    def __init__(self, pid: int = 4242) -> None:
        self.pid = pid
        self.uss_reads = 0

    def create_time(self) -> float:
        return 1000.0

    def rss_bytes(self) -> int:
        return 50 * MIB

    def uss_bytes(self) -> int:
        self.uss_reads += 1
        raise psutil.AccessDenied(self.pid)

    def cpu_percent(self) -> float:
        return 12.5

    def num_threads(self) -> int:
        return 3

    def num_fds(self) -> int:
        return 7

    def io_bytes(self) -> tuple[int, int]:
        return (0, 0)

    def children(self) -> list[ProcessHandle]:
        return []


class FakeSource:
    """A process source with one fake process."""

    def __init__(self, process: FakeProcess) -> None:
        self.process = process

    def open(self, pid: int) -> ProcessHandle:
        if pid != self.process.pid:
            raise psutil.NoSuchProcess(pid)
        return self.process

    def identities(self) -> dict[int, int]:
        return {self.process.pid: 1}

    def match_bytes(self, pid: int, field: MatchField) -> bytes:
        info = self.info(pid)
        return {
            "name": info.name.encode(),
            "cmdline": "\0".join(info.cmdline).encode(),
            "cgroup": b"0::/system.slice/fake.service\n",
        }[field]

    def info(self, pid: int) -> ProcessInfo:
        if pid != self.process.pid:
            raise psutil.NoSuchProcess(pid)
        return ProcessInfo(pid, "fake", ("fake", "--serve"), 1000.0)


class TestFakeSource:
    """Denials and matching rules, through the process source seam."""

    def test_denied_field_counted_once(self, sample: Callable[..., Harness]) -> None:
        """A denied USS is counted and logged once; the other metrics still arrive."""
        process = FakeProcess()
        with capture_logs() as logs:
            harness = sample(entry(pid=4242), source=FakeSource(process))
            harness.wait_scans(5)
        status = harness.entry()
        assert 1 == status["denied"]
        assert 1 == process.uss_reads
        denied = [log for log in logs if log["event"] == "sampler.access_denied"]
        assert [("target", "process.uss_mb")] == [
            (log["entry"], log["field"]) for log in denied
        ]
        assert [50.0] * len(harness.values("memory_usage_mb")) == harness.values(
            "memory_usage_mb"
        )
        assert 12.5 == harness.values("process.cpu_percent")[-1]
        assert [] == harness.values("process.uss_mb")
        assert status["samples"] >= 5

    @pytest.mark.parametrize(
        "match",
        [
            {"name": "fake"},
            {"cmdline": "^fake --serve$"},
            {"unit": "fake"},
            {"unit": "fake.service"},
        ],
    )
    def test_match_kinds(
        self, sample: Callable[..., Harness], match: dict[str, Any]
    ) -> None:
        """Name, cmdline and unit (with or without ``.service``) all match."""
        harness = sample(entry(**match), source=FakeSource(FakeProcess()))
        wait_until(lambda: [4242] == harness.entry().get("pids"))

    def test_unit_needs_whole_name(self, sample: Callable[..., Harness]) -> None:
        """``unit: fak`` does not match ``fake.service``."""
        harness = sample(entry(unit="fak.service"), source=FakeSource(FakeProcess()))
        harness.wait_scans(2)
        assert 0 == harness.entry()["matched"]


class TestSelfMonitor:
    """The daemon's own metrics and the rates computed from its counters."""

    def test_rates(self) -> None:
        """Ingest rate and mean evaluation time come from counter deltas."""
        sent: dict[str, float] = {}
        now = [100.0]
        lines = [0]
        evaluations = [(0, 0.0)]
        monitor = SelfMonitor(
            lambda name, tags, value: sent.__setitem__(name, value),
            ingest_lines=lambda: lines[0],
            evaluation=lambda: evaluations[0],
            clock=lambda: now[0],
        )
        monitor.sample()
        assert {"perfwarden.self.memory_mb", "perfwarden.self.cpu_percent"} == set(sent)
        now[0] += 2.0
        lines[0] = 1000
        evaluations[0] = (4, 0.010)
        monitor.sample()
        assert 500.0 == sent["perfwarden.self.ingest_lines_per_s"]
        assert 2.5 == pytest.approx(sent["perfwarden.self.evaluation_ms"])
        assert 5 < sent["perfwarden.self.memory_mb"] < 2000
        assert monitor.last_cost < 0.05
