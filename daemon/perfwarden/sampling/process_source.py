"""Where the process sampler's processes come from: the OS seam and its psutil side.

:class:`ProcessSource` lists processes, reads what matching by name, command line
or systemd unit needs of them and opens a :class:`ProcessHandle` on a pid; a handle
reads one process's fields. :class:`PsutilSource` is the real implementation over
psutil and ``/proc``; tests pass fakes with the same shape. Nothing here keeps
state between calls: what was read before (for rates, or to read only new
processes) is the sampler's business.

The listing gives each pid an identity token, the inode number of ``/proc/PID``
(the ``d_ino`` of the directory read, so no call per pid): the kernel makes that
inode for one process's ``struct pid`` and drops it once the process is reaped, so
a pid another process takes comes back with another inode. The same token means
the same process; another token may also be the same process whose entry the
kernel evicted under memory pressure, which costs a re-read, not a wrong answer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final, Literal, Protocol

import psutil

__all__ = [
    "MatchField",
    "ProcessHandle",
    "ProcessInfo",
    "ProcessSource",
    "PsutilSource",
]

MatchField = Literal["name", "cmdline", "cgroup"]
"""What a match reads of a process: its name, command line or cgroup."""

#: The kernel keeps 15 bytes of a name (``TASK_COMM_LEN`` - 1); psutil completes a
#: name that long from the command line, so both are part of what a name match reads.
_NAME_KEPT: Final = 15


class ProcessHandle(Protocol):
    """One process as the sampler reads it.

    Every method may raise ``psutil.NoSuchProcess`` (gone; ``ZombieProcess`` too) or
    ``psutil.AccessDenied`` (the field is not readable for us).
    """

    @property
    def pid(self) -> int:
        """The process id."""
        ...

    def create_time(self) -> float:
        """Start time (with ``pid``, the process's identity)."""
        ...

    def rss_bytes(self) -> int:
        """Resident set size."""
        ...

    def uss_bytes(self) -> int:
        """Unique set size (memory freed if the process exited)."""
        ...

    def cpu_percent(self) -> float:
        """CPU use since the previous call on this handle (the first call primes)."""
        ...

    def num_threads(self) -> int:
        """Number of threads."""
        ...

    def num_fds(self) -> int:
        """Number of open file descriptors."""
        ...

    def io_bytes(self) -> tuple[int, int]:
        """Cumulative (read, written) bytes of storage I/O."""
        ...

    def children(self) -> list[ProcessHandle]:
        """Every descendant, recursively."""
        ...


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """What matching by name or command line needs to know of a process."""

    pid: int
    name: str
    cmdline: tuple[str, ...]
    create_time: float


class ProcessSource(Protocol):
    """Where processes come from (psutil by default; tests pass fakes)."""

    def open(self, pid: int) -> ProcessHandle:
        """A handle on ``pid``; raises ``psutil.NoSuchProcess`` when there is none."""
        ...

    def identities(self) -> dict[int, int]:
        """Every visible pid with a token that differs once the pid is another
        process's (the same token: the same process)."""
        ...

    def match_bytes(self, pid: int, field: MatchField) -> bytes:
        """The raw bytes ``field`` is made of, to see whether it changed (``b""``
        when unreadable); raises ``psutil.NoSuchProcess`` when the pid is gone."""
        ...

    def info(self, pid: int) -> ProcessInfo:
        """``pid``'s name, command line and start time, as psutil reads them (an
        unreadable name or command line is empty); raises ``psutil.NoSuchProcess``."""
        ...


class _PsutilProcess:
    """:class:`ProcessHandle` over a ``psutil.Process``."""

    __slots__ = ("_process",)

    def __init__(self, process: psutil.Process) -> None:
        self._process = process

    @property
    def pid(self) -> int:
        return self._process.pid

    def create_time(self) -> float:
        return self._process.create_time()

    def rss_bytes(self) -> int:
        return int(self._process.memory_info().rss)

    def uss_bytes(self) -> int:
        return int(self._process.memory_full_info().uss)

    def cpu_percent(self) -> float:
        return float(self._process.cpu_percent(None))

    def num_threads(self) -> int:
        return self._process.num_threads()

    def num_fds(self) -> int:
        return self._process.num_fds()

    def io_bytes(self) -> tuple[int, int]:
        io = self._process.io_counters()
        return int(io.read_bytes), int(io.write_bytes)

    def children(self) -> list[ProcessHandle]:
        return [_PsutilProcess(p) for p in self._process.children(recursive=True)]


class PsutilSource:
    """The real processes, through psutil and ``/proc``."""

    def open(self, pid: int) -> ProcessHandle:
        """A handle on ``pid``."""
        return _PsutilProcess(psutil.Process(pid))

    def identities(self) -> dict[int, int]:
        """Every pid with the inode number of its ``/proc/PID`` (module doc)."""
        with os.scandir("/proc") as entries:
            return {int(e.name): e.inode() for e in entries if e.name.isdigit()}

    def match_bytes(self, pid: int, field: MatchField) -> bytes:
        """``/proc/PID/cmdline`` or ``cgroup``; for a name ``comm`` (and
        ``cmdline`` when the name is as long as the kernel keeps: psutil then
        completes it from there)."""
        if field != "name":
            return _read_proc(pid, field)
        name = _read_proc(pid, "comm")
        if len(name.rstrip(b"\n")) >= _NAME_KEPT:
            return name + b"\0" + _read_proc(pid, "cmdline")
        return name

    def info(self, pid: int) -> ProcessInfo:
        """Name, command line and start time through psutil (as ``process_iter``
        reads them: an unreadable name or command line is empty)."""
        process = psutil.Process(pid)
        with process.oneshot():
            try:
                name = process.name()
            except (psutil.AccessDenied, psutil.ZombieProcess):
                name = ""
            try:
                cmdline = tuple(process.cmdline())
            except (psutil.AccessDenied, psutil.ZombieProcess):
                cmdline = ()
            return ProcessInfo(pid, name, cmdline, process.create_time())


def _read_proc(pid: int, name: str) -> bytes:
    """``/proc/PID/NAME``'s bytes, ``b""`` when refused; raises
    ``psutil.NoSuchProcess`` when the process is gone."""
    try:
        with open(f"/proc/{pid}/{name}", "rb") as file:
            return file.read()
    except (FileNotFoundError, ProcessLookupError):
        raise psutil.NoSuchProcess(pid) from None
    except PermissionError:
        return b""
