"""Tests for perfwarden.sampling.match_memory: a name or cmdline entry's memory of
what matched, against a process table the test edits (the ProcessSource seam)."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import psutil
from hypothesis import given
from hypothesis import strategies as st

from perfwarden.sampling.match_memory import RECHECK_EVERY, MatchMemory
from perfwarden.sampling.process_source import (
    MatchField,
    ProcessHandle,
    ProcessInfo,
    ProcessSource,
)


@dataclass
class FakeProcess:
    """One row of the table: a name, a command line, an identity token."""

    name: str
    cmdline: tuple[str, ...]
    token: int


class FakeTable:
    """A process table the test starts, ends, reuses and renames processes in."""

    def __init__(self) -> None:
        self.rows: dict[int, FakeProcess] = {}
        self.infos = 0
        self.vanishing: set[int] = set()  # listed, but gone when read (once)
        self._tokens = itertools.count(1)

    def start(self, pid: int, name: str, *args: str) -> None:
        """A process on ``pid`` (another one, if ``pid`` was in use)."""
        self.rows[pid] = FakeProcess(name, (name, *args), next(self._tokens))

    def end(self, pid: int) -> None:
        """The process on ``pid`` exits."""
        del self.rows[pid]

    def rename(self, pid: int, name: str, *args: str) -> None:
        """The process on ``pid`` runs ``exec`` (same process, same token)."""
        self.rows[pid].name = name
        self.rows[pid].cmdline = (name, *args)

    def open(self, pid: int) -> ProcessHandle:
        raise psutil.NoSuchProcess(pid)  # the memory never opens a process

    def identities(self) -> dict[int, int]:
        return {pid: row.token for pid, row in self.rows.items()}

    def match_bytes(self, pid: int, field: MatchField) -> bytes:
        row = self._row(pid)
        return (row.name if field == "name" else "\0".join(row.cmdline)).encode()

    def info(self, pid: int) -> ProcessInfo:
        self.infos += 1
        row = self._row(pid)
        return ProcessInfo(pid, row.name, row.cmdline, float(row.token))

    def _row(self, pid: int) -> FakeProcess:
        if pid in self.vanishing or pid not in self.rows:
            self.vanishing.discard(pid)
            raise psutil.NoSuchProcess(pid)
        return self.rows[pid]


def named_app(source: ProcessSource, pid: int, _raw: bytes) -> bool:
    """The test's match: processes named ``app``."""
    return source.info(pid).name == "app"


def expected(table: FakeTable) -> list[int]:
    """What a full re-match of every process finds."""
    return sorted(pid for pid in table.rows if table.rows[pid].name == "app")


def memory(interval: float = 0.1) -> MatchMemory:
    """A memory of the ``app`` name match, for an entry scanned every ``interval``."""
    return MatchMemory("name", named_app, interval)


class TestMatchMemory:
    """Only new pids are judged; exits, reuses and renames are still seen."""

    def test_new_process_found_at_next_scan(self) -> None:
        """A process that starts after the first scan is matched at the next one."""
        table, remembered = FakeTable(), memory()
        table.start(10, "bash")
        assert [] == remembered.matching_pids(table)
        table.start(11, "app", "--serve")
        assert [11] == remembered.matching_pids(table)

    def test_several_matches_and_an_exit(self) -> None:
        """Every process of the name matches; one that exits is forgotten."""
        table, remembered = FakeTable(), memory()
        for pid in (5, 7, 9):
            table.start(pid, "app")
        assert [5, 7, 9] == remembered.matching_pids(table)
        table.end(7)
        assert [5, 9] == remembered.matching_pids(table)

    def test_quiet_scan_judges_nothing(self) -> None:
        """A scan with nothing new asks for no process's name, and reads the
        bytes of only its rolling share of them."""
        table, remembered = FakeTable(), memory(interval=0.1)
        for pid in range(1, 301):
            table.start(pid, "app" if pid % 100 == 0 else "worker")
        assert [100, 200, 300] == remembered.matching_pids(table)
        assert 300 == table.infos
        remembered.matching_pids(table)  # the second look at the new ones
        read = remembered.read
        assert [100, 200, 300] == remembered.matching_pids(table)
        assert 300 == table.infos
        assert math.ceil(300 * 0.1 / RECHECK_EVERY) == remembered.read - read

    def test_fork_then_exec_found_at_next_scan(self) -> None:
        """A process first listed with its parent's name (between fork and exec)
        is matched at the next scan, not only by the rolling re-read."""
        table, remembered = FakeTable(), memory()
        for pid in range(1, 1001):
            table.start(pid, "idle")
        remembered.matching_pids(table)
        table.start(2000, "supervisor")  # forked, not yet exec'd
        assert [] == remembered.matching_pids(table)
        table.rename(2000, "app")
        assert [2000] == remembered.matching_pids(table)

    def test_reused_pid_is_judged_afresh(self) -> None:
        """A pid given to another process is judged again at the next scan."""
        table, remembered = FakeTable(), memory()
        table.start(20, "app")
        table.start(21, "cron")
        assert [20] == remembered.matching_pids(table)
        table.start(20, "cron")  # 20 exited and another process took its pid
        table.start(21, "app")
        assert [21] == remembered.matching_pids(table)

    def test_rename_found_within_recheck(self) -> None:
        """A process that runs ``exec`` under its pid is matched within
        RECHECK_EVERY seconds of scans, and no longer matched as fast."""
        interval = 1.0
        table, remembered = FakeTable(), memory(interval)
        for pid in range(1, 51):
            table.start(pid, "sh")
        remembered.matching_pids(table)
        table.rename(33, "app", "--serve")
        scans = math.ceil(RECHECK_EVERY / interval)
        found = [remembered.matching_pids(table) for _ in range(scans)]
        assert [33] == found[-1]
        table.rename(33, "sh")
        lost = [remembered.matching_pids(table) for _ in range(scans)]
        assert [] == lost[-1]

    def test_gone_while_read_is_read_when_listed_again(self) -> None:
        """A pid that vanishes between the listing and the read is not matched,
        and is read afresh while the listing still shows it."""
        table, remembered = FakeTable(), memory()
        table.start(40, "app")
        table.vanishing.add(40)
        assert [] == remembered.matching_pids(table)
        assert [40] == remembered.matching_pids(table)


_PIDS = st.integers(1001, 1012)  # read after the idle ones: rolled last
_NAMES = st.sampled_from(["app", "sh", "cron"])
_STEP = st.one_of(
    st.tuples(st.just("start"), _PIDS, _NAMES),
    st.tuples(st.just("end"), _PIDS, _NAMES),
    st.tuples(st.just("rename"), _PIDS, _NAMES),
    st.tuples(st.just("scan"), _PIDS, _NAMES),
)


def busy_table() -> FakeTable:
    """A table with 200 processes the steps never touch, so the rolling re-read
    rarely happens to fall on the pids the steps change."""
    table = FakeTable()
    for pid in range(1, 201):
        table.start(pid, "idle")
    return table


def apply(table: FakeTable, step: tuple[str, int, str]) -> None:
    """One change of the table (renames and ends of free pids do nothing)."""
    kind, pid, name = step
    if kind == "start":
        table.start(pid, name)
    elif kind == "end" and pid in table.rows:
        table.end(pid)
    elif kind == "rename" and pid in table.rows:
        table.rename(pid, name)


class TestAgainstFullMatch:
    """The memory finds what matching every process at every scan finds."""

    @given(steps=st.lists(_STEP, max_size=60))
    def test_starts_ends_and_reuses_at_every_scan(
        self, steps: list[tuple[str, int, str]]
    ) -> None:
        """Without renames in place, every scan equals a full re-match."""
        table, remembered = busy_table(), memory(interval=0.1)
        for step in steps:
            if step[0] == "rename":
                continue
            apply(table, step)
            if step[0] == "scan":
                assert expected(table) == remembered.matching_pids(table)

    @given(steps=st.lists(_STEP, max_size=60))
    def test_every_scan_when_interval_is_long(
        self, steps: list[tuple[str, int, str]]
    ) -> None:
        """An entry scanned every RECHECK_EVERY or less often re-reads every
        process, so even renames are seen at the next scan."""
        table, remembered = busy_table(), memory(interval=RECHECK_EVERY)
        for step in steps:
            apply(table, step)
            if step[0] == "scan":
                assert expected(table) == remembered.matching_pids(table)

    @given(steps=st.lists(_STEP, max_size=60), interval=st.floats(0.05, 5.0))
    def test_renames_within_recheck(
        self, steps: list[tuple[str, int, str]], interval: float
    ) -> None:
        """With renames, RECHECK_EVERY seconds of quiet scans catch up."""
        table, remembered = busy_table(), memory(interval)
        for step in steps:
            apply(table, step)
            remembered.matching_pids(table)
        for _ in range(math.ceil(RECHECK_EVERY / interval)):
            found = remembered.matching_pids(table)
        assert expected(table) == found
