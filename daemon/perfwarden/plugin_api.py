"""The optimizer plugin contract: the only module a plugin needs to import.

A plugin is a distribution that declares an entry point in the group
:data:`ENTRY_POINT_GROUP`::

    [project.entry-points."perfwarden.optimizers"]
    my_strategy = "my_package.module:MyOptimizer"

The entry point names a class or factory. perfwarden calls it once with the plugin's
options from the config's ``plugins:`` section (a read-only mapping; ``enabled`` is
removed) and expects an object that satisfies :class:`Optimizer`.

On a fired alert the daemon builds a :class:`Violation` and an
:class:`OptimizerContext` (a read-only view of the knobs) and calls ``propose()``
on each plugin that handles the metric. ``propose()`` returns proposals; it never
changes anything itself. The daemon chooses among proposals, applies knob changes
(recording the original values), validates the effect with a statistical test and
keeps or reverts it. A proposal that acts outside the knobs carries an
:class:`Action` with an explicit ``revert``.

``propose`` may be a plain function (run in a worker thread) or a coroutine
function (run on the event loop; it must not block). Either way it runs under a
timeout; a plugin that raises, hangs or returns something that is not a sequence of
:class:`Proposal` is counted as failing and switched off after repeated failures.

Every call (``handles``, ``propose``, an action's ``apply`` and ``revert``) has a
deadline, a little before the daemon stops waiting for it: :func:`time_left` and
:func:`current_deadline` give it, in the thread or task that runs the call. A
plugin that waits on something (a subprocess, a socket) caps its own timeout with
:func:`time_left`, cleans up when it expires and raises :class:`TimeoutError`; the
daemon then reports a timeout the plugin handled, instead of abandoning the call.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol, runtime_checkable

from perfwarden.deadline import current_deadline, time_left

__all__ = [
    "ENTRY_POINT_GROUP",
    "Action",
    "KnobChange",
    "KnobSpec",
    "KnobValue",
    "ObservedStats",
    "Optimizer",
    "OptimizerContext",
    "OptimizerFactory",
    "PluginNotConfigured",
    "Proposal",
    "Violation",
    "current_deadline",
    "time_left",
]

#: The entry-point group optimizer plugins register under.
ENTRY_POINT_GROUP: Final = "perfwarden.optimizers"

#: A knob's value: a number, or one of its declared string choices.
KnobValue = float | int | str


class PluginNotConfigured(Exception):
    """Raised by a factory whose required options are absent from the config.

    The plugin is listed as ``unconfigured`` (logged at info level), not as failed:
    installed plugins such as ``exec`` or ``webhook`` need the operator's options
    before they can do anything.
    """


@dataclass(frozen=True, slots=True)
class ObservedStats:
    """A series' statistics at the moment of the violation (``None`` when unknown)."""

    sample_size: int
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    p50: float | None
    p95: float | None
    p99: float | None
    min: float | None
    max: float | None


@dataclass(frozen=True, slots=True)
class Violation:
    """One fired (or escalated) alert, as a plugin sees it.

    ``bound`` is ``"upper"`` when lower values are better (latency, memory) and
    ``"lower"`` when higher values are better (scores, speedups). ``observed`` is
    what was compared with ``threshold`` on the configured ``basis``: a value, a mean
    or a confidence interval as ``(low, high)``.
    """

    metric: str
    tags: Mapping[str, str]
    severity: str
    basis: str
    bound: str
    observed: tuple[float, float]
    threshold: float
    target: float | None
    unit: str | None
    trend: str
    stats: ObservedStats
    #: Links the alert, proposals, action, verdict and learning in the log.
    correlation_id: str

    @property
    def gap(self) -> float:
        """How far the observation's centre is from the target (or threshold), as a
        fraction of it; positive means worse than wanted."""
        goal = self.target if self.target is not None else self.threshold
        centre = (self.observed[0] + self.observed[1]) / 2
        if goal == 0:
            return 0.0
        gap = (centre - goal) / abs(goal)
        return gap if self.bound == "upper" else -gap


@dataclass(frozen=True, slots=True)
class KnobSpec:
    """A knob's declaration from the config: numeric bounds or string choices."""

    name: str
    initial: KnobValue
    min: float | None = None
    max: float | None = None
    step: float | None = None
    choices: tuple[KnobValue, ...] | None = None

    def clamp(self, value: KnobValue) -> KnobValue:
        """The nearest allowed value (numeric knobs: within bounds, on the step)."""
        if self.choices is not None:
            if value not in self.choices:
                msg = f"{self.name}: {value!r} is not one of {list(self.choices)}"
                raise ValueError(msg)
            return value
        if isinstance(value, str):
            msg = f"{self.name}: a number is needed, not {value!r}"
            raise TypeError(msg)
        number = float(value)
        if not math.isfinite(number):
            msg = f"{self.name}: {value!r} is not a finite number"
            raise ValueError(msg)
        if self.min is not None:
            number = max(number, self.min)
        if self.max is not None:
            number = min(number, self.max)
        if self.step:
            origin = self.min if self.min is not None else 0.0
            number = origin + round((number - origin) / self.step) * self.step
            number = round(number, 12)
            if self.max is not None and number > self.max:
                number -= self.step
        if isinstance(self.initial, int) and (
            self.step is None or float(self.step).is_integer()
        ):
            return round(number)
        return number


@dataclass(frozen=True, slots=True)
class OptimizerContext:
    """What a plugin may read besides the violation: the knobs, read-only."""

    knobs: Mapping[str, KnobValue]
    specs: Mapping[str, KnobSpec]
    #: The plugin's own options (its ``plugins.<name>`` mapping, ``enabled`` removed).
    options: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class KnobChange:
    """Set knob ``knob`` to ``value`` (the daemon clamps it to the knob's bounds)."""

    knob: str
    value: KnobValue


@dataclass(frozen=True, slots=True)
class Action:
    """An effect of the plugin's own, outside the knobs, with its explicit undo.

    ``apply`` and ``revert`` are called by the daemon (never by the plugin itself),
    under the same timeout and isolation as ``propose``; either may be a plain or a
    coroutine function. Each call has its own deadline: read it with
    :func:`time_left` inside ``apply`` or ``revert``, not when proposing.
    """

    description: str
    apply: Callable[[], object | Awaitable[object]]
    revert: Callable[[], object | Awaitable[object]]


@dataclass(frozen=True, slots=True)
class Proposal:
    """One strategy a plugin proposes for a violation.

    ``expected_improvement`` is the fraction by which the plugin expects the metric
    to improve (0.2 = 20% closer to good); the daemon weighs it by what it has
    learned about ``strategy``. Exactly one of ``changes`` and ``action`` is given.
    """

    strategy: str
    expected_improvement: float
    rationale: str
    changes: tuple[KnobChange, ...] = ()
    action: Action | None = None

    def __post_init__(self) -> None:
        if bool(self.changes) == (self.action is not None):
            msg = "a proposal carries either knob changes or an action, not both"
            raise ValueError(msg)
        if not 0.0 <= self.expected_improvement <= 1.0:
            msg = "expected_improvement is a fraction between 0 and 1"
            raise ValueError(msg)


@runtime_checkable
class Optimizer(Protocol):
    """What a plugin object provides.

    ``handles(violation)`` says whether the plugin has anything to say about a
    violation; it is asked only when the metric does not list its optimizers
    explicitly (a metric's ``optimizers:`` list always wins). ``propose`` returns
    the proposals, best first or in any order; an empty sequence means "nothing
    to propose". Both run off the event loop (or on it, if coroutine functions)
    under a timeout; :func:`time_left` says how much of it is left.
    """

    def handles(self, violation: Violation) -> bool:
        """Whether this plugin has proposals for ``violation``'s metric at all."""
        ...

    def propose(
        self, violation: Violation, context: OptimizerContext
    ) -> Sequence[Proposal] | Awaitable[Sequence[Proposal]]:
        """Proposals for ``violation``; never changes anything itself."""
        ...


#: What an entry point names: called once with the plugin's options.
OptimizerFactory = Callable[[Mapping[str, object]], Optimizer]
