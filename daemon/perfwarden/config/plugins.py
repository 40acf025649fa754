"""Check the built-in ``exec`` and ``webhook`` timings against ``plugin_timeout``.

One job: reject at load a timing of the two built-in plugins that wait on
something outside (a command, an HTTP endpoint) when the daemon could never give
it the time. Every plugin call must end by its deadline, ``plugin_timeout`` less
a grace (:func:`perfwarden.deadline.budget`: 4.5 s of the default 5 s), so:

- ``plugins.exec.timeout`` must fit in it;
- ``plugins.webhook.timeout`` must fit in it, and so must every attempt and
  backoff the operator asked for: ``timeout * (retries + 1) + backoff *
  (2**retries - 1)``. Without ``timeout``, attempts share what is left of the
  call, so only the backoffs must end before the deadline (else the last retry
  could never start).

Only the options the operator wrote are checked (with the plugin's defaults for
the others): left alone, both plugins simply stop at the deadline. Values that
are not durations or counts are left to the plugin, which rejects them when it
loads (``plugin.failed``), as for any plugin option. A plugin with
``enabled: false`` is not checked: it never runs.

Internal to :mod:`perfwarden.config.load`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Final

from perfwarden.config.durations import parse_duration
from perfwarden.deadline import budget, grace, timeout_for
from perfwarden_optimizers.webhook import DEFAULT_BACKOFF, DEFAULT_RETRIES

if TYPE_CHECKING:
    from collections.abc import Mapping

    from perfwarden.config.nodes import Checker, Section

__all__ = ["WEBHOOK_BACKOFF", "WEBHOOK_RETRIES", "check_plugin_timing"]

#: The built-in webhook plugin's defaults, as it defines them.
WEBHOOK_RETRIES: Final = DEFAULT_RETRIES
WEBHOOK_BACKOFF: Final = DEFAULT_BACKOFF


#: Float slack when comparing a timing with the budget (a nanosecond).
_SLACK: Final = 1e-9


def _s(seconds: float) -> str:
    return f"{round(seconds, 3):g}s"


def _at_least(seconds: float) -> str:
    """The ``plugin_timeout`` to suggest, rounded *up* to the millisecond."""
    return f"{math.ceil(timeout_for(seconds) * 1000 - _SLACK) / 1000:g}s"


def _seconds(options: Mapping[str, object], key: str) -> float | None:
    """A duration option the plugin would accept, or None (absent or invalid)."""
    value = options.get(key)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        return parse_duration(value)
    except ValueError:
        return None


def _count(options: Mapping[str, object], key: str) -> int | None:
    value = options.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def check_plugin_timing(
    c: Checker,
    p: Section,
    name: str,
    options: Mapping[str, object],
    plugin_timeout: float,
) -> None:
    """Record a problem when plugin ``name``'s timing cannot fit in a call."""
    allowed = budget(plugin_timeout)
    why = (
        f"a plugin call may run {_s(allowed)} (optimizer.plugin_timeout "
        f"{_s(plugin_timeout)} less {_s(grace(plugin_timeout))} grace)"
    )
    timeout = _seconds(options, "timeout")
    if (
        name in {"exec", "webhook"}
        and timeout is not None
        and timeout > allowed + _SLACK
    ):
        message = (
            f"{_s(timeout)} is longer than {why}; lower it, or raise "
            f"optimizer.plugin_timeout to at least {_at_least(timeout)}"
        )
        c.add(p.value_line("timeout"), p.dotted("timeout"), message)
        return
    if name != "webhook" or not {"timeout", "retries", "backoff"} & set(p.entries):
        return
    retries = _count(options, "retries") if "retries" in options else WEBHOOK_RETRIES
    backoff = _seconds(options, "backoff") if "backoff" in options else WEBHOOK_BACKOFF
    if retries is None or backoff is None or ("timeout" in options and not timeout):
        return  # the plugin rejects these values itself
    waits = backoff * (2**retries - 1)
    key = next(k for k in ("retries", "backoff", "timeout") if k in p.entries)
    if timeout is not None:
        worst = timeout * (retries + 1) + waits
        if worst > allowed + _SLACK:
            message = (
                f"timeout {_s(timeout)} x {retries + 1} attempts + {_s(waits)} of "
                f"backoff = {_s(worst)} is longer than {why}; lower timeout, "
                f"retries or backoff, or raise optimizer.plugin_timeout to at "
                f"least {_at_least(worst)}"
            )
            c.add(p.value_line(key), p.dotted(key), message)
    elif waits >= allowed - _SLACK:
        message = (
            f"retry {retries} would start only after {_s(waits)} of backoff, and "
            f"{why}; lower retries or backoff, or raise optimizer.plugin_timeout "
            f"above {_s(timeout_for(waits))}"
        )
        c.add(p.value_line(key), p.dotted(key), message)
