"""Where perfwarden's sockets and state live, by contract §2's precedence rules."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "CONTROL_SOCKET",
    "KNOBS_FILE",
    "LOCK_FILE",
    "METRICS_SOCKET",
    "METRICS_STREAM_SOCKET",
    "RECORDING_DIR",
    "resolve_socket_dir",
    "resolve_state_dir",
]

METRICS_SOCKET: Final = "metrics.sock"
METRICS_STREAM_SOCKET: Final = "metrics.stream.sock"
CONTROL_SOCKET: Final = "control.sock"
#: The knob values, written atomically by the daemon in the state directory.
KNOBS_FILE: Final = "knobs.json"
#: The recording's segment files (``recording:``), in the state directory.
RECORDING_DIR: Final = "recording"
#: Held with flock() for the daemon's whole life: the authority on "is one running".
LOCK_FILE: Final = ".perfwarden.lock"


def _first_of(environ: Mapping[str, str], name: str) -> str | None:
    # systemd passes colon-separated lists when several directories are declared.
    value = environ.get(name, "")
    return value.split(":")[0] or None


def resolve_socket_dir(cli_value: str | None, environ: Mapping[str, str]) -> Path:
    """``--socket-dir``, ``$PERFWARDEN_SOCKET_DIR``, systemd's, XDG's, or /tmp."""
    if cli_value:
        return Path(cli_value)
    for name in ("PERFWARDEN_SOCKET_DIR", "RUNTIME_DIRECTORY"):
        value = _first_of(environ, name)
        if value:
            return Path(value)
    runtime = environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "perfwarden"
    return Path(f"/tmp/perfwarden-{os.getuid()}")  # noqa: S108 - contract §2; created 0700


def resolve_state_dir(cli_value: str | None, environ: Mapping[str, str]) -> Path:
    """``--state-dir``, ``$PERFWARDEN_STATE_DIR``, systemd's, or XDG state home."""
    if cli_value:
        return Path(cli_value)
    for name in ("PERFWARDEN_STATE_DIR", "STATE_DIRECTORY"):
        value = _first_of(environ, name)
        if value:
            return Path(value)
    state_home = environ.get("XDG_STATE_HOME")
    base = Path(state_home) if state_home else Path.home() / ".local" / "state"
    return base / "perfwarden"
