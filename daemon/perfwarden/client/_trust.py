"""Whether a socket directory can be trusted, like sshd's ``StrictModes`` (stdlib only).

A Unix socket is only as trustworthy as the directories above it: whoever may
create, rename or delete entries on the way to ``control.sock`` can put a socket
of their own in its place. These functions say why a directory is not to be
trusted, or ``None``; :mod:`perfwarden.ownership` turns a reason into the daemon's
error, and the client's knob watcher simply does not listen there.

The rules, for a user ``uid``:

* every directory above the socket directory is owned by root or ``uid``, and one
  that others may write to carries the sticky bit (``/tmp``), so that nobody else can
  rename or remove what lies below it;
* a client's socket directory is not writable by anyone but its owner;
* a client also trusts a directory owned by another uid (a service account's
  ``/run/perfwarden``), but only when its parent is owned by root or the client and
  nobody else may write there, so that the directory was put in place by an
  administrator and not by whoever came first to a shared ``/tmp``.
"""

from __future__ import annotations

import os
import stat

__all__ = ["ancestors_reason", "client_reason"]

OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH


def ancestors_reason(path: str, uid: int) -> str | None:
    """Why a directory above ``path`` (absolute) lets others swap what is below."""
    ancestor = os.path.dirname(path)
    while True:
        info = os.stat(ancestor)
        if info.st_uid not in (0, uid):
            return f"{ancestor} above it belongs to uid {info.st_uid}"
        if info.st_mode & OTHERS_WRITE and not info.st_mode & stat.S_ISVTX:
            return f"{ancestor} above it is writable by others and not sticky"
        parent = os.path.dirname(ancestor)
        if parent == ancestor:
            return None
        ancestor = parent


def client_reason(path: str, uid: int | None = None) -> str | None:
    """Why a client ``uid`` should not trust the socket directory ``path``.

    A missing or unreachable directory passes (there is nothing to trust or
    distrust: connecting fails with "no daemon" or "not allowed" instead).
    """
    uid = os.getuid() if uid is None else uid
    path = os.path.abspath(path)
    try:
        info = os.stat(path)
    except (FileNotFoundError, PermissionError, NotADirectoryError):
        return None
    if info.st_mode & OTHERS_WRITE:
        return "it is writable by others than its owner"
    if info.st_uid not in (0, uid):
        parent_dir = os.path.dirname(path)
        parent = os.stat(parent_dir)
        if parent.st_uid not in (0, uid) or parent.st_mode & OTHERS_WRITE:
            return (
                f"it belongs to uid {info.st_uid} and sits in {parent_dir}, where "
                "others may create directories: it may not be the daemon's"
            )
    return ancestors_reason(path, uid)
