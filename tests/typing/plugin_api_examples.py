"""Usage examples of perfwarden.plugin_api, checked with ``mypy --strict``.

Written as a third party would: only :mod:`perfwarden.plugin_api` is imported. If
the contract changes in a way that breaks plugins, this file stops type-checking.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from perfwarden.plugin_api import (
    ENTRY_POINT_GROUP,
    Action,
    KnobChange,
    KnobSpec,
    Optimizer,
    OptimizerContext,
    OptimizerFactory,
    Proposal,
    Violation,
    current_deadline,
    time_left,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence


class ThreadPoolOptimizer:
    """A synchronous plugin: one more worker when ``queue_wait_ms`` is too high."""

    def __init__(self, options: Mapping[str, object]) -> None:
        knob = options.get("knob", "pool.workers")
        self.knob = knob if isinstance(knob, str) else "pool.workers"

    def handles(self, violation: Violation) -> bool:
        """Only the queue wait metric."""
        return violation.metric == "queue_wait_ms"

    def propose(
        self, violation: Violation, context: OptimizerContext
    ) -> Sequence[Proposal]:
        """Add a worker, clamped to the knob's bounds."""
        spec: KnobSpec | None = context.specs.get(self.knob)
        current = context.knobs.get(self.knob)
        if spec is None or not isinstance(current, int | float):
            return []
        value = spec.clamp(current + 1)
        if value == current:
            return []
        return [
            Proposal(
                strategy="pool_growth",
                expected_improvement=min(1.0, max(0.0, violation.gap / 2)),
                rationale=f"{violation.metric} is {violation.gap:.0%} over",
                changes=(KnobChange(self.knob, value),),
            )
        ]


class PagerOptimizer:
    """An asynchronous plugin proposing an action with its undo."""

    def __init__(self, options: Mapping[str, object]) -> None:
        self.sent: list[str] = []

    def handles(self, violation: Violation) -> bool:
        """Critical violations only."""
        return violation.severity == "critical"

    async def _page(self, text: str) -> None:
        await asyncio.sleep(0)
        self.sent.append(text)

    async def propose(
        self, violation: Violation, context: OptimizerContext
    ) -> Sequence[Proposal]:
        """Page someone (the daemon decides whether and when)."""

        async def apply() -> None:
            # Wait no longer than the call may run, then report a timeout.
            async with asyncio.timeout(time_left()):
                await self._page(f"page: {violation.metric}")

        def revert() -> None:
            self.sent.append("all clear")

        return [
            Proposal(
                strategy="page_oncall",
                expected_improvement=0.0,
                rationale="a human looks at it",
                action=Action("page the on-call", apply, revert),
            )
        ]


# Both classes are valid entry-point targets and valid optimizers.
sync_factory: OptimizerFactory = ThreadPoolOptimizer
async_factory: OptimizerFactory = PagerOptimizer
plugins: list[Optimizer] = [ThreadPoolOptimizer({}), PagerOptimizer({"x": 1})]
group: str = ENTRY_POINT_GROUP
deadline: float = current_deadline()  # math.inf outside a plugin call
