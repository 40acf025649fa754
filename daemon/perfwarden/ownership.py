"""Whether a socket directory can be trusted, like sshd's ``StrictModes``.

A Unix socket is only as trustworthy as the directories above it: whoever may
create, rename or delete entries on the way to ``control.sock`` can put a socket
of their own in its place. The daemon refuses to serve from a directory that is not
its own, and a client refuses to talk to a control socket that someone else could
have swapped in (for example root's ``perfwarden knobs set`` talking to a fake
daemon in a ``/tmp/perfwarden-0`` that a local user created first).

The rules, for a user ``uid`` (the daemon's or the client's):

* every directory above the socket directory is owned by root or ``uid``, and one
  that others may write to carries the sticky bit (``/tmp``), so that nobody else can
  rename or remove what lies below it;
* the socket directory itself is not writable by anyone but its owner;
* the daemon's socket directory is owned by the daemon's uid (root's included: a
  directory a user created is refused even for root);
* a client also trusts a directory owned by another uid (a service account's
  ``/run/perfwarden``), but only when its parent is owned by root or the client and
  nobody else may write there, so that the directory was put in place by an
  administrator and not by whoever came first to a shared ``/tmp``.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from perfwarden.client._trust import ancestors_reason, client_reason
from perfwarden.errors import UntrustedDirectoryError

__all__ = ["check_client_directory", "check_daemon_directory"]


def _refuse(path: Path, why: str) -> UntrustedDirectoryError:
    return UntrustedDirectoryError(f"refusing socket directory {path}: {why}")


def check_daemon_directory(path: Path, uid: int | None = None) -> None:
    """Raise :class:`UntrustedDirectoryError` unless ``uid`` may serve from ``path``.

    ``path`` exists; ``uid`` defaults to the calling process's.
    """
    uid = os.getuid() if uid is None else uid
    path = Path(os.path.abspath(path))
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        raise _refuse(path, "it is a symbolic link")
    if not stat.S_ISDIR(info.st_mode):
        raise _refuse(path, "it is not a directory")
    if info.st_uid != uid:
        why = (
            f"it belongs to uid {info.st_uid}, not to this daemon's uid {uid}; "
            "remove it or choose another --socket-dir"
        )
        raise _refuse(path, why)
    untrusted = ancestors_reason(str(path), uid)
    if untrusted is not None:
        raise _refuse(path, untrusted)


def check_client_directory(path: Path, uid: int | None = None) -> None:
    """Raise :class:`UntrustedDirectoryError` unless a client ``uid`` may trust it
    (the rules of :mod:`perfwarden.client._trust`)."""
    why = client_reason(str(path), uid)
    if why is not None:
        raise _refuse(Path(os.path.abspath(path)), why)
