"""Process sampling: every ``processes:`` entry, at its interval, into the sink.

:class:`ProcessSampler` schedules each ``processes:`` entry every ``interval``
seconds, re-matches it (:func:`~perfwarden.sampling.process_match.match_processes`:
``pid``,
a re-read ``pidfile``, process ``name``, a ``cmdline`` regular expression or a
systemd ``unit``; with ``children: true`` their descendants too) and reads every
matched process. One entry's scan runs in a worker thread (``asyncio.to_thread``)
and only *returns* its samples and log events; the loop thread hands them to the
sink and the logger, so the sink (the metric store) is only ever touched by the loop
thread. Processes come from a :class:`~perfwarden.sampling.process_source.ProcessSource`
(psutil unless a test passes a fake; :mod:`.process_source`, re-exported here).

Metrics, per process, tagged ``process:<entry name>`` and ``pid:<pid>``::

    memory_usage_mb            resident set size, MiB
    process.uss_mb             unique set size, MiB (where readable; every USS_EVERY s)
    process.cpu_percent        since the previous interval; 100 = one core busy
    process.threads            threads
    process.open_fds           open file descriptors (where readable)
    process.read_bytes_per_s   io_counters deltas (where readable)
    process.write_bytes_per_s

``cpu_percent`` and the I/O rates need a previous reading, so they start with a
process's second sample; the readings are kept per ``(pid, create_time)``, so a pid
reused by another process starts afresh. A process that exits is dropped; one that
restarts, or starts after the daemon, is found again at the next match. A ``name``,
``cmdline`` or ``unit`` entry reads only the processes new since its previous scan
(and a rolling share of the others): a process that changes its name, command line
or cgroup under its pid (``exec``, ``setproctitle``) is judged again within
:data:`~perfwarden.sampling.match_memory.RECHECK_EVERY` (10 s).
A field the OS refuses (``AccessDenied``: USS, I/O and fds of another user's
process) is not read again for that process, counted in ``denied`` and logged once
per (entry, field) as ``sampler.access_denied``; the readable fields are still sent.
An entry that matches nothing logs ``sampler.no_match`` once, and
``sampler.matched`` when it matches again.


The daemon's own process is sampled by
:class:`~perfwarden.sampling.self_monitor.SelfMonitor` into the same kind of
:data:`~perfwarden.sampling.sink.Sink`.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import psutil

from perfwarden.logs.setup import RateLimiter, get_logger
from perfwarden.sampling.process_match import (
    NoMatchError,
    ProcessKey,
    match_processes,
    remember_matches,
)
from perfwarden.sampling.process_source import (
    ProcessHandle,
    ProcessInfo,
    ProcessSource,
    PsutilSource,
)
from perfwarden.sampling.sink import Sink

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from perfwarden.config.model import Config, ProcessConfig
    from perfwarden.sampling.match_memory import MatchMemory

__all__ = [
    "USS_EVERY",
    "ProcessHandle",
    "ProcessInfo",
    "ProcessSampler",
    "ProcessSource",
    "PsutilSource",
    "Sink",
]

_log = get_logger("perfwarden.sampler")

_MIB: Final = float(2**20)
#: Seconds between two USS readings of a process: reading USS walks the page tables
#: (``/proc/PID/smaps_rollup``), about 1 ms per 100 MiB resident, so it is rarer.
USS_EVERY: Final = 10.0
#: Longest sleep of the scheduler, so config changes are picked up promptly.
_MAX_IDLE: Final = 0.5

_Sample = tuple[str, dict[str, str], float]
_Event = tuple[str, str, dict[str, Any]]  # level, event, fields


@dataclass(slots=True)
class _Tracked:
    """A process seen at a previous interval: its handle and previous readings."""

    handle: ProcessHandle
    io: tuple[int, int] | None = None
    io_at: float = 0.0
    seen: bool = False  # sampled before: cpu_percent is primed
    uss_at: float = float("-inf")
    denied: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _EntryState:
    """One ``processes:`` entry: schedule, tracked processes, counters."""

    entry: ProcessConfig
    memory: MatchMemory | None  # name, cmdline and unit: what matched before
    next_due: float = 0.0
    tracked: dict[ProcessKey, _Tracked] = field(default_factory=dict)
    matched_pids: list[int] = field(default_factory=list)
    unmatched: bool | None = None  # None until the first scan
    denied_logged: set[str] = field(default_factory=set)
    error_log: RateLimiter = field(default_factory=lambda: RateLimiter(60.0))
    samples: int = 0
    errors: int = 0
    denied: int = 0
    scans: int = 0
    scan_seconds: float = 0.0
    sampled_processes: int = 0
    last_scan_seconds: float = 0.0

    def status(self) -> dict[str, Any]:
        per_process = (
            self.scan_seconds / self.sampled_processes if self.sampled_processes else 0
        )
        return {
            "interval": self.entry.interval,
            "match": dict(self.entry.match),
            "matched": len(self.matched_pids),
            "pids": list(self.matched_pids),
            "samples": self.samples,
            "errors": self.errors,
            "denied": self.denied,
            "scans": self.scans,
            "last_scan_ms": round(self.last_scan_seconds * 1000.0, 3),
            "cost_per_process_ms": round(per_process * 1000.0, 4),
        }


class ProcessSampler:
    """Samples every ``processes:`` entry of the current config at its interval."""

    def __init__(
        self,
        config: Callable[[], Config],
        sink: Sink,
        source: ProcessSource | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        uss_every: float = USS_EVERY,
    ) -> None:
        self._config = config
        self._uss_every = uss_every
        self._sink = sink
        self._source: ProcessSource = source if source is not None else PsutilSource()
        self._clock = clock
        self._states: dict[str, _EntryState] = {}
        self._own_pid = os.getpid()

    def status(self) -> dict[str, Any]:
        """Per entry: matched pids, ``samples``, ``errors``, ``denied``, scan cost."""
        return {name: state.status() for name, state in self._states.items()}

    async def run(self) -> None:
        """Sample forever (cancel to stop); follows config reloads."""
        while True:
            self._reconcile(self._config().processes)
            now = self._clock()
            due = [s for s in self._states.values() if s.next_due <= now]
            if due:
                results = await asyncio.gather(
                    *(asyncio.to_thread(self._scan, state) for state in due)
                )
                for state, (samples, events) in zip(due, results, strict=True):
                    self._emit(state, samples, events)
                    interval = state.entry.interval
                    state.next_due = max(state.next_due + interval, now)
            # No entry configured: idle (checking for a reload now and then), never
            # spin with a zero sleep.
            wake = min(
                (s.next_due for s in self._states.values()), default=now + _MAX_IDLE
            )
            await asyncio.sleep(min(max(wake - self._clock(), 0.0), _MAX_IDLE))

    # -- loop thread -------------------------------------------------------------

    def _reconcile(self, entries: Iterable[ProcessConfig]) -> None:
        wanted = {entry.name: entry for entry in entries}
        for name in list(self._states):
            if name not in wanted:
                del self._states[name]
        for name, entry in wanted.items():
            state = self._states.get(name)
            if state is not None and state.entry == entry:
                continue
            cmdline = entry.match.get("cmdline")
            try:
                pattern = re.compile(str(cmdline)) if cmdline is not None else None
            except re.error as exc:  # the config validator should have refused it
                _log.error("sampler.bad_pattern", entry=name, error=str(exc))
                continue
            memory = remember_matches(entry, pattern, self._own_pid)
            self._states[name] = _EntryState(entry, memory, next_due=self._clock())

    def _emit(
        self, state: _EntryState, samples: list[_Sample], events: list[_Event]
    ) -> None:
        for level, event, fields in events:
            getattr(_log, level)(event, entry=state.entry.name, **fields)
        for name, tags, value in samples:
            try:
                self._sink(name, tags, value)
            except Exception as exc:  # noqa: BLE001 - a sink failure must not stop sampling
                state.errors += 1
                if state.error_log.allow():
                    _log.error("sampler.error", entry=state.entry.name, error=repr(exc))

    # -- worker thread -------------------------------------------------------------

    def _scan(self, state: _EntryState) -> tuple[list[_Sample], list[_Event]]:
        """Match and sample one entry (runs in a worker thread; never raises)."""
        started = time.perf_counter()
        samples: list[_Sample] = []
        events: list[_Event] = []
        known = {key: tracked.handle for key, tracked in state.tracked.items()}
        try:
            targets = match_processes(
                state.entry, state.memory, self._source, self._own_pid, known
            )
        except NoMatchError as exc:
            targets, reason = {}, str(exc)
        except Exception as exc:  # noqa: BLE001 - a failed scan is counted, not fatal
            targets, reason = {}, f"match failed: {exc!r}"
            state.errors += 1
            if state.error_log.allow():
                events.append(("error", "sampler.error", {"error": repr(exc)}))
        else:
            reason = "no process matches"
        previous = state.tracked
        state.tracked = {}
        for key, handle in targets.items():
            tracked = previous.get(key) or _Tracked(handle)
            if self._sample(state, key, tracked, samples, events):
                state.tracked[key] = tracked
        state.matched_pids = sorted(key[0] for key in state.tracked)
        if not state.tracked and state.unmatched is not True:
            state.unmatched = True
            match = dict(state.entry.match)
            events.append(
                ("warning", "sampler.no_match", {"match": match, "reason": reason})
            )
        elif state.tracked and state.unmatched is not False:
            state.unmatched = False
            events.append(("info", "sampler.matched", {"pids": state.matched_pids}))
        elapsed = time.perf_counter() - started
        state.scans += 1
        state.last_scan_seconds = elapsed
        if state.tracked:
            state.scan_seconds += elapsed
            state.sampled_processes += len(state.tracked)
        return samples, events

    def _sample(
        self,
        state: _EntryState,
        key: ProcessKey,
        tracked: _Tracked,
        samples: list[_Sample],
        events: list[_Event],
    ) -> bool:
        """Read one process into ``samples``; False when it is gone."""
        handle = tracked.handle
        tags = {"process": state.entry.name, "pid": str(key[0])}

        def read(name: str, reader: Callable[[], Any]) -> Any:
            if name in tracked.denied:
                return None
            try:
                return reader()
            except psutil.AccessDenied:
                tracked.denied.add(name)
                state.denied += 1
                if name not in state.denied_logged:
                    state.denied_logged.add(name)
                    fields = {"field": name, "pid": key[0]}
                    events.append(("warning", "sampler.access_denied", fields))
                return None

        try:
            rss = read("memory_usage_mb", handle.rss_bytes)
            if rss is not None:
                samples.append(("memory_usage_mb", tags, rss / _MIB))
            now = self._clock()
            if now - tracked.uss_at >= self._uss_every:
                uss = read("process.uss_mb", handle.uss_bytes)
                if uss is not None:
                    samples.append(("process.uss_mb", tags, uss / _MIB))
                    tracked.uss_at = now
            cpu = read("process.cpu_percent", handle.cpu_percent)
            if cpu is not None and tracked.seen:
                samples.append(("process.cpu_percent", tags, float(cpu)))
            threads = read("process.threads", handle.num_threads)
            if threads is not None:
                samples.append(("process.threads", tags, float(threads)))
            fds = read("process.open_fds", handle.num_fds)
            if fds is not None:
                samples.append(("process.open_fds", tags, float(fds)))
            io = read("process.io", handle.io_bytes)
            if io is not None:
                if tracked.io is not None and now > tracked.io_at:
                    span = now - tracked.io_at
                    read_rate = max(io[0] - tracked.io[0], 0) / span
                    write_rate = max(io[1] - tracked.io[1], 0) / span
                    samples.append(("process.read_bytes_per_s", tags, read_rate))
                    samples.append(("process.write_bytes_per_s", tags, write_rate))
                tracked.io = io
            tracked.io_at = now
            tracked.seen = True
        except psutil.NoSuchProcess:  # exited (or a zombie) while being read
            return False
        except Exception as exc:  # noqa: BLE001 - one bad read must not end the scan
            state.errors += 1
            if state.error_log.allow():
                events.append(
                    ("error", "sampler.error", {"pid": key[0], "error": repr(exc)})
                )
            return False
        state.samples += 1
        return True
