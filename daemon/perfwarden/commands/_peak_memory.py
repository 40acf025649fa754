"""Wait for a child command and measure its own peak memory, not its launcher's.

``ru_maxrss`` alone is not the command's figure. Linux keeps a process's peak resident
set size across ``execve``: the high-water mark of the memory it had *before* the
exec is folded into its ``ru_maxrss``. A child started by ``fork`` had a copy of
this Python process's pages, and one started by ``vfork`` / ``posix_spawn`` (what
``subprocess`` uses) ran on this process's own memory until the exec, so either way
every command reports at least perfwarden's own peak (about 18 MB), even ``true``.
The exec'd image's own high-water mark is ``VmHWM`` in ``/proc/PID/status``, which
starts afresh at the exec but is gone once the process has exited (a zombie has no
memory), so it can only be sampled while the command runs.

:func:`wait_measured` uses both:

- ``floor``: this process's ``VmHWM`` right after the spawn, an upper bound of what
  the exec carried over into the child's ``ru_maxrss``;
- while the command runs, its ``VmHWM`` is sampled until a sample passes
  ``floor``: first 1 ms after the spawn, then at intervals doubling up to 20 ms
  (a pidfd wakes the wait the moment the command exits, so the wall time is not
  held up);
- after the exit, ``os.wait4``: a ``ru_maxrss`` above ``floor`` is exact (the
  command's own peak, or that of a descendant it waited for); otherwise the command
  stayed under ``floor`` and the largest sample is the figure, a lower bound that
  misses what the command (or a descendant) added after the last sample;
- a command that ended before the first sample (within about a millisecond) has no
  figure (None): the kernel keeps nothing of it that is not mixed with ``floor``.

Linux only (``/proc``, ``pidfd_open``); without a pidfd the wait is a plain
``wait4`` and the figure is ``ru_maxrss`` as the kernel gives it, floor included.
"""

from __future__ import annotations

import os
import select
from typing import Final, NamedTuple

__all__ = ["Measured", "vm_hwm_kib", "wait_measured"]

_FIRST_DELAY_MS: Final = 1
_MAX_DELAY_MS: Final = 20


class Measured(NamedTuple):
    """How a child ended and how much memory it held at its peak."""

    #: The wait status, as ``os.wait4`` returns it.
    status: int
    #: The command's peak resident set size in KiB (None: it exited unseen).
    peak_kib: int | None
    #: True when ``peak_kib`` came from the kernel's accounting at exit; False when
    #: the command stayed under the launcher's footprint and the figure is sampled.
    exact: bool


def vm_hwm_kib(pid: int | str = "self") -> int | None:
    """``VmHWM`` of a process in KiB (None once it has exited or is unreadable)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _sample_until_exit(pidfd: int, pid: int, floor: int) -> int | None:
    """Largest ``VmHWM`` of ``pid`` seen until it exits (None: never seen alive)."""
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    peak: int | None = None
    delay = _FIRST_DELAY_MS
    while not poller.poll(delay):
        sample = vm_hwm_kib(pid)
        if sample is not None:
            peak = max(peak or 0, sample)
        if peak is not None and peak > floor:
            poller.poll()  # ru_maxrss will be exact: just wait for the exit
            break
        delay = min(delay * 2, _MAX_DELAY_MS)
    return peak


def wait_measured(pid: int) -> Measured:
    """Wait for the child ``pid`` (already exec'd) and measure its peak memory.

    Call it right after the spawn returned: the launcher's own high-water mark at
    that moment bounds what the exec carried over.
    """
    floor = vm_hwm_kib() or 0
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:  # no pidfd (Linux < 5.3, or a seccomp filter): no sampling
        _, status, usage = os.wait4(pid, 0)
        return Measured(status, usage.ru_maxrss, usage.ru_maxrss > floor)
    try:
        sampled = _sample_until_exit(pidfd, pid, floor)
    finally:
        os.close(pidfd)
    _, status, usage = os.wait4(pid, 0)
    if usage.ru_maxrss > floor:
        return Measured(status, usage.ru_maxrss, True)
    return Measured(status, sampled, False)
