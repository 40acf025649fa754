"""Dispatch: a fired alert becomes a :class:`Violation` the plugins are asked about.

The dispatcher subscribes to the evaluator's event stream. On ``fired`` and
``escalated`` transitions (not silenced) it builds the violation (statistics,
trend, thresholds, a correlation id), asks the plugins the metric lists in
``optimizers:`` (or every plugin that ``handles()`` it) off the loop, and logs every
proposal as ``optimizer.proposed``. At most one dispatch per series is in flight.
What to do with the proposals is the closed loop's business (``on_proposals``).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any

from perfwarden.alerts import Transition
from perfwarden.logs import get_logger
from perfwarden.plugin_api import ObservedStats, OptimizerContext, Violation
from perfwarden.stats import summarize
from perfwarden.trend import label

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from perfwarden.config import Config
    from perfwarden.evaluator import AlertEvent
    from perfwarden.knobs import KnobStore
    from perfwarden.plugin_api import Proposal
    from perfwarden.plugin_runtime import PluginHandle, PluginRuntime
    from perfwarden.store import MetricStore

__all__ = ["Dispatcher", "proposal_fields"]

_log = get_logger("perfwarden.optimizer")


class Dispatcher:
    """Turns alert events into plugin proposals."""

    def __init__(
        self,
        store: MetricStore,
        runtime: PluginRuntime,
        knobs: KnobStore,
        config: Callable[[], Config],
    ) -> None:
        self._store = store
        self._runtime = runtime
        self._knobs = knobs
        self._config = config
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self.on_proposals: (
            Callable[[Violation, list[tuple[PluginHandle, Proposal]]], Awaitable[None]]
            | None
        ) = None
        self.dispatched = 0

    def __call__(self, event: AlertEvent) -> None:
        """Evaluator subscriber: start a dispatch for a new or worse alert."""
        if event.transition not in {Transition.FIRED, Transition.ESCALATED}:
            return
        if event.series in self._in_flight:
            return
        violation = self.violation_for(event)
        if violation is None:
            return
        task = asyncio.get_running_loop().create_task(
            self._dispatch(violation), name=f"dispatch:{event.series}"
        )
        self._in_flight[event.series] = task
        task.add_done_callback(lambda _: self._in_flight.pop(event.series, None))

    def violation_for(self, event: AlertEvent) -> Violation | None:
        """The plugin-facing view of an alert event (None if the series is gone)."""
        series = self._store.get(event.series)
        config = self._config()
        metric = config.metrics.get(event.metric)
        if series is None or metric is None or event.observed is None:
            return None
        if event.threshold is None or event.level is None:
            return None
        statistics = config.statistics
        summary = summarize(
            series.window, statistics.confidence_level, statistics.min_samples
        )
        interval = (
            (summary.ci_low, summary.ci_high)
            if summary.ci_low is not None and summary.ci_high is not None
            else None
        )
        trend = label(
            series.window.values(),
            bound=metric.bound,
            target=metric.target,
            interval=interval,
        )
        return Violation(
            metric=event.metric,
            tags=dict(event.tags),
            severity=event.level.value,
            basis=event.basis.value,
            bound=metric.bound.value,
            observed=event.observed,
            threshold=event.threshold,
            target=metric.target,
            unit=metric.unit,
            trend=trend,
            stats=ObservedStats(
                sample_size=summary.sample_size,
                mean=summary.mean,
                ci_low=summary.ci_low,
                ci_high=summary.ci_high,
                p50=summary.p50,
                p95=summary.p95,
                p99=summary.p99,
                min=summary.min,
                max=summary.max,
            ),
            correlation_id=uuid.uuid4().hex[:12],
        )

    def context_for(self, handle: PluginHandle) -> OptimizerContext:
        """The read-only knob view given to one plugin."""
        return OptimizerContext(
            knobs=self._knobs.values(), specs=self._knobs.specs, options=handle.options
        )

    async def _dispatch(self, violation: Violation) -> None:
        self.dispatched += 1
        metric = self._config().metrics.get(violation.metric)
        names = metric.optimizers if metric is not None else ()
        pairs = await self._runtime.propose(violation, self.context_for, names or None)
        for handle, proposal in pairs:
            _log.info(
                "optimizer.proposed",
                correlation_id=violation.correlation_id,
                metric=violation.metric,
                tags=dict(violation.tags),
                severity=violation.severity,
                plugin=handle.name,
                **proposal_fields(proposal),
            )
        if not pairs:
            _log.info(
                "optimizer.no_proposal",
                correlation_id=violation.correlation_id,
                metric=violation.metric,
                asked=list(names)
                if names
                else [h.name for h in self._runtime.active()],
            )
        if self.on_proposals is not None:
            await self.on_proposals(violation, pairs)

    async def drain(self) -> None:
        """Wait for dispatches in flight (at shutdown)."""
        if self._in_flight:
            await asyncio.gather(*self._in_flight.values(), return_exceptions=True)


def proposal_fields(proposal: Proposal) -> dict[str, Any]:
    """A proposal's log / JSON fields."""
    return {
        "strategy": proposal.strategy,
        "expected_improvement": proposal.expected_improvement,
        "rationale": proposal.rationale,
        "changes": {change.knob: change.value for change in proposal.changes},
        "action": proposal.action.description if proposal.action else None,
    }
