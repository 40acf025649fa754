"""Opening ``state.db``: connect and recognise it, move a damaged file aside, and
tell a state the daemon may not write from a damaged one.

One job: hand :mod:`perfwarden.state.persistence` a connection to write to, or say
why there is none. A file SQLite cannot use is renamed ``state.db.corrupt-<time>``
(``state.discarded``) and a fresh one made. A state directory the daemon cannot
write to (a read-only mount, permissions) is not damage: its ``state.db`` is read
as it is (``immutable``: nothing is written, not even a ``-shm``), persistence is
off, and ``state.read_only`` says so; nothing is moved. A damaged file that cannot
be moved aside turns persistence off too (``state.unavailable``), never stopping
the daemon.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from perfwarden.logs.setup import get_logger
from perfwarden.state.file import (
    STATE_FILE,
    UnusableFile,
    check,
    configure,
    read_all,
    reason_of,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

__all__ = ["Opened", "connect", "discard", "open_state", "unavailable"]

_log = get_logger("perfwarden.state")


@dataclass(slots=True)
class Opened:
    """What opening found: a connection, or why not, and what to restore."""

    conn: sqlite3.Connection | None = None
    #: Why nothing will be saved (None: saving).
    disabled: str | None = None
    #: The contents of a read-only ``state.db``, to restore without saving.
    read_only_data: dict[str, Any] | None = None
    #: Why a file was moved aside or left unread, if one was.
    discarded: str | None = None


def connect(path: Path) -> sqlite3.Connection:
    """A connection for the checkpoints.

    ``isolation_level=None``: transactions are explicit (BEGIN IMMEDIATE/COMMIT);
    ``check_same_thread=False``: the worker thread writes, one write at a time.
    """
    return sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=10.0
    )


def open_state(path: Path, wall: Callable[[], float]) -> Opened:
    """Connect to ``path``, recognising or creating the schema (never raises)."""
    opened = Opened()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        return unavailable(opened, path, f"cannot create the state directory: {exc}")
    if not _writable(path):
        return _read_only(opened, path, "the state directory is not writable")
    try:
        opened.conn = _recognised(path)
    except (sqlite3.DatabaseError, UnusableFile) as exc:
        if _is_read_only(exc):
            return _read_only(opened, path, str(exc))
        if not path.exists():
            return unavailable(opened, path, str(exc))
        opened.discarded = reason_of(exc)
        moved = discard(path, opened.discarded, wall)
        if moved is not None:
            return unavailable(opened, path, moved)
        try:
            opened.conn = _recognised(path)
        except (sqlite3.DatabaseError, UnusableFile) as again:
            return unavailable(opened, path, str(again))
    return opened


def discard(path: Path, reason: str, wall: Callable[[], float]) -> str | None:
    """Move an unusable file aside; None, or why it could not be moved."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(wall()))
    target = path.with_name(f"{STATE_FILE}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{STATE_FILE}.corrupt-{stamp}.{n}")
    try:
        os.replace(path, target)
        for suffix in ("-wal", "-shm"):
            side = path.with_name(STATE_FILE + suffix)
            if side.exists():
                os.replace(side, target.with_name(target.name + suffix))
    except OSError as exc:
        return f"{reason}; could not move it aside: {exc}"
    _log.warning("state.discarded", path=str(path), moved_to=str(target), reason=reason)
    return None


def _recognised(path: Path) -> sqlite3.Connection:
    conn = connect(path)
    try:
        check(conn)
        configure(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _writable(path: Path) -> bool:
    if not os.access(path.parent, os.W_OK):
        return False
    return not path.exists() or os.access(path, os.W_OK)


def unavailable(opened: Opened, path: Path, reason: str) -> Opened:
    """Persistence off for ``reason``, logged (``state.unavailable``)."""
    opened.conn = None
    opened.disabled = reason
    _log.error(
        "state.unavailable",
        path=str(path),
        error=reason,
        message="running without persistence: nothing will be saved",
    )
    return opened


def _read_only(opened: Opened, path: Path, reason: str) -> Opened:
    """Read what a read-only state holds; save nothing, and say so."""
    opened.disabled = f"read-only: {reason}"
    if path.exists():
        uri = f"{path.absolute().as_uri()}?mode=ro&immutable=1"
        try:
            conn = sqlite3.connect(uri, uri=True, isolation_level=None)
            try:
                check(conn, migrate=False)
                opened.read_only_data = read_all(conn)
            finally:
                conn.close()
        except (sqlite3.DatabaseError, UnusableFile) as exc:
            opened.discarded = f"not read ({reason_of(exc)}); left in place"
    _log.warning(
        "state.read_only",
        path=str(path),
        reason=reason,
        restored=opened.read_only_data is not None,
        message="running without persistence: state is not saved, and the "
        "file is left as it is",
    )
    return opened


def _is_read_only(exc: BaseException) -> bool:
    """Whether SQLite failed because it may not write (not because of the file)."""
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and (
        "readonly" in text or "read-only" in text or "unable to open" in text
    )
