"""Where a client finds the daemon: socket names and the directory search.

Clients (``perfwarden.client`` and the CLI commands that talk to a running daemon)
look at, in order: the explicit choice (``Client(socket_dir)``, ``--socket-dir``),
``$PERFWARDEN_SOCKET_DIR``, the system daemon's ``/run/perfwarden`` when it exists,
then the per-user default (``$XDG_RUNTIME_DIR/perfwarden``, else
``/tmp/perfwarden-$UID``). They never read ``$RUNTIME_DIRECTORY``: in an application
that is itself a systemd service with ``RuntimeDirectory=`` it names the
application's own directory. The state directory (``knobs.json`` while the daemon is
away) is searched the same way.

Plain strings and ``os.path`` only: this module is imported by every application
that imports the client, so it stays free of ``pathlib`` and ``typing``.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "CONTROL_SOCKET",
    "KNOBS_FILE",
    "METRICS_SOCKET",
    "METRICS_STREAM_SOCKET",
    "SYSTEM_SOCKET_DIR",
    "SYSTEM_STATE_DIR",
    "first_of",
    "socket_dir",
    "state_dir",
    "user_socket_dir",
    "user_state_dir",
]

METRICS_SOCKET = "metrics.sock"
METRICS_STREAM_SOCKET = "metrics.stream.sock"
CONTROL_SOCKET = "control.sock"
#: The knob values, written atomically by the daemon in the state directory.
KNOBS_FILE = "knobs.json"
#: The system daemon's socket directory (the shipped unit's ``RuntimeDirectory=``).
SYSTEM_SOCKET_DIR = "/run/perfwarden"
#: The system daemon's state directory (the shipped unit's ``StateDirectory=``).
SYSTEM_STATE_DIR = "/var/lib/perfwarden"


def first_of(environ: Mapping[str, str], name: str) -> str | None:
    """The first of a ``:``-separated list (systemd's form), or None when empty."""
    return environ.get(name, "").split(":")[0] or None


def socket_dir(
    explicit: str | None,
    environ: Mapping[str, str],
    system_dir: str = SYSTEM_SOCKET_DIR,
) -> str:
    """The socket directory a client talks to."""
    return _search(explicit, environ, "PERFWARDEN_SOCKET_DIR", system_dir) or (
        user_socket_dir(environ)
    )


def state_dir(
    explicit: str | None,
    environ: Mapping[str, str],
    system_dir: str = SYSTEM_STATE_DIR,
) -> str:
    """The state directory a client reads ``knobs.json`` from."""
    return _search(explicit, environ, "PERFWARDEN_STATE_DIR", system_dir) or (
        user_state_dir(environ)
    )


def _search(
    explicit: str | None, environ: Mapping[str, str], variable: str, system_dir: str
) -> str | None:
    """The explicit value, else ``$variable``, else ``system_dir`` when it exists
    (never the application's own systemd directories); None: the per-user one."""
    if explicit:
        return explicit
    chosen = first_of(environ, variable)
    if chosen:
        return chosen
    return system_dir if os.path.isdir(system_dir) else None


def user_socket_dir(environ: Mapping[str, str]) -> str:
    """``$XDG_RUNTIME_DIR/perfwarden``, else ``/tmp/perfwarden-$UID``."""
    runtime = environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return os.path.join(runtime, "perfwarden")
    return f"/tmp/perfwarden-{os.getuid()}"  # noqa: S108 - contract §2; created 0700


def user_state_dir(environ: Mapping[str, str]) -> str:
    """``$XDG_STATE_HOME/perfwarden``, else ``~/.local/state/perfwarden``."""
    state_home = environ.get("XDG_STATE_HOME")
    base = state_home or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "perfwarden")
