"""One well-behaved plugin and three that misbehave in the ways the daemon survives."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from perfwarden.plugin_api import KnobChange, OptimizerContext, Proposal, Violation

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence


class AcmeOptimizer:
    """Halves ``batch.size`` for any violation of a metric it is asked about."""

    def __init__(self, options: Mapping[str, object]) -> None:
        self.knob = str(options.get("knob", "batch.size"))

    def handles(self, violation: Violation) -> bool:
        return True

    def propose(
        self, violation: Violation, context: OptimizerContext
    ) -> Sequence[Proposal]:
        current = context.knobs.get(self.knob)
        if not isinstance(current, int | float):
            return []
        return [
            Proposal(
                strategy="acme_halving",
                expected_improvement=0.25,
                rationale=f"{violation.metric} {violation.severity}: halve {self.knob}",
                changes=(KnobChange(self.knob, current / 2),),
            )
        ]


class DoublingOptimizer(AcmeOptimizer):
    """Doubles the knob and promises more: learning must see through it."""

    def propose(
        self, violation: Violation, context: OptimizerContext
    ) -> Sequence[Proposal]:
        current = context.knobs.get(self.knob)
        if not isinstance(current, int | float):
            return []
        return [
            Proposal(
                strategy="acme_doubling",
                expected_improvement=0.4,
                rationale=f"double {self.knob}",
                changes=(KnobChange(self.knob, current * 2),),
            )
        ]


class RaisingOptimizer(AcmeOptimizer):
    """Raises on every call."""

    def propose(
        self, violation: Violation, context: OptimizerContext
    ) -> Sequence[Proposal]:
        raise RuntimeError("acme_raises always fails")


class HangingOptimizer(AcmeOptimizer):
    """Never answers in time."""

    def propose(
        self, violation: Violation, context: OptimizerContext
    ) -> Sequence[Proposal]:
        time.sleep(30)
        return []


class GarbageOptimizer(AcmeOptimizer):
    """Returns something that is not a list of proposals."""

    def propose(  # type: ignore[override]
        self, violation: Violation, context: OptimizerContext
    ) -> object:
        return {"not": "a proposal"}
