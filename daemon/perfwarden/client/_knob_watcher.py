"""The client side of knob delivery: a background thread that keeps knob values live.

It connects to ``control.sock``, sends ``knobs.watch`` and applies every update it
streams; when the daemon is away it falls back to ``knobs.json`` in the state
directory and reconnects with backoff (also when the daemon refuses the connection,
say past ``control.max_connections_per_uid``). A control socket in a directory that
someone else could have planted (:mod:`perfwarden.client._trust`) is not listened
to. Nothing here raises into the application.

The control protocol's request line is written here rather than imported from
:mod:`perfwarden.control.protocol`: the client imports nothing of the daemon (and
``json`` only once knobs are used), so that ``import perfwarden.client`` stays light.
"""

from __future__ import annotations

import os
import threading

from perfwarden.client._discovery import KNOBS_FILE
from perfwarden.client._trust import client_reason

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from collections.abc import Callable
    from typing import Any

    from perfwarden.plugin_api import KnobValue

__all__ = ["MAX_LINE", "KnobWatcher"]

_BACKOFF_MAX = 5.0
#: The control protocol's line cap (``perfwarden.control.protocol.MAX_LINE``).
MAX_LINE = 1 << 20
_WATCH_REQUEST = b'{"id":"watch","command":"knobs.watch","args":{}}\n'


class KnobWatcher:
    """Live knob values for an application; start() is implicit on first use."""

    def __init__(self, control_path: str, state_dir: str) -> None:
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
            try:  # noqa: SIM105 - no contextlib in the light client
                sock.shutdown(2)  # socket.SHUT_RDWR
            except OSError:
                pass

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
        import json  # noqa: PLC0415 - only once knobs are used: the import stays light

        try:
            with open(os.path.join(self._state_dir, KNOBS_FILE), "rb") as file:
                document = json.loads(file.read())
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
                try:  # noqa: SIM105 - no contextlib in the light client
                    callback(name, old, value)
                except Exception:  # noqa: BLE001, S110 - a callback never stops updates
                    pass

    def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                self._watch()
                backoff = 0.1
            except (OSError, ValueError):
                pass
            self._connected.clear()
            if self._stop.wait(backoff):
                return
            self._load_file()
            backoff = min(backoff * 2, _BACKOFF_MAX)

    def _watch(self) -> None:
        import json  # noqa: PLC0415 - see _load_file
        import socket  # noqa: PLC0415 - likewise

        untrusted = client_reason(os.path.dirname(self._control_path))
        if untrusted is not None:
            raise ValueError(untrusted)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            self._sock = sock
            sock.settimeout(5.0)
            sock.connect(self._control_path)
            sock.sendall(_WATCH_REQUEST)
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
