"""How one plugin call runs: in a daemon thread, or stepped and timed on the loop.

:func:`in_daemon_thread` runs a plain function in a thread of its own (one that a
hung plugin may keep for ever without holding up the daemon's exit);
:class:`Stepped` drives a coroutine plugin one step at a time and measures each
step, since a step that blocks holds the whole event loop
(:data:`STALL_LIMIT`). Used by :mod:`.plugin_runtime` in the daemon and by
:mod:`.plugin_host_child` in a plugin host.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
import time
from typing import TYPE_CHECKING, Any, Final, TypeVar

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine, Generator

__all__ = ["STALL_LIMIT", "Stepped", "awaited", "cancelling", "in_daemon_thread"]

T = TypeVar("T")


async def in_daemon_thread(function: Callable[..., T], *args: object) -> T:
    """Run ``function`` in a fresh daemon thread and await its result.

    Not ``asyncio.to_thread``: the default executor's threads are joined when the
    loop and the interpreter shut down, so one hung plugin would hang the daemon's
    exit. A daemon thread that never returns is simply abandoned. Like
    ``to_thread``, the function runs in a copy of the caller's context, so the
    call's deadline and the log context reach it.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()
    context = contextvars.copy_context()

    def settle(outcome: Callable[[], None]) -> None:
        if not future.done():
            outcome()

    def target() -> None:
        outcome: Callable[[], None]
        try:
            result = context.run(function, *args)
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
            error = exc
            outcome = lambda: future.set_exception(error)  # noqa: E731
        else:
            outcome = lambda: future.set_result(result)  # noqa: E731
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(settle, outcome)

    threading.Thread(target=target, name="perfwarden-plugin", daemon=True).start()
    return await future


#: The longest a coroutine plugin may hold the event loop in one step (seconds).
STALL_LIMIT: Final = 0.1


class Stepped:
    """Awaits a plugin's coroutine step by step, timing each step on the loop.

    A coroutine that blocks (``time.sleep``, a blocking socket) holds the event
    loop for the whole step: no timeout can fire meanwhile, so the step is
    measured and :attr:`longest` tells the runtime after the fact.
    """

    __slots__ = ("_coroutine", "_on_stall", "longest")

    def __init__(
        self,
        coroutine: Coroutine[Any, Any, Any],
        on_stall: Callable[[float], None],
    ) -> None:
        self._coroutine = coroutine
        self._on_stall = on_stall
        self.longest = 0.0

    def __await__(self) -> Generator[Any, Any, Any]:
        coroutine = self._coroutine
        sent: Any = None
        thrown: BaseException | None = None
        while True:
            started = time.monotonic()
            try:
                if thrown is not None:
                    yielded = coroutine.throw(thrown)
                else:
                    yielded = coroutine.send(sent)
            except StopIteration as stop:
                return stop.value
            finally:
                ended = time.monotonic()
                self.longest = max(self.longest, ended - started)
                if ended - started > STALL_LIMIT:
                    self._on_stall(ended)
            try:
                sent, thrown = (yield yielded), None
            except GeneratorExit:
                coroutine.close()
                raise
            except BaseException as exc:  # noqa: BLE001 - handed on to the plugin
                sent, thrown = None, exc


def cancelling() -> bool:
    """Whether the running task itself is being cancelled (not a plugin raising
    ``CancelledError`` of its own)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable
