"""The socket directory: ownership, the single-instance lock, binding with modes.

The directory lock (``flock`` on ``.perfwarden.lock``, held for the daemon's life,
released by the kernel even after ``kill -9``, the file removed at a clean stop)
decides whether another daemon is alive; only with the lock held are leftover socket
files treated as stale and
replaced, so a second daemon can never steal a live one's sockets.
"""

from __future__ import annotations

import contextlib
import fcntl
import grp
import os
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

from perfwarden.config.load import MetricsAccess, SocketsConfig
from perfwarden.errors import AlreadyRunningError, PerfwardenError
from perfwarden.ownership import check_daemon_directory
from perfwarden.paths import (
    CONTROL_SOCKET,
    LOCK_FILE,
    METRICS_SOCKET,
    METRICS_STREAM_SOCKET,
)

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "BoundSockets",
    "DirectoryLock",
    "apply_modes",
    "bind_sockets",
    "prepare_directory",
]


@dataclass(frozen=True, slots=True)
class _Modes:
    directory: int
    metrics: int
    control: int


def _modes(access: MetricsAccess, group: str | None) -> _Modes:
    control = 0o660 if group else 0o600
    if access is MetricsAccess.WORLD:
        return _Modes(0o755, 0o666, control)
    if access is MetricsAccess.GROUP:
        return _Modes(0o750, 0o660, control)
    return _Modes(0o750 if group else 0o700, 0o600, control)


def _gid(group: str | None) -> int | None:
    if group is None:
        return None
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        msg = f"sockets.group: no such group {group!r}"
        raise PerfwardenError(msg) from None


def prepare_directory(path: Path, config: SocketsConfig) -> None:
    """Create the socket directory (or check an existing one) with the right mode."""
    modes = _modes(config.metrics_access, config.group)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    check_daemon_directory(path)
    os.chmod(path, modes.directory)
    gid = _gid(config.group)
    if gid is not None:
        os.chown(path, -1, gid)


def apply_modes(directory: Path, config: SocketsConfig) -> None:
    """Give the directory and its sockets the modes and group of ``config`` (a
    reload): the kernel checks them at each connect, so new clients follow at once,
    and connections already open stay. Raises ``PerfwardenError`` for an unknown
    group, before anything changed."""
    modes = _modes(config.metrics_access, config.group)
    gid = _gid(config.group)
    targets = (
        (directory, modes.directory),
        (directory / METRICS_SOCKET, modes.metrics),
        (directory / METRICS_STREAM_SOCKET, modes.metrics),
        (directory / CONTROL_SOCKET, modes.control),
    )
    for path, mode in targets:
        os.chown(path, -1, os.getgid() if gid is None else gid)
        os.chmod(path, mode)


class DirectoryLock:
    """An exclusive ``flock`` on the directory's lock file, holding our pid."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`AlreadyRunningError` naming the holder."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                directory = self.path.parent
                msg = (
                    f"another perfwarden daemon (pid {holder}) is already running "
                    f"on {directory}; stop it first or choose another --socket-dir"
                )
                raise AlreadyRunningError(msg) from None
            if self._still_linked(fd):
                break
            # A stopping daemon removed the file between our open and our lock:
            # the lock we hold is on a file no one else will open. Try afresh.
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def _still_linked(self, fd: int) -> bool:
        try:
            on_disk = os.stat(self.path)
        except FileNotFoundError:
            return False
        held = os.fstat(fd)
        return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino)

    def release(self) -> None:
        """Remove the lock file, then drop the lock.

        Unlinking while still holding the lock is what makes this safe: a daemon
        starting meanwhile either opened the old file (and, once it gets the
        lock, sees it unlinked and retries) or creates a new one.
        """
        if self._fd is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            os.close(self._fd)
            self._fd = None


@dataclass(slots=True)
class BoundSockets:
    """The three listening sockets of a daemon."""

    metrics: socket.socket
    stream: socket.socket
    control: socket.socket
    paths: tuple[Path, ...]

    def close(self, *, unlink: bool = True) -> None:
        """Close the sockets and remove their files."""
        for sock in (self.metrics, self.stream, self.control):
            sock.close()
        if unlink:
            for path in self.paths:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()


def _bind(
    path: Path, kind: socket.SocketKind, mode: int, gid: int | None
) -> socket.socket:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # stale: we hold the directory lock, so nobody else owns it
    sock = socket.socket(socket.AF_UNIX, kind | socket.SOCK_CLOEXEC)
    try:
        sock.bind(str(path))
        os.chmod(path, mode)
        if gid is not None:
            os.chown(path, -1, gid)
        if kind == socket.SOCK_STREAM:
            sock.listen(1024)
    except OSError:
        sock.close()
        raise
    return sock


def bind_sockets(directory: Path, config: SocketsConfig) -> BoundSockets:
    """Bind ``metrics.sock``, ``metrics.stream.sock`` and ``control.sock``."""
    modes = _modes(config.metrics_access, config.group)
    gid = _gid(config.group)
    paths = (
        directory / METRICS_SOCKET,
        directory / METRICS_STREAM_SOCKET,
        directory / CONTROL_SOCKET,
    )
    metrics = _bind(paths[0], socket.SOCK_DGRAM, modes.metrics, gid)
    stream = _bind(paths[1], socket.SOCK_STREAM, modes.metrics, gid)
    control = _bind(paths[2], socket.SOCK_STREAM, modes.control, gid)
    return BoundSockets(metrics, stream, control, paths)
