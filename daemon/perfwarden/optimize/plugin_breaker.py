"""The circuit breaker: a plugin's failures counted, logged, and past a limit, off.

Failures are counted in two streaks
(:func:`~perfwarden.optimize.plugin_handle.streak_of`): ``propose`` (``handles``
and ``propose``) and ``action`` (``apply`` and ``revert``); a success ends only its
own streak, so a plugin that proposes well but hangs in every ``apply`` is still
switched off once a streak reaches ``optimizer.max_failures``. A coroutine step that
held the event loop past
:data:`~perfwarden.optimize.plugin_calls.STALL_LIMIT` switches the plugin off at
once: nothing can interrupt it, and its next blocking step would stall ingest and
control again. A worker thread blamed for holding the GIL through a stall (see
:mod:`.plugin_threads`) counts as one failure of its call (:func:`held_loop`): the
blame rests on CPU clocks, not on a measured step, and a plain function may
legitimately compute, so it takes ``max_failures`` such calls to switch it off.
"""

from __future__ import annotations

from perfwarden.logs.setup import get_logger
from perfwarden.optimize.plugin_calls import STALL_LIMIT
from perfwarden.optimize.plugin_handle import PluginHandle, PluginState, streak_of

__all__ = [
    "STALL_LIMIT",
    "check_stall",
    "disable",
    "failed",
    "held_loop",
    "succeeded",
    "timed_out",
]

_log = get_logger("perfwarden.plugins")


def succeeded(handle: PluginHandle, what: str) -> None:
    """A call's result was valid: the failure streak of its kind ends."""
    handle.streaks[streak_of(what)] = 0


def failed(
    handle: PluginHandle,
    what: str,
    error: str,
    limit: int,
    *,
    event: str = "plugin.call_failed",
    **detail: object,
) -> None:
    """One failure of ``what``: counted, logged, and the plugin switched off when
    its streak reaches ``limit``."""
    handle.counts["failures"] += 1
    streak = streak_of(what)
    handle.streaks[streak] = handle.streaks.get(streak, 0) + 1
    handle.error = f"{what}: {error}"
    _log.warning(
        event,
        plugin=handle.name,
        call=what,
        error=error,
        **detail,
        consecutive_failures=handle.consecutive_failures,
        max_failures=limit,
    )
    if handle.consecutive_failures >= limit:
        disable(handle)


def timed_out(
    handle: PluginHandle,
    what: str,
    error: str,
    seconds: float,
    limit: int,
    *,
    abandoned: bool,
) -> None:
    """A timeout: counted as one, and as a failure, logged as ``timed_out``."""
    handle.counts["timeouts"] += 1
    failed(
        handle,
        what,
        error,
        limit,
        event="plugin.timed_out",
        seconds=round(seconds, 3),
        abandoned=abandoned,
    )


def check_stall(handle: PluginHandle, what: str, longest: float, limit: int) -> bool:
    """Switch off a coroutine plugin whose ``longest`` step held the loop over
    :data:`STALL_LIMIT` (``plugin.stalled_loop``, then ``plugin.disabled``)."""
    if longest <= STALL_LIMIT:
        return False
    seconds = _stalled(
        handle,
        what,
        longest,
        via="coroutine",
        hint="a coroutine must not block; make the method a plain function "
        "(run in a thread) or await the I/O",
    )
    failed(handle, what, f"blocked the event loop for {seconds:g}s", limit)
    disable(handle)
    return True


def held_loop(
    handle: PluginHandle, what: str, seconds: float, limit: int, *, failure: bool
) -> None:
    """A call of ``handle`` in a worker thread held the GIL, so the event loop,
    for ``seconds``: a stall (``plugin.stalled_loop``), and a failure unless the
    call's failure was counted already (``failure`` false: it timed out)."""
    seconds = _stalled(
        handle,
        what,
        seconds,
        via="thread",
        hint="a call in a worker thread held the GIL (one long C call: a regular "
        "expression, a huge sum or sort); split the work or run the plugin in a "
        "host (isolation: process)",
    )
    if failure:
        error = f"held the GIL, stalling the event loop {seconds:g}s"
        failed(handle, what, error, limit)


def disable(handle: PluginHandle) -> None:
    """Switch an active plugin off until the next reload (its host, if any, goes)."""
    if handle.state is not PluginState.ACTIVE:
        return
    handle.state = PluginState.DISABLED
    if handle.host is not None:
        handle.host.close_nowait()  # no memory kept for a plugin switched off
    _log.error(
        "plugin.disabled",
        plugin=handle.name,
        dist=handle.source.dist,
        failures=handle.consecutive_failures,
        error=handle.error,
        until="the next reload",
    )


def _stalled(
    handle: PluginHandle, what: str, seconds: float, *, via: str, hint: str
) -> float:
    """Count and log one stall of the loop by ``handle``; its seconds, rounded."""
    seconds = round(seconds, 3)
    handle.counts["stalls"] += 1
    _log.error(
        "plugin.stalled_loop",
        plugin=handle.name,
        call=what,
        seconds=seconds,
        limit=STALL_LIMIT,
        via=via,
        hint=hint,
    )
    return seconds
