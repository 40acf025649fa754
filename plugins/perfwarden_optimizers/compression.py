"""Built-in ``compression``: raise the compression ratio (the seed's
``increase_compression_ratio``, strategy ``context_compression``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._common import relative_change
from ._knob import KnobOptimizer

if TYPE_CHECKING:
    from collections.abc import Mapping

    from perfwarden.plugin_api import Violation

__all__ = ["CompressionOptimizer"]


class CompressionOptimizer(KnobOptimizer):
    """Raise ``compression.ratio`` by one ``step`` (default 0.1) on any violation.

    More compression means less context to load, run and hold (upper-bound metrics
    such as ``context_loading_time``, ``command_execution_time``,
    ``memory_usage_mb``) and more tokens saved (the lower-bound
    ``token_efficiency_ratio``); these four are the default ``metrics``.

    Estimate: ``elasticity * (new - old) / old``, capped at ``max_estimate``
    (0.5). ``elasticity`` (option, default 0.5) is a prior for the relative change of
    the metric per relative change of the ratio; the daemon's learned weight for
    ``context_compression`` corrects it. Example: 0.4 -> 0.5 is +25%, so 0.125.
    """

    name = "compression"
    strategy = "context_compression"
    default_knob = "compression.ratio"
    default_metrics = frozenset(
        {
            "context_loading_time",
            "command_execution_time",
            "memory_usage_mb",
            "token_efficiency_ratio",
        }
    )
    default_step = 0.1
    extra_options = frozenset({"elasticity"})

    def __init__(self, options: Mapping[str, object]) -> None:
        super().__init__(options)
        self.elasticity = self._option("elasticity", 0.5)

    def plan(self, violation: Violation, current: float) -> float | None:
        """One step up, whatever the metric."""
        return current + self.step

    def estimate(
        self, violation: Violation, old: float, new: float
    ) -> tuple[float, str]:
        """``elasticity`` times the relative change of the ratio."""
        change = relative_change(old, new)
        return self.elasticity * change, f"{self.elasticity:g} x {change:.1%}"
