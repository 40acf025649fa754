"""Where perfwarden's sockets and state live: the daemon's choice, the clients' search.

The daemon (``perfwarden run``) takes ``--socket-dir``, ``$PERFWARDEN_SOCKET_DIR``,
systemd's ``$RUNTIME_DIRECTORY`` (its own ``RuntimeDirectory=``), XDG's runtime
directory, or ``/tmp/perfwarden-$UID``; the state directory likewise.

Clients search as :mod:`perfwarden.client._discovery` says (never the calling
application's own ``$RUNTIME_DIRECTORY``); :func:`discover_socket_dir` is that search
for the CLI, as a :class:`~pathlib.Path`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Final

from perfwarden.client import _discovery
from perfwarden.client._discovery import (
    CONTROL_SOCKET,
    KNOBS_FILE,
    METRICS_SOCKET,
    METRICS_STREAM_SOCKET,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "CONTROL_SOCKET",
    "KNOBS_FILE",
    "LOCK_FILE",
    "METRICS_SOCKET",
    "METRICS_STREAM_SOCKET",
    "RECORDING_DIR",
    "SYSTEM_SOCKET_DIR",
    "SYSTEM_STATE_DIR",
    "discover_socket_dir",
    "discover_state_dir",
    "resolve_socket_dir",
    "resolve_state_dir",
]

#: The recording's segment files (``recording:``), in the state directory.
RECORDING_DIR: Final = "recording"
#: Held with flock() for the daemon's whole life: the authority on "is one running".
LOCK_FILE: Final = ".perfwarden.lock"
#: The system daemon's socket directory (the shipped unit's ``RuntimeDirectory=``).
SYSTEM_SOCKET_DIR: Final = Path(_discovery.SYSTEM_SOCKET_DIR)
#: The system daemon's state directory (the shipped unit's ``StateDirectory=``).
SYSTEM_STATE_DIR: Final = Path(_discovery.SYSTEM_STATE_DIR)


def resolve_socket_dir(cli_value: str | None, environ: Mapping[str, str]) -> Path:
    """The daemon's: ``--socket-dir``, ``$PERFWARDEN_SOCKET_DIR``, systemd's, XDG's,
    or /tmp."""
    if cli_value:
        return Path(cli_value)
    for name in ("PERFWARDEN_SOCKET_DIR", "RUNTIME_DIRECTORY"):
        value = _discovery.first_of(environ, name)
        if value:
            return Path(value)
    return Path(_discovery.user_socket_dir(environ))


def resolve_state_dir(cli_value: str | None, environ: Mapping[str, str]) -> Path:
    """The daemon's: ``--state-dir``, ``$PERFWARDEN_STATE_DIR``, systemd's, or XDG
    state home."""
    if cli_value:
        return Path(cli_value)
    for name in ("PERFWARDEN_STATE_DIR", "STATE_DIRECTORY"):
        value = _discovery.first_of(environ, name)
        if value:
            return Path(value)
    return Path(_discovery.user_state_dir(environ))


def discover_socket_dir(
    cli_value: str | None,
    environ: Mapping[str, str],
    system_dir: Path = SYSTEM_SOCKET_DIR,
) -> Path:
    """A client's: ``--socket-dir``, ``$PERFWARDEN_SOCKET_DIR``, *system_dir* when it
    exists, else the per-user default (never ``$RUNTIME_DIRECTORY``)."""
    return Path(_discovery.socket_dir(cli_value, environ, str(system_dir)))


def discover_state_dir(
    cli_value: str | None,
    environ: Mapping[str, str],
    system_dir: Path = SYSTEM_STATE_DIR,
) -> Path:
    """A client's state directory, in :func:`discover_socket_dir`'s order (never
    ``$STATE_DIRECTORY``)."""
    return Path(_discovery.state_dir(cli_value, environ, str(system_dir)))
