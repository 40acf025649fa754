"""``perfwarden.client``: send metrics to perfwarden and read its knobs, from app code.

::

    from perfwarden import client

    @client.timer("context_loading_time", tags={"route": "search"})
    def load_context(): ...

    with client.timer("command_execution_time"):
        run_command()

    client.gauge("memory_usage_mb", 31.2)
    ratio = client.knobs.get("compression.ratio", 0.4)

Lines are buffered and sent as DogStatsD datagrams to ``metrics.sock`` when the buffer
fills or a few milliseconds after the first line, and at exit. Sending never blocks
and never raises: when the daemon is away, lines are counted in ``dropped`` and the
client retries the socket at most once a second. Thread-safe and fork-safe (a child
starts with an empty buffer and its own socket).

Knob values come live from the daemon's ``knobs.watch`` stream (or, while the daemon
is away, from ``knobs.json`` in its state directory).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import inspect
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeVar

from perfwarden.client._knob_watcher import KnobWatcher
from perfwarden.paths import (
    CONTROL_SOCKET,
    METRICS_SOCKET,
    resolve_socket_dir,
    resolve_state_dir,
)

if TYPE_CHECKING:
    from types import TracebackType

__all__ = [
    "Client",
    "Timer",
    "count",
    "distribution",
    "gauge",
    "get_client",
    "knobs",
    "timer",
    "timing",
]

P = ParamSpec("P")
R = TypeVar("R")
Tags = Mapping[str, str] | list[str] | tuple[str, ...] | None

_MAX_DATAGRAM: Final = 8192
_RETRY_AFTER: Final = 1.0


def _tag_suffix(tags: Tags) -> str:
    if not tags:
        return ""
    if isinstance(tags, Mapping):
        return "|#" + ",".join(f"{k}:{v}" for k, v in tags.items())
    return "|#" + ",".join(tags)


class Client:
    """A buffered, non-blocking DogStatsD sender plus live knob values."""

    def __init__(
        self,
        socket_dir: str | os.PathLike[str] | None = None,
        *,
        state_dir: str | os.PathLike[str] | None = None,
        flush_interval: float = 0.005,
        max_datagram: int = _MAX_DATAGRAM,
    ) -> None:
        directory = resolve_socket_dir(
            os.fspath(socket_dir) if socket_dir is not None else None, os.environ
        )
        self._path = str(directory / METRICS_SOCKET)
        self._flush_interval = flush_interval
        self._max_datagram = max_datagram
        #: Lines that could not be delivered (daemon away, queue full).
        self.dropped = 0
        #: Lines handed to the kernel.
        self.sent = 0
        state = resolve_state_dir(
            os.fspath(state_dir) if state_dir is not None else None, os.environ
        )
        self.knobs = KnobWatcher(directory / CONTROL_SOCKET, Path(state))
        self._reset()
        os.register_at_fork(after_in_child=self._reset)
        atexit.register(self.flush)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._lines: list[str] = []
        self._size = 0
        self._sock: socket.socket | None = None
        self._retry_at = 0.0
        self._wake = threading.Event()
        self._flusher: threading.Thread | None = None

    # -- metrics -----------------------------------------------------------------

    def timing(self, name: str, milliseconds: float, tags: Tags = None) -> None:
        """Record a duration in milliseconds (``ms``)."""
        self._add(f"{name}:{milliseconds}|ms{_tag_suffix(tags)}")

    def gauge(self, name: str, value: float, tags: Tags = None) -> None:
        """Record a value (``g``): every value is a sample of the window."""
        self._add(f"{name}:{value}|g{_tag_suffix(tags)}")

    def distribution(self, name: str, value: float, tags: Tags = None) -> None:
        """Record a sample of a distribution (``d``)."""
        self._add(f"{name}:{value}|d{_tag_suffix(tags)}")

    def count(self, name: str, value: float = 1, tags: Tags = None) -> None:
        """Add to a counter (``c``): summed per interval, stored as a rate."""
        self._add(f"{name}:{value}|c{_tag_suffix(tags)}")

    def timer(self, name: str, tags: Tags = None) -> Timer:
        """Time a block (``with``) or a function (decorator, sync or async)."""
        return Timer(self, name, _tag_suffix(tags))

    # -- buffering and sending ---------------------------------------------------

    def _add(self, line: str) -> None:
        size = len(line) + 1
        with self._lock:
            if self._size + size > self._max_datagram and self._lines:
                self._send_locked()
            self._lines.append(line)
            self._size += size
            first = len(self._lines) == 1
        if first:
            self._ensure_flusher()
            self._wake.set()

    def flush(self) -> None:
        """Send what is buffered now."""
        with self._lock:
            self._send_locked()

    def _send_locked(self) -> None:
        lines = self._lines
        if not lines:
            return
        self._lines = []
        self._size = 0
        payload = "\n".join(lines).encode()
        sock = self._socket()
        if sock is None:
            self.dropped += len(lines)
            return
        try:
            sock.send(payload)
        except OSError:
            # EAGAIN (the daemon's queue is full), ECONNREFUSED / ENOENT (it is gone).
            self.dropped += len(lines)
            self._drop_socket()
            return
        self.sent += len(lines)

    def _socket(self) -> socket.socket | None:
        if self._sock is not None:
            return self._sock
        now = time.monotonic()
        if now < self._retry_at:
            return None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        sock.setblocking(False)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            self._retry_at = now + _RETRY_AFTER
            return None
        self._sock = sock
        return sock

    def _drop_socket(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._retry_at = time.monotonic() + _RETRY_AFTER

    def _ensure_flusher(self) -> None:
        if self._flusher is not None:
            return
        with self._lock:
            if self._flusher is not None:
                return
            self._flusher = threading.Thread(
                target=self._flush_loop, name="perfwarden-client", daemon=True
            )
            self._flusher.start()

    def _flush_loop(self) -> None:
        wake = self._wake
        while True:
            wake.wait()
            time.sleep(self._flush_interval)
            wake.clear()
            with contextlib.suppress(Exception):  # never let the flusher die
                self.flush()


class Timer:
    """Measures wall time in milliseconds; a context manager and a decorator."""

    __slots__ = ("_client", "_name", "_start", "_suffix")

    def __init__(self, client: Client, name: str, suffix: str) -> None:
        self._client = client
        self._name = name
        self._suffix = suffix
        self._start = 0.0

    def __enter__(self) -> Timer:
        self._start = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        elapsed = (time.perf_counter() - self._start) * 1000.0
        self._client._add(f"{self._name}:{elapsed:.6g}|ms{self._suffix}")

    def __call__(self, function: Callable[P, R]) -> Callable[P, R]:
        client, name, suffix = self._client, self._name, self._suffix
        add = client._add
        perf_counter = time.perf_counter

        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def timed_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                start = perf_counter()
                try:
                    return await function(*args, **kwargs)
                finally:
                    add(f"{name}:{(perf_counter() - start) * 1000.0:.6g}|ms{suffix}")

            return timed_async  # type: ignore[return-value]

        @functools.wraps(function)
        def timed(*args: P.args, **kwargs: P.kwargs) -> R:
            start = perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                add(f"{name}:{(perf_counter() - start) * 1000.0:.6g}|ms{suffix}")

        return timed


_default: Client | None = None
_default_lock = threading.Lock()


def get_client() -> Client:
    """The process-wide client (created on first use from the environment)."""
    global _default  # noqa: PLW0603 - the module-level convenience client
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Client()
    return _default


def timer(name: str, tags: Tags = None) -> Timer:
    """``get_client().timer(...)``."""
    return get_client().timer(name, tags)


def timing(name: str, milliseconds: float, tags: Tags = None) -> None:
    """``get_client().timing(...)``."""
    get_client().timing(name, milliseconds, tags)


def gauge(name: str, value: float, tags: Tags = None) -> None:
    """``get_client().gauge(...)``."""
    get_client().gauge(name, value, tags)


def count(name: str, value: float = 1, tags: Tags = None) -> None:
    """``get_client().count(...)``."""
    get_client().count(name, value, tags)


def distribution(name: str, value: float, tags: Tags = None) -> None:
    """``get_client().distribution(...)``."""
    get_client().distribution(name, value, tags)


class _DefaultKnobs:
    """``client.knobs``: the default client's knob values."""

    def get(self, name: str, default: Any = None) -> Any:
        """The knob's live value, or ``default``."""
        return get_client().knobs.get(name, default)

    def values(self) -> dict[str, Any]:
        """Every known knob value."""
        return get_client().knobs.values()

    def on_change(self, callback: Callable[[str, Any, Any], None]) -> None:
        """Call ``callback(name, old, new)`` when a knob changes."""
        get_client().knobs.on_change(callback)


knobs = _DefaultKnobs()
