"""Built-in ``context_layers``: load fewer context layers (the seed's
``reduce_context_layers``, strategy ``context_layer_reduction``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._common import relative_change
from ._knob import KnobOptimizer

if TYPE_CHECKING:
    from collections.abc import Mapping

    from perfwarden.plugin_api import Violation

__all__ = ["ContextLayersOptimizer"]


class ContextLayersOptimizer(KnobOptimizer):
    """Lower ``context.layers`` by ``step`` (default 1) on any violation.

    Fewer layers mean less to load and hold and fewer tokens spent; the default
    ``metrics`` are ``context_loading_time``, ``token_efficiency_ratio`` and
    ``memory_usage_mb``.

    Estimate: ``elasticity * (old - new) / old``, capped at ``max_estimate`` (0.5).
    ``elasticity`` (option, default 0.5) is the prior share of the metric that scales
    with the number of layers (the rest is fixed cost); the learned weight of
    ``context_layer_reduction`` corrects it. Example: 4 -> 3 layers is -25%, so 0.125.
    """

    name = "context_layers"
    strategy = "context_layer_reduction"
    default_knob = "context.layers"
    default_metrics = frozenset(
        {"context_loading_time", "token_efficiency_ratio", "memory_usage_mb"}
    )
    default_step = 1.0
    extra_options = frozenset({"elasticity"})

    def __init__(self, options: Mapping[str, object]) -> None:
        super().__init__(options)
        self.elasticity = self._option("elasticity", 0.5)

    def plan(self, violation: Violation, current: float) -> float | None:
        """One step down, whatever the metric."""
        return current - self.step

    def estimate(
        self, violation: Violation, old: float, new: float
    ) -> tuple[float, str]:
        """``elasticity`` times the relative drop in layers."""
        change = relative_change(old, new)
        return self.elasticity * change, f"{self.elasticity:g} x {change:.1%}"
