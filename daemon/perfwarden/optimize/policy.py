"""The closed loop's choice: whether an action may start now, and which proposal.

:class:`ActionPolicy` remembers what the choice depends on and says whether an action
may start (:meth:`~ActionPolicy.blocked`):

- one action in flight per metric (and at most ``concurrent_actions`` in all);
- a cooldown per metric between two actions, and a global budget of
  ``max_actions_per_hour`` actions in any sliding hour.

It also keeps, per metric, the strategies already tried without success during the
current alert, so a still-firing alert walks through the strategies (the seed's
progressive ``optimize_context_loading``); the engine makes it forget them when the
alert resolves or an action is kept.

:func:`rank` scores the proposals by ``expected_improvement * learned weight``,
skipping tried strategies and proposals on a knob another action is validating
(strategies that turn the same knob conflict by construction), best first.
Logging and scheduling a retry are the engine's (:mod:`.optimizer`).
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Callable, Collection

    from perfwarden.config.load import Config
    from perfwarden.optimize.plugin_runtime import PluginHandle
    from perfwarden.plugin_api import Proposal

__all__ = ["ActionPolicy", "rank"]

#: The budget's sliding window, seconds.
_HOUR: Final = 3600.0


class ActionPolicy:
    """Cooldowns, the hourly budget and the strategies tried per alerting metric."""

    def __init__(self) -> None:
        self._last_action: dict[str, float] = {}
        self._actions: collections.deque[float] = collections.deque()
        self._tried: dict[str, set[str]] = {}

    @property
    def actions_last_hour(self) -> int:
        """Actions counted against the budget (as of the last :meth:`blocked`)."""
        return len(self._actions)

    def blocked(
        self, metric: str, now: float, config: Config, in_flight: Collection[str]
    ) -> tuple[str, float | None] | None:
        """Why no action may start now, and when to ask again (None: on its own).

        ``in_flight`` holds the metrics with an action being validated.
        """
        if metric in in_flight:
            # The running experiment's conclusion asks again if still firing.
            return "an action is already being validated for this metric", None
        if len(in_flight) >= config.optimizer.concurrent_actions:
            # Actions on different knobs still confound each other's measurements
            # (a compression change moves latency too): by default one at a time.
            return "another action is being validated", None
        last = self._last_action.get(metric)
        cooldown = config.optimizer.cooldown
        if last is not None and now - last < cooldown:
            return f"cooldown ({cooldown:g}s)", last + cooldown - now
        while self._actions and now - self._actions[0] > _HOUR:
            self._actions.popleft()
        budget = config.optimizer.max_actions_per_hour
        if len(self._actions) >= budget:
            retry = _HOUR - (now - self._actions[0]) if self._actions else _HOUR
            return f"budget of {budget} actions an hour used", retry
        return None

    def started(self, metric: str, now: float) -> None:
        """An action on ``metric`` was applied: its cooldown and the budget count."""
        self._last_action[metric] = now
        self._actions.append(now)

    def concluded(self, metric: str, now: float) -> None:
        """The action on ``metric`` got its verdict: the cooldown restarts from now."""
        self._last_action[metric] = now

    def tried(self, metric: str) -> set[str]:
        """The strategies tried without success during ``metric``'s alert."""
        return self._tried.get(metric, set())

    def mark_tried(self, metric: str, strategy: str) -> None:
        """``strategy`` did not help ``metric``: skip it for the rest of the alert."""
        self._tried.setdefault(metric, set()).add(strategy)

    def forget_tried(self, metric: str) -> None:
        """Start ``metric``'s progressive sequence over (resolved alert, kept action,
        or every strategy tried)."""
        self._tried.pop(metric, None)


def rank(
    pairs: list[tuple[PluginHandle, Proposal]],
    *,
    tried: Collection[str],
    busy: set[str],
    weight: Callable[[str], float],
) -> list[tuple[float, PluginHandle, Proposal]]:
    """The eligible proposals with their scores, best first (ties keep their order).

    A proposal is eligible unless its strategy is in ``tried`` or it changes a knob
    in ``busy``; its score is ``expected_improvement * weight(strategy)``.
    """
    candidates = []
    for handle, proposal in pairs:
        if proposal.strategy in tried:
            continue
        if busy & {change.knob for change in proposal.changes}:
            continue
        candidates.append(
            (
                proposal.expected_improvement * weight(proposal.strategy),
                handle,
                proposal,
            )
        )
    candidates.sort(key=lambda c: c[0], reverse=True)
    return candidates
