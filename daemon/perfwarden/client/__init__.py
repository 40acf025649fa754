"""``perfwarden.client``: send metrics to perfwarden and read its knobs, from app code.

::

    from perfwarden import client

    @client.timer("context_loading_time", tags={"route": "search"})
    def load_context(): ...

    with client.timer("command_execution_time"):
        run_command()

    client.gauge("memory_usage_mb", 31.2)
    ratio = client.knobs.get("compression.ratio", 0.4)

Lines are packed into DogStatsD datagrams of up to 8 KiB and sent to ``metrics.sock``
when a datagram is full, a few milliseconds after its first line, and at exit. Sending
never blocks and never raises: while the daemon's queue is full, datagrams wait in a
bounded backlog and a background thread sends them as room appears; when the daemon
is away, or the backlog is over its bound, lines are counted in ``dropped``
(``client.dropped`` for the default client) and the socket is retried at most once a
second. Thread-safe and fork-safe (a child starts with an empty buffer and its own
socket).

The socket directory is found as the CLI finds it: the ``socket_dir`` argument,
``$PERFWARDEN_SOCKET_DIR``, ``/run/perfwarden`` when it exists (the system daemon),
else the per-user default; never the application's own ``$RUNTIME_DIRECTORY``.

Knob values come live from the daemon's ``knobs.watch`` stream (or, while the daemon
is away, from ``knobs.json`` in its state directory).
"""

from __future__ import annotations

import functools
import os
import threading
import time

from perfwarden.client import _discovery
from perfwarden.client._knob_watcher import KnobWatcher
from perfwarden.client._sender import (
    DEFAULT_MAX_BACKLOG,
    DEFAULT_MAX_DATAGRAM,
    DatagramSender,
)

# Not typing.TYPE_CHECKING: the client imports as little as it can (mypy and ruff
# read this name the same way).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Mapping
    from types import TracebackType
    from typing import Any, ParamSpec, TypeAlias, TypeGuard, TypeVar

    P = ParamSpec("P")
    R = TypeVar("R")
    Tags: TypeAlias = Mapping[str, str] | list[str] | tuple[str, ...] | None

__all__ = [
    "Client",
    "Timer",
    "count",
    "distribution",
    "dropped",
    "gauge",
    "get_client",
    "knobs",
    "sent",
    "timer",
    "timing",
]

_perf_counter = time.perf_counter
#: ``co_flags`` bit of a coroutine function (``inspect.CO_COROUTINE``).
_CO_COROUTINE = 0x80


def _tag_suffix(tags: Tags) -> str:
    if not tags:
        return ""
    if isinstance(tags, list | tuple):
        return "|#" + ",".join(tags)
    return "|#" + ",".join(f"{k}:{v}" for k, v in tags.items())


class Client:
    """A buffered, non-blocking DogStatsD sender plus live knob values."""

    def __init__(
        self,
        socket_dir: str | os.PathLike[str] | None = None,
        *,
        state_dir: str | os.PathLike[str] | None = None,
        flush_interval: float = 0.005,
        max_datagram: int = DEFAULT_MAX_DATAGRAM,
        max_backlog: int = DEFAULT_MAX_BACKLOG,
    ) -> None:
        directory = _discovery.socket_dir(
            os.fspath(socket_dir) if socket_dir is not None else None, os.environ
        )
        self._sender = DatagramSender(
            os.path.join(directory, _discovery.METRICS_SOCKET),
            flush_interval=flush_interval,
            max_datagram=max_datagram,
            max_backlog=max_backlog,
        )
        self._add = self._sender.add
        state = _discovery.state_dir(
            os.fspath(state_dir) if state_dir is not None else None, os.environ
        )
        control = os.path.join(directory, _discovery.CONTROL_SOCKET)
        self.knobs = KnobWatcher(control, state)

    @property
    def dropped(self) -> int:
        """Lines that could not be delivered (daemon away, backlog over its bound)."""
        return self._sender.dropped

    @property
    def sent(self) -> int:
        """Lines handed to the kernel."""
        return self._sender.sent

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
        return Timer(self, name, _tag_suffix(tags) if tags else "")

    def flush(self, timeout: float = 0.0) -> bool:
        """Send what is buffered now; wait up to *timeout* seconds while the daemon's
        queue is full. True when nothing is left waiting."""
        return self._sender.flush(timeout)


class Timer:
    """Measures wall time in milliseconds; a context manager and a decorator."""

    # Every with-block builds one: keep construction and __exit__ to a few lookups.
    __slots__ = ("_add", "_prefix", "_start", "_suffix")

    def __init__(self, client: Client, name: str, suffix: str) -> None:
        self._add = client._add
        self._prefix = name + ":"
        self._suffix = "|ms" + suffix
        self._start = 0.0

    def __enter__(self) -> Timer:
        self._start = _perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        elapsed = (_perf_counter() - self._start) * 1000.0
        self._add(f"{self._prefix}{elapsed:.6g}{self._suffix}")

    def __call__(self, function: Callable[P, R]) -> Callable[P, R]:
        add, prefix, suffix = self._add, self._prefix, self._suffix
        perf_counter = _perf_counter

        if _is_coroutine_function(function):

            @functools.wraps(function)
            async def timed_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                start = perf_counter()
                try:
                    return await function(*args, **kwargs)
                finally:
                    add(f"{prefix}{(perf_counter() - start) * 1000.0:.6g}{suffix}")

            return timed_async  # type: ignore[return-value]

        @functools.wraps(function)
        def timed(*args: P.args, **kwargs: P.kwargs) -> R:
            start = perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                add(f"{prefix}{(perf_counter() - start) * 1000.0:.6g}{suffix}")

        return timed


def _is_coroutine_function(
    function: object,
) -> TypeGuard[Callable[..., Coroutine[Any, Any, Any]]]:
    """``inspect.iscoroutinefunction`` without importing inspect (~2.5 MiB)."""
    while isinstance(function, functools.partial):
        function = function.func
    function = getattr(function, "__func__", function)  # a bound method
    code = getattr(function, "__code__", None)
    return bool(getattr(code, "co_flags", 0) & _CO_COROUTINE)


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


def __getattr__(name: str) -> int:
    """``client.dropped`` and ``client.sent``: the default client's counters."""
    if name in {"dropped", "sent"}:
        return int(getattr(get_client(), name))
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
