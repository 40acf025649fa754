"""Plugin-call deadlines: the time budget of a call, and how a plugin sees it.

One job: the arithmetic of a plugin call's time and the context variable that
carries the call's deadline into the plugin (into the worker thread that runs a
plain function, or the task that runs a coroutine function).

Every plugin call may take ``optimizer.plugin_timeout`` seconds. The daemon keeps
a *grace* (a tenth of it, at most half a second) for the plugin to clean up and
report; the plugin's *deadline* comes before it::

    start                          deadline               start + plugin_timeout
      |------------ budget ------------|------- grace -------|
      the plugin works                 it kills its child or   the daemon stops
                                       aborts its request, and waiting: the call
                                       raises TimeoutError     is abandoned

Deadlines are in :func:`time.monotonic` seconds. Plugins read them with
:func:`perfwarden.plugin_api.time_left` and
:func:`perfwarden.plugin_api.current_deadline`; outside a plugin call there is no
deadline (``math.inf``). Internal: only :mod:`perfwarden.plugin_api` re-exports
names from here.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import time
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "GRACE_FRACTION",
    "MAX_GRACE",
    "budget",
    "current_deadline",
    "deadline_scope",
    "grace",
    "remaining",
    "time_left",
    "timeout_for",
]

#: The share of ``plugin_timeout`` the daemon keeps after the plugin's deadline...
GRACE_FRACTION: Final = 0.1
#: ...but never more than this many seconds.
MAX_GRACE: Final = 0.5

_DEADLINE: Final[contextvars.ContextVar[float]] = contextvars.ContextVar(
    "perfwarden_plugin_deadline", default=math.inf
)


def grace(timeout: float) -> float:
    """Seconds the daemon waits past a call's deadline before abandoning it."""
    return min(MAX_GRACE, timeout * GRACE_FRACTION)


def budget(timeout: float) -> float:
    """Seconds a plugin call has until its deadline, for a ``plugin_timeout``."""
    return timeout - grace(timeout)


def timeout_for(seconds: float) -> float:
    """The least ``plugin_timeout`` whose :func:`budget` is at least ``seconds``."""
    if seconds * GRACE_FRACTION / (1 - GRACE_FRACTION) >= MAX_GRACE:
        return seconds + MAX_GRACE
    return seconds / (1 - GRACE_FRACTION)


def remaining(deadline: float, now: float) -> float:
    """Seconds from ``now`` to ``deadline``, never negative (``inf`` stays ``inf``)."""
    return max(0.0, deadline - now)


def current_deadline() -> float:
    """The running plugin call's deadline (``time.monotonic()`` seconds), or inf."""
    return _DEADLINE.get()


def time_left() -> float:
    """Seconds until the running plugin call's deadline (0 once past it), or inf."""
    return remaining(_DEADLINE.get(), time.monotonic())


@contextlib.contextmanager
def deadline_scope(deadline: float) -> Iterator[float]:
    """Run the block with ``deadline`` in force; yields the deadline in force.

    A scope inside another never extends it: the earlier deadline wins.
    """
    effective = min(deadline, _DEADLINE.get())
    token = _DEADLINE.set(effective)
    try:
        yield effective
    finally:
        _DEADLINE.reset(token)
