"""The shared shape of the knob-turning built-ins: options, ``handles``, ``propose``.

Each built-in subclass supplies two things: :meth:`KnobOptimizer.plan` (the value it
wants for its knob given the violation, or ``None`` when its rule has nothing to say)
and :meth:`KnobOptimizer.estimate` (the expected improvement of that change, with a
short explanation). This base class does the rest, identically for all of them:

* the knob must be declared in ``context.specs`` and numeric, else no proposal;
* the wanted value is clamped with :meth:`KnobSpec.clamp`; if the clamped value
  equals the current one (the knob is at its bound) there is no proposal;
* the estimate is computed on the *clamped* change and forced into
  ``[0, max_estimate]``; an estimate of 0 means "not expected to help", so there is
  no proposal either.

Common options: ``knob`` (the knob to turn), ``metrics`` (the metrics ``handles()``
says yes to), ``step`` and ``max_estimate`` (cap on the estimate, default 0.5).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar

from perfwarden.plugin_api import KnobChange, OptimizerContext, Proposal, Violation

from ._common import (
    COMMON_OPTIONS,
    bounded,
    check_known,
    current_number,
    opt_float,
    opt_metrics,
    opt_str,
    propose_value,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["KnobOptimizer"]


class KnobOptimizer:
    """Base class of the built-ins that propose one change to one numeric knob."""

    #: The entry-point name, used in option errors.
    name: ClassVar[str]
    #: The strategy name the daemon learns weights for.
    strategy: ClassVar[str]
    default_knob: ClassVar[str]
    default_metrics: ClassVar[frozenset[str]]
    default_step: ClassVar[float]
    #: Options a subclass accepts besides :data:`COMMON_OPTIONS`.
    extra_options: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, options: Mapping[str, object]) -> None:
        check_known(self.name, options, set(COMMON_OPTIONS | self.extra_options))
        self.options = options
        self.knob = opt_str(self.name, options, "knob", self.default_knob)
        self.metrics = opt_metrics(self.name, options, self.default_metrics)
        self.step = opt_float(
            self.name, options, "step", self.default_step, low_inclusive=False
        )
        self.max_estimate = opt_float(self.name, options, "max_estimate", 0.5, high=1.0)

    def _option(
        self,
        key: str,
        default: float,
        *,
        low: float = 0.0,
        high: float = math.inf,
        low_inclusive: bool = True,
    ) -> float:
        """A numeric option of the subclass (see :func:`opt_float`)."""
        return opt_float(
            self.name,
            self.options,
            key,
            default,
            low=low,
            high=high,
            low_inclusive=low_inclusive,
        )

    def handles(self, violation: Violation) -> bool:
        """Whether ``violation``'s metric is one of the ``metrics`` option's."""
        return violation.metric in self.metrics

    def plan(self, violation: Violation, current: float) -> float | None:
        """The value wanted for the knob, before clamping; ``None``: nothing to do."""
        raise NotImplementedError

    def estimate(
        self, violation: Violation, old: float, new: float
    ) -> tuple[float, str]:
        """The expected improvement of ``old → new`` (unclamped) and how it was got."""
        raise NotImplementedError

    def propose(
        self, violation: Violation, context: OptimizerContext
    ) -> list[Proposal]:
        """At most one proposal: the planned knob change, clamped, with its estimate."""
        found = current_number(context, self.knob)
        if found is None:
            return []
        spec, current = found
        wanted = self.plan(violation, current)
        if wanted is None:
            return []
        value = propose_value(spec, current, wanted)
        if value is None:
            return []
        raw, how = self.estimate(violation, current, float(value))
        expected = bounded(raw, self.max_estimate)
        if expected <= 0.0:
            return []
        rationale = (
            f"{violation.metric} is {violation.gap:+.1%} from its goal; "
            f"{self.knob} {current:g} -> {value:g}; expected {expected:.3f} = {how}"
        )
        return [
            Proposal(
                strategy=self.strategy,
                expected_improvement=expected,
                rationale=rationale,
                changes=(KnobChange(self.knob, value),),
            )
        ]
