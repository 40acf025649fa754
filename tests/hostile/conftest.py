"""Fixtures for hostile-input tests: real daemons, and a way to act as another user."""

from __future__ import annotations

import contextlib
import os
import pickle
import socket
from typing import TYPE_CHECKING, Any

import pytest

from perfwarden.testing import DaemonProcess

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

#: The uid (and gid) tests act as when they need "another local user".
NOBODY = 65534


@pytest.fixture(name="make_daemon")
def _make_daemon() -> Iterator[Callable[..., DaemonProcess]]:
    """A factory of daemon processes, all closed at the end of the test."""
    daemons: list[DaemonProcess] = []

    def make(config_text: str | None = "version: 1\n", **kwargs: Any) -> DaemonProcess:
        daemon = DaemonProcess(config_text, **kwargs)
        daemons.append(daemon)
        return daemon

    yield make
    for daemon in daemons:
        daemon.close()


def as_nobody(call: Callable[[], Any]) -> Any:
    """Run ``call`` in a forked child as uid/gid nobody; return its pickled result.

    An exception comes back as ``("error", type name, message)``.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(read_fd)
            os.setgroups([NOBODY])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            try:
                outcome: Any = call()
            except Exception as exc:  # noqa: BLE001 - reported to the parent
                outcome = ("error", type(exc).__name__, str(exc))
            os.write(write_fd, pickle.dumps(outcome))
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    return pickle.loads(data)  # noqa: S301 - our own child's answer


@contextlib.contextmanager
def held_as_nobody(path: Path, count: int, payload: bytes = b"") -> Iterator[int]:
    """Open ``count`` stream connections to ``path`` as nobody, each sending
    ``payload``, and hold them open until the block ends; yields how many connected."""
    read_fd, write_fd = os.pipe()
    release_read, release_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(read_fd)
            os.close(release_write)
            os.setgroups([NOBODY])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            held = []
            for _ in range(count):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.connect(str(path))
                    if payload:
                        sock.sendall(payload)
                except OSError:
                    sock.close()
                    continue
                held.append(sock)
            os.write(write_fd, str(len(held)).encode())
            os.close(write_fd)
            os.read(release_read, 1)
        finally:
            os._exit(0)
    os.close(write_fd)
    os.close(release_read)
    try:
        with os.fdopen(read_fd, "rb") as pipe:
            yield int(pipe.read() or b"0")
    finally:
        os.close(release_write)
        os.waitpid(pid, 0)


@pytest.fixture(name="daemon")
def _daemon(make_daemon: Callable[..., DaemonProcess]) -> DaemonProcess:
    """One running daemon on an empty config."""
    return make_daemon().start()
