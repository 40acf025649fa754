"""``perfwarden time [--metric NAME] [--tag K:V]... -- CMD ARGS...``: time a command.

Runs ``CMD`` (inheriting stdin, stdout and stderr), forwards SIGINT, SIGTERM, SIGHUP,
SIGQUIT, SIGUSR1 and SIGUSR2 to it, waits for it and sends two DogStatsD lines to
``metrics.sock`` through :class:`perfwarden.client.Client`::

    <metric>:<wall ms>|ms|#command:<basename>[,<tags>]
    <metric>.peak_memory_mb:<MiB>|g|#command:<basename>[,<tags>]

``<metric>`` defaults to ``command_execution_time``. The peak memory is the command's
own largest resident set size, or that of a descendant it waited for, without the
footprint of the Python process that started it. It is exact for a command that
grows past perfwarden's own peak (about 18 MB); below that it is sampled from
``/proc`` while the command runs, a lower bound, and a command that ends within
about a millisecond sends no peak memory line (:mod:`._peak_memory` says why).
The command runs whether or not a daemon listens; when none does, the lines are
dropped and a warning on stderr says so (the exit status stays the command's, so a
script's logic does not depend on monitoring being up).

Exit status: the command's own; 128+N when signal N killed it (as a shell reports
it); 127 when the command is not found, 126 when it cannot be executed; 2 when no
command is given.

SIGINT and SIGQUIT typed at a terminal reach the whole foreground process group,
the command included, so they are not forwarded a second time while perfwarden runs
in the terminal's foreground group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Final

from perfwarden.client import Client
from perfwarden.commands._common import socket_dir
from perfwarden.commands._peak_memory import wait_measured
from perfwarden.paths import METRICS_SOCKET

if TYPE_CHECKING:
    import argparse
    from types import FrameType

__all__ = ["DEFAULT_METRIC", "FORWARDED_SIGNALS", "run"]

DEFAULT_METRIC: Final = "command_execution_time"
FORWARDED_SIGNALS: Final = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)
_TERMINAL_SIGNALS: Final = frozenset({signal.SIGINT, signal.SIGQUIT})
_FORBIDDEN: Final = "|,#\n"


def _error(message: str) -> None:
    print(f"perfwarden time: {message}", file=sys.stderr)


def _in_terminal_foreground() -> bool:
    """True when a terminal's signals reach us and the command alike."""
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError, AttributeError):
        return False


class _Forwarder:
    """Signal handlers that pass signals on to the child (queued until it exists)."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self.pending: list[int] = []
        self._previous: dict[int, object] = {}
        self._terminal = _in_terminal_foreground()

    def __enter__(self) -> _Forwarder:
        for signum in FORWARDED_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._terminal and signum in _TERMINAL_SIGNALS:
            return  # the terminal sent it to the child too
        if self.pid is None:
            self.pending.append(signum)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def started(self, pid: int) -> None:
        self.pid = pid
        for signum in self.pending:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
        self.pending.clear()


def _clean(text: str) -> str:
    return "".join("_" if ch in _FORBIDDEN else ch for ch in text) or "_"


def run(args: argparse.Namespace) -> int:
    """Run the command, send its wall time and peak memory, return its status."""
    command = list(args.cmd)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        print(args.usage, end="", file=sys.stderr)
        _error("a command to run is required (perfwarden time -- CMD ARGS...)")
        return 2
    for part in (args.metric, *args.tag):
        if any(ch in part for ch in _FORBIDDEN):
            _error(f"{part!r} may not contain '|', '#', ',' or a newline")
            return 2
    with _Forwarder() as forwarder:
        started = time.perf_counter()
        try:
            child = subprocess.Popen(command)
        except FileNotFoundError:
            _error(f"{command[0]}: command not found")
            return 127
        except (PermissionError, OSError) as exc:
            _error(f"{command[0]}: {exc.strerror or exc}")
            return 126
        forwarder.started(child.pid)
        measured = wait_measured(child.pid)
        wall_ms = (time.perf_counter() - started) * 1000.0
        child.returncode = os.waitstatus_to_exitcode(measured.status)
    tags = [f"command:{_clean(os.path.basename(command[0]))}", *args.tag]
    client = Client(args.socket_dir)
    client.timing(args.metric, round(wall_ms, 3), tags)
    if measured.peak_kib is not None:
        peak_mb = measured.peak_kib / 1024.0
        client.gauge(f"{args.metric}.peak_memory_mb", round(peak_mb, 3), tags)
    client.flush()
    if client.dropped:
        path = socket_dir(args.socket_dir) / METRICS_SOCKET
        _error(
            f"no perfwarden daemon listens on {path}: the measurement was not sent "
            f"({client.dropped} line(s) dropped)"
        )
    code = child.returncode
    return 128 - code if code < 0 else code
