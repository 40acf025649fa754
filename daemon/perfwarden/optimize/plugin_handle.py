"""A plugin as the runtime tracks it: its state, failure streaks and counts."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

from perfwarden.optimize.plugin_host import IsolatedOptimizer

if TYPE_CHECKING:
    from collections.abc import Mapping

    from perfwarden.config.model import Isolation
    from perfwarden.optimize.plugin_host import PluginHost
    from perfwarden.optimize.plugin_loader import PluginSource
    from perfwarden.plugin_api import Optimizer

__all__ = [
    "COUNTERS",
    "PluginCallError",
    "PluginHandle",
    "PluginState",
    "new_counts",
    "streak_of",
]


class PluginState(StrEnum):
    """Where a plugin stands."""

    ACTIVE = "active"
    FAILED = "failed"  # could not be loaded
    DISABLED = "disabled"  # switched off by the circuit breaker
    BLOCKED = "blocked"  # enabled: false, or not named while autoload is off
    UNCONFIGURED = "unconfigured"  # installed, but its required options are absent


#: What ``perfwarden plugins`` counts per plugin; kept in the state across restarts.
COUNTERS: Final = (
    "calls",
    "failures",
    "timeouts",
    "proposals",
    "applied",
    "kept",
    "reverted",
    "inconclusive",
    "stalls",
)


def new_counts() -> dict[str, int]:
    """Every counter at zero."""
    return dict.fromkeys(COUNTERS, 0)


class PluginCallError(Exception):
    """A plugin call failed (raised, timed out, or returned garbage)."""


def streak_of(what: str) -> str:
    """The failure streak a call counts toward: ``propose`` (``handles`` and
    ``propose``) or ``action`` (an action's ``apply`` and ``revert``)."""
    return "action" if what in {"apply", "revert"} else "propose"


@dataclass(slots=True)
class PluginHandle:
    """One plugin as the runtime tracks it."""

    source: PluginSource
    state: PluginState
    options: Mapping[str, object] = field(default_factory=dict)
    optimizer: Optimizer | IsolatedOptimizer | None = None
    error: str | None = None
    #: ``process`` or ``in-process`` once loaded (``None`` before).
    isolation: Isolation | None = None
    #: Consecutive failures per kind of call (:func:`streak_of`): a plugin that
    #: proposes well but hangs in every ``apply`` is still switched off.
    streaks: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=new_counts)

    @property
    def host(self) -> PluginHost | None:
        """The host process of a process-isolated plugin."""
        optimizer = self.optimizer
        return optimizer.host if isinstance(optimizer, IsolatedOptimizer) else None

    @property
    def consecutive_failures(self) -> int:
        """The longest current failure streak (what the breaker compares)."""
        return max(self.streaks.values(), default=0)

    @property
    def name(self) -> str:
        """The entry-point name (the plugin's name in the config)."""
        return self.source.name

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready record for ``perfwarden plugins``."""
        return {
            "name": self.name,
            "distribution": self.source.dist,
            "version": self.source.version,
            "entry_point": self.source.value,
            "state": self.state.value,
            "error": self.error,
            "isolation": self.isolation.value if self.isolation else None,
            "host_pid": self.host.pid if self.host is not None else None,
            "consecutive_failures": self.consecutive_failures,
            "streaks": dict(self.streaks),
            **self.counts,
        }
