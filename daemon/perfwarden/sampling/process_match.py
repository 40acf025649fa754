"""Which processes a ``processes:`` entry means right now.

:func:`match_processes` resolves an entry's ``match`` to process handles keyed by
``(pid, create_time)``: ``pid``, a re-read ``pidfile``, a process ``name``, a
``cmdline`` regular expression searched in ``' '.join(cmdline)``, or a systemd
``unit`` found in ``/proc/PID/cgroup``; with ``children: true`` each match's
descendants too. The daemon itself is never matched by name, command line or unit.
A ``name``, ``cmdline`` or ``unit`` entry remembers its matches between scans
(:func:`remember_matches`, :mod:`.match_memory`), so a scan reads only processes
new since the last one and a rolling share of the others. Every matched pid is
opened afresh at each scan and keyed by its start time, so a pid reused by another
process is never read as the old one. A process already known under the same key
keeps its handle (so ``cpu_percent`` stays primed). An entry whose target cannot
even be looked up (an unreadable or empty pidfile) raises :class:`NoMatchError`
with the reason. Runs in the sampler's worker thread; touches nothing but the
process source and the entry's memory.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from perfwarden.sampling.match_memory import MatchMemory

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from perfwarden.config.model import ProcessConfig
    from perfwarden.sampling.process_source import ProcessHandle, ProcessSource

__all__ = ["NoMatchError", "ProcessKey", "match_processes", "remember_matches"]

ProcessKey = tuple[int, float]
"""``(pid, create_time)``: a process's identity (a reused pid is another process)."""


class NoMatchError(Exception):
    """The entry's target cannot be resolved (with the reason)."""


def remember_matches(
    entry: ProcessConfig, pattern: re.Pattern[str] | None, own_pid: int
) -> MatchMemory | None:
    """The memory a ``name``, ``cmdline`` or ``unit`` entry matches through (None
    for ``pid`` and ``pidfile``); ``pattern`` is the entry's compiled ``cmdline``
    expression."""
    match = entry.match
    if "name" in match:
        name = str(match["name"])

        def has_name(source: ProcessSource, pid: int, _raw: bytes) -> bool:
            return pid != own_pid and source.info(pid).name == name

        return MatchMemory("name", has_name, entry.interval)
    if pattern is not None:
        search = pattern.search

        def has_cmdline(source: ProcessSource, pid: int, _raw: bytes) -> bool:
            if pid == own_pid:
                return False
            cmdline = source.info(pid).cmdline
            return bool(cmdline) and search(" ".join(cmdline)) is not None

        return MatchMemory("cmdline", has_cmdline, entry.interval)
    if "unit" in match:
        unit = str(match["unit"])
        if "." not in unit:
            unit += ".service"
        in_unit = re.compile(rf"/{re.escape(unit)}(/|$)", re.MULTILINE).search

        def in_cgroup(_source: ProcessSource, pid: int, raw: bytes) -> bool:
            text = raw.decode(errors="replace")
            return pid != own_pid and in_unit(text) is not None

        return MatchMemory("cgroup", in_cgroup, entry.interval)
    return None


def match_processes(
    entry: ProcessConfig,
    memory: MatchMemory | None,
    source: ProcessSource,
    own_pid: int,
    known: Mapping[ProcessKey, ProcessHandle],
) -> dict[ProcessKey, ProcessHandle]:
    """The entry's processes now, keyed by (pid, create_time).

    ``memory`` is the entry's :func:`remember_matches` (None for ``pid`` and
    ``pidfile``); ``known`` holds the handles of the processes matched before.
    """
    match = entry.match
    roots: list[ProcessHandle] = []
    if memory is not None:
        roots = _open_all(source, memory.matching_pids(source))
    elif "pid" in match:
        roots = _open_all(source, [int(match["pid"])])
    elif "pidfile" in match:
        path = Path(str(match["pidfile"]))
        try:
            text = path.read_text().strip()
        except OSError as exc:
            raise NoMatchError(f"pidfile {path}: {exc.strerror}") from None
        if not text.isdigit():
            raise NoMatchError(f"pidfile {path}: no pid in {text[:40]!r}")
        roots = _open_all(source, [int(text)])
    targets: dict[ProcessKey, ProcessHandle] = {}
    for handle in roots:
        _add(known, targets, handle)
        if entry.children:
            try:
                descendants = handle.children()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            for child in descendants:
                _add(known, targets, child)
    return targets


def _add(
    known: Mapping[ProcessKey, ProcessHandle],
    targets: dict[ProcessKey, ProcessHandle],
    handle: ProcessHandle,
) -> None:
    try:
        key = (handle.pid, handle.create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return
    targets[key] = known.get(key, handle)


def _open_all(source: ProcessSource, pids: Iterable[int]) -> list[ProcessHandle]:
    handles = []
    for pid in pids:
        try:
            handles.append(source.open(pid))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return handles
