"""The client side of knob delivery: a background thread that keeps knob values live.

It connects to ``control.sock``, sends ``knobs.watch`` and applies every update it
streams; when the daemon is away it falls back to ``knobs.json`` in the state
directory and reconnects with backoff (also when the daemon refuses the connection,
say past ``control.max_connections_per_uid``). A control socket in a directory that
someone else could have planted (:mod:`perfwarden.ownership`) is not listened to.
Nothing here raises into the application.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
from typing import TYPE_CHECKING, Any, Final

from perfwarden.control.protocol import MAX_LINE, encode_request
from perfwarden.errors import PerfwardenError
from perfwarden.ownership import check_client_directory
from perfwarden.paths import KNOBS_FILE

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from perfwarden.plugin_api import KnobValue

__all__ = ["KnobWatcher"]

_BACKOFF_MAX: Final = 5.0


class KnobWatcher:
    """Live knob values for an application; start() is implicit on first use."""

    def __init__(self, control_path: Path, state_dir: Path) -> None:
        self._control_path = control_path
        self._state_dir = state_dir
        self._values: dict[str, KnobValue] = {}
        self._callbacks: list[Callable[[str, KnobValue | None, KnobValue], None]] = []
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._started = False
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._sock: socket.socket | None = None
        self.version = -1
        os.register_at_fork(after_in_child=self._after_fork)

    # -- public ------------------------------------------------------------------

    def get(self, name: str, default: KnobValue | None = None) -> KnobValue | None:
        """The knob's current value, or ``default`` when it is unknown."""
        self._ensure_started()
        return self._values.get(name, default)

    def values(self) -> dict[str, KnobValue]:
        """A copy of every known knob value."""
        self._ensure_started()
        return dict(self._values)

    def on_change(
        self, callback: Callable[[str, KnobValue | None, KnobValue], None]
    ) -> None:
        """Call ``callback(name, old, new)`` (on the watcher thread) on each change."""
        self._ensure_started()
        with self._lock:
            self._callbacks.append(callback)

    def wait_connected(self, timeout: float) -> bool:
        """Wait until the first update from a live daemon arrived."""
        self._ensure_started()
        return self._connected.wait(timeout)

    def close(self) -> None:
        """Stop the watcher thread."""
        self._stop.set()
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    # -- internals ---------------------------------------------------------------

    def _ensure_started(self) -> None:
        if self._started:
            return
        with self._start_lock:
            if self._started:
                return
            self._started = True
            self._load_file()
            thread = threading.Thread(
                target=self._run, name="perfwarden-knobs", daemon=True
            )
            thread.start()

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._started = False
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._sock = None

    def _load_file(self) -> None:
        try:
            document = json.loads((self._state_dir / KNOBS_FILE).read_text())
            knobs = document["knobs"]
            self._apply({name: entry["value"] for name, entry in knobs.items()}, -1)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass

    def _apply(self, values: dict[str, Any], version: int) -> None:
        changes = []
        with self._lock:
            for name, value in values.items():
                old = self._values.get(name)
                if old != value:
                    self._values[name] = value
                    changes.append((name, old, value))
            if version >= 0:
                self.version = version
            callbacks = list(self._callbacks)
        for name, old, value in changes:
            for callback in callbacks:
                with contextlib.suppress(Exception):
                    callback(name, old, value)

    def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                self._watch()
                backoff = 0.1
            except (OSError, ValueError, PerfwardenError):
                pass
            self._connected.clear()
            if self._stop.wait(backoff):
                return
            self._load_file()
            backoff = min(backoff * 2, _BACKOFF_MAX)

    def _watch(self) -> None:
        check_client_directory(self._control_path.parent)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            self._sock = sock
            sock.settimeout(5.0)
            sock.connect(str(self._control_path))
            sock.sendall(encode_request("watch", "knobs.watch", {}))
            sock.settimeout(None)
            with sock.makefile("rb") as reader:
                while not self._stop.is_set():
                    line = reader.readline(MAX_LINE)
                    if not line:
                        return
                    response = json.loads(line)
                    if not response.get("ok"):
                        msg = f"the daemon refused: {response.get('error')}"
                        raise ValueError(msg)
                    data = response["data"]
                    self._apply(data["values"], int(data.get("version", -1)))
                    self._connected.set()
