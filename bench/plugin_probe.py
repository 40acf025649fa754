"""The plugin ``bench/plugin_isolation.py`` calls: cheap, or blocking on purpose."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from perfwarden.plugin_api import KnobChange, Proposal

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from perfwarden.plugin_api import OptimizerContext, Violation


class Probe:
    """One knob proposal per call, computed from the context (a typical plugin)."""

    def __init__(self, options: Mapping[str, object]) -> None:
        self.options = options

    def handles(self, violation: Violation) -> bool:
        return violation.metric == "latency"

    def propose(
        self, violation: Violation, context: OptimizerContext
    ) -> Sequence[Proposal]:
        current = context.knobs["batch.size"]
        assert isinstance(current, int)
        return [
            Proposal(
                strategy="halve",
                expected_improvement=0.25,
                rationale=f"{violation.metric} {violation.gap:+.0%}",
                changes=(KnobChange("batch.size", current // 2),),
            )
        ]


class Blocking(Probe):
    """An ``async def propose`` that blocks its loop for 0.5 s."""

    async def propose(  # type: ignore[override]
        self, violation: Violation, context: OptimizerContext
    ) -> Sequence[Proposal]:
        time.sleep(0.5)  # noqa: ASYNC251 - the misbehaviour measured
        return []
