"""Built-in ``caching``: grow the cache, or shrink it for memory violations
(strategy ``cache_optimization``, the seed's ``enable_aggressive_caching``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._common import opt_metrics, relative_change
from ._knob import KnobOptimizer

if TYPE_CHECKING:
    from collections.abc import Mapping

    from perfwarden.plugin_api import Violation

__all__ = ["CachingOptimizer"]


class CachingOptimizer(KnobOptimizer):
    """Double ``cache.size`` (at least ``+step``, default 64); for the metrics in
    ``shrink_metrics`` (default ``memory_usage_mb``) halve it (at least ``-step``).

    A bigger cache cannot fix a memory violation, it causes one; so for memory the
    rule runs the other way. Default ``metrics``: ``context_loading_time``,
    ``command_execution_time`` and ``memory_usage_mb``.

    Estimate when growing: ``miss_share * (1 - old / new)``. With the common
    approximation that the miss rate falls as 1/size, ``1 - old/new`` is the share
    of misses removed (doubling: 50%; from 0: all); ``miss_share`` (option, default
    0.3) is the prior share of the metric spent on misses. Estimate when shrinking:
    ``memory_share * (old - new) / old``, ``memory_share`` (option, default 0.2)
    being the prior share of memory the cache holds. Both capped at
    ``max_estimate`` (0.5) and corrected by the learned weight.
    """

    name = "caching"
    strategy = "cache_optimization"
    default_knob = "cache.size"
    default_metrics = frozenset(
        {"context_loading_time", "command_execution_time", "memory_usage_mb"}
    )
    default_step = 64.0
    extra_options = frozenset({"miss_share", "memory_share", "shrink_metrics"})

    def __init__(self, options: Mapping[str, object]) -> None:
        super().__init__(options)
        self.miss_share = self._option("miss_share", 0.3, high=1.0)
        self.memory_share = self._option("memory_share", 0.2, high=1.0)
        self.shrink_metrics = opt_metrics(
            self.name, options, frozenset({"memory_usage_mb"}), "shrink_metrics"
        )

    def plan(self, violation: Violation, current: float) -> float | None:
        """Halve for ``shrink_metrics``, double otherwise (by at least ``step``)."""
        if violation.metric in self.shrink_metrics:
            return min(current / 2, current - self.step)
        return max(current * 2, current + self.step)

    def estimate(
        self, violation: Violation, old: float, new: float
    ) -> tuple[float, str]:
        """Misses removed x ``miss_share``, or memory freed x ``memory_share``."""
        if new < old:
            change = relative_change(old, new)
            return self.memory_share * change, f"{self.memory_share:g} x {change:.1%}"
        removed = 1.0 - old / new if new > 0 else 0.0
        return self.miss_share * removed, f"{self.miss_share:g} x {removed:.1%}"
